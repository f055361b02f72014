"""A loaded ruleset: plain data about its rules, plus one compiled evaluator per section.

A :class:`Ruleset` is built once (parse, validate, type-check, compile) and then shared by
every evaluation, so evaluating a lead costs only the expression evaluation itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import msgspec

from leadroute.models import Stage
from leadroute.rules._spec import TestSpec
from leadroute.rules.evaluator import SectionEvaluator

__all__ = ["Group", "QualificationRule", "RoutingRule", "RuleTest", "Ruleset", "ScoringRule"]


class Group(msgspec.Struct, frozen=True, kw_only=True):
    """A scoring group and its caps (``half_life_days`` is stored, not applied yet)."""

    name: str
    max: float | None = None
    min: float | None = None
    half_life_days: float | None = None


class ScoringRule(msgspec.Struct, frozen=True, kw_only=True):
    """Adds ``points`` to ``group`` when ``when`` matches; ``line`` is where it is written."""

    id: str
    group: str
    points: float
    when: str
    line: int
    description: str | None = None


class QualificationRule(msgspec.Struct, frozen=True, kw_only=True):
    """Gives ``stage`` when ``when`` matches (``when`` None: always).

    Entries written without an id are called ``qualification[i]`` (0-based position).
    """

    id: str
    stage: Stage
    when: str | None
    line: int
    description: str | None = None


class RoutingRule(msgspec.Struct, frozen=True, kw_only=True):
    """Sends the lead to ``pool`` when ``when`` matches."""

    id: str
    pool: str
    when: str
    line: int
    description: str | None = None


class RuleTest(msgspec.Struct, frozen=True, kw_only=True):
    """A test written in the rule file, with its line."""

    __test__: ClassVar[bool] = False  # not a pytest test class

    spec: TestSpec
    line: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Ruleset:
    """One loaded, valid rule file. Identity is ``version`` plus ``sha256`` of its canonical content."""

    version: int
    sha256: str
    description: str
    path: Path | None
    source: str
    fields: Mapping[str, str]
    """Declared extra attributes: ``attributes.NAME`` → rule-engine type name."""
    groups: Mapping[str, Group]
    scoring_rules: tuple[ScoringRule, ...]
    qualification_rules: tuple[QualificationRule, ...]
    routing_rules: tuple[RoutingRule, ...]
    fallback: str
    tests: tuple[RuleTest, ...]
    scoring_evaluator: SectionEvaluator
    qualification_evaluator: SectionEvaluator
    routing_evaluator: SectionEvaluator

    @property
    def display_path(self) -> str:
        """The file name used in messages."""
        return str(self.path) if self.path is not None else "<ruleset>"
