"""A loaded ruleset: plain data about its rules, plus one compiled evaluator per section.

A :class:`Ruleset` is built once (parse, validate, type-check, compile) and then shared by
every evaluation, so evaluating a lead costs only the expression evaluation itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import msgspec

from leadroute.models import Stage
from leadroute.rules._spec import TestSpec
from leadroute.rules.evaluator import SectionEvaluator

__all__ = [
    "ActivitySection",
    "Group",
    "QualificationRule",
    "RoutingRule",
    "RuleTest",
    "Ruleset",
    "ScoringRule",
    "Sla",
]


class Group(msgspec.Struct, frozen=True, kw_only=True):
    """A scoring group and its caps; ``half_life_days`` decays the points of its activity rules."""

    name: str
    max: float | None = None
    min: float | None = None
    half_life_days: float | None = None


class ScoringRule(msgspec.Struct, frozen=True, kw_only=True):
    """Adds ``points`` to ``group`` when ``when`` matches; ``line`` is where it is written.

    ``on_activity`` None: a lead-level rule, evaluated once per lead. Otherwise the activity
    types it scores: evaluated once per activity of one of those types, against that activity.
    """

    id: str
    group: str
    points: float
    when: str
    line: int
    description: str | None = None
    on_activity: tuple[str, ...] | None = None


class Sla(msgspec.Struct, frozen=True, kw_only=True):
    """How fast the owner must accept a routed lead, and what happens when they do not."""

    accept_within_minutes: int
    on_breach: Literal["reassign", "escalate"]


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
    """When ``when`` matches: ``route`` ``pool`` sends the lead to ``pool``; ``account_owner`` to
    the owner of its company domain (``pool`` None), if there is one who can take it.

    ``sla`` is the rule's own, else the routing-level default, else None.
    """

    id: str
    when: str
    line: int
    pool: str | None
    route: Literal["pool", "account_owner"] = "pool"
    sla: Sla | None = None
    description: str | None = None
    pool_line: int = 0
    pool_column: int = 1
    """Where the ``pool`` value is written (for "pool does not exist" messages; 0: unknown)."""


@dataclass(frozen=True, slots=True)
class ActivitySection:
    """The ``on_activity`` rules for one activity type, and their compiled evaluator (same order)."""

    rules: tuple[ScoringRule, ...]
    evaluator: SectionEvaluator


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
    """Every scoring rule, in file order (lead-level and ``on_activity`` ones)."""
    qualification_rules: tuple[QualificationRule, ...]
    routing_rules: tuple[RoutingRule, ...]
    fallback: str
    sla: Sla | None
    """The routing-level default SLA (already applied to each routing rule without its own)."""
    tests: tuple[RuleTest, ...]
    lead_scoring_rules: tuple[ScoringRule, ...]
    """The lead-level scoring rules, in the order ``scoring_evaluator`` returns results."""
    scoring_evaluator: SectionEvaluator
    activity_sections: Mapping[str, ActivitySection]
    """Per activity type: its ``on_activity`` rules and their evaluator."""
    qualification_evaluator: SectionEvaluator
    routing_evaluator: SectionEvaluator
    reengage_previous_owner: bool = False
    """``routing.reengaged: previous_owner``: a re-engaged person's new lead goes to the owner of
    their previous lead when that owner can take it (docs/intake.md)."""

    @property
    def display_path(self) -> str:
        """The file name used in messages."""
        return str(self.path) if self.path is not None else "<ruleset>"
