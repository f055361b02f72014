"""The rule-file format (DESIGN.md, "Rule files") as msgspec Structs.

The one deliberate change from the DESIGN sketch: ``routing:`` is a mapping with ``rules:``
(a list, first match wins) and ``fallback:``; the sketch mixed list items and keys, which is
not valid YAML.

Sections are validated piece by piece (each scoring rule, each qualification entry...) so that
one file can report several problems at once; :class:`RulesetSpec` is the assembled whole, and
its canonical JSON encoding is what the ruleset's sha256 is taken over.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

__all__ = [
    "ExpectSpec",
    "GroupSpec",
    "QualificationSpec",
    "RoutingRuleSpec",
    "RoutingSpec",
    "RulesetSpec",
    "ScoringRuleSpec",
    "ScoringSpec",
    "TestSpec",
    "TopSpec",
]


class Spec(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Base of every rule-file Struct.

    ``forbid_unknown_fields``: a typo in a hand-edited file (``pionts: 10``) must be an error
    naming the key, never a silently ignored setting. ``frozen``: parsed rules are shared by
    concurrent evaluations and must not change under them. ``kw_only``: field order carries no
    meaning in YAML (msgspec does not inherit these settings, so each subclass repeats
    ``frozen=True, kw_only=True``).
    """


class GroupSpec(Spec, frozen=True, kw_only=True):
    """A scoring group's caps. ``half_life_days`` is stored but not applied yet (activity decay)."""

    max: float | None = None
    min: float | None = None
    half_life_days: float | None = None


class ScoringRuleSpec(Spec, frozen=True, kw_only=True):
    """``points`` to ``group`` when ``when`` matches the lead."""

    id: str
    group: str
    when: str
    points: float
    description: str | None = None
    on_activity: str | None = None  # accepted only to say "not supported yet"


class QualificationSpec(Spec, frozen=True, kw_only=True):
    """The lead reaches ``stage`` when ``when`` matches (no ``when``: always)."""

    stage: str
    id: str | None = None
    when: str | None = None
    description: str | None = None


class RoutingRuleSpec(Spec, frozen=True, kw_only=True):
    """Send the lead to ``pool`` when ``when`` matches."""

    id: str
    when: str
    pool: str | None = None
    route: str | None = None  # accepted only to say "not supported yet"
    description: str | None = None


class ExpectSpec(Spec, frozen=True, kw_only=True):
    """What a rule-file test expects; each key is optional and only given keys are checked."""

    stage: str | None = None
    pool: str | None = None
    score: float | None = None
    matched: list[str] | None = None


class TestSpec(Spec, frozen=True, kw_only=True):
    """One test written in the rule file: a lead as a form would post it, and what should happen."""

    __test__: ClassVar[bool] = False  # not a pytest test class

    name: str
    lead: dict[str, Any]
    expect: ExpectSpec


class TopSpec(Spec, frozen=True, kw_only=True):
    """The top level of a rule file, sections still unvalidated (they are checked one by one)."""

    version: int
    description: str = ""
    fields: dict[str, Any] = msgspec.field(default_factory=dict)
    scoring: dict[str, Any]
    qualification: list[Any]
    routing: dict[str, Any]
    tests: list[Any] = msgspec.field(default_factory=list)


class ScoringSectionSpec(Spec, frozen=True, kw_only=True):
    """``scoring:`` before its groups and rules are validated one by one."""

    groups: dict[str, Any]
    rules: list[Any] = msgspec.field(default_factory=list)


class RoutingSectionSpec(Spec, frozen=True, kw_only=True):
    """``routing:`` before its rules are validated one by one."""

    rules: list[Any]
    fallback: str
    sla: Any = None  # accepted only to say "not supported yet"


class ScoringSpec(Spec, frozen=True, kw_only=True):
    """``scoring:``: the groups and their rules."""

    groups: dict[str, GroupSpec]
    rules: list[ScoringRuleSpec]


class RoutingSpec(Spec, frozen=True, kw_only=True):
    """``routing:``: rules in order, and the queue used when no owner can be chosen."""

    rules: list[RoutingRuleSpec]
    fallback: str


class RulesetSpec(Spec, frozen=True, kw_only=True):
    """A whole, valid rule file."""

    version: int
    description: str
    fields: dict[str, str]
    scoring: ScoringSpec
    qualification: list[QualificationSpec]
    routing: RoutingSpec
    tests: list[TestSpec]
