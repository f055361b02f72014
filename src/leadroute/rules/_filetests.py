"""Run the tests written inside a rule file (``tests:``), and the ``rules check`` report.

Each test lead goes through the same path as a posted lead: the intake's parsing into ``LeadIn``
(keys the contract does not name go into ``attributes``), then normalization, then scoring.
Only the expectations a test gives are checked: ``stage``, ``pool`` (the first matching pool
rule's pool, or ``queue:<fallback>`` when no pool rule matches), ``score`` (within 1e-9),
``matched`` (those scoring rule ids all matched; others may match too), ``targets`` (the routing
rule ids of the targets, in order).

A test may give the lead's ``activities`` (each ``type``, ``properties``, and ``age_days`` or
``occurred_at``) to exercise ``on_activity`` rules and decay. The test is evaluated at ``now``:
the test's own ``now`` if given, else the latest ``occurred_at`` among its activities, else the
lead's ``occurred_at``, else :data:`TEST_EPOCH`; an activity with ``age_days`` happened that many
days before ``now``, one with neither key at ``now``. :func:`rule_test_inputs` builds all of it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

from leadroute.models import QUEUE_PREFIX, Activity, LeadIn, NormalizedLead
from leadroute.rules._loader import load_rules_path
from leadroute.rules._ruleset import Ruleset
from leadroute.rules._spec import TestSpec
from leadroute.rules.evaluator import Evaluator

if TYPE_CHECKING:
    from leadroute.scoring import Evaluation

__all__ = [
    "TEST_EPOCH",
    "CheckReport",
    "TestOutcome",
    "check_rules",
    "lead_from_test",
    "pool_hint",
    "rule_test_inputs",
    "run_ruleset_tests",
]

SCORE_TOLERANCE = 1e-9
TEST_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
"""A test's ``now`` when nothing in the test gives one (only ages matter for decay)."""

Normalizer = Callable[[LeadIn], NormalizedLead]


class TestOutcome(msgspec.Struct, frozen=True):
    """One rule-file test: passed, or the differences between expected and actual."""

    __test__: ClassVar[bool] = False  # not a pytest test class

    name: str
    passed: bool
    diffs: list[str]


class CheckReport(msgspec.Struct, frozen=True, kw_only=True):
    """A loaded rule file and the outcome of its tests."""

    path: str
    version: int
    sha256: str
    groups: int
    scoring_rules: int
    qualification_rules: int
    routing_rules: int
    outcomes: list[TestOutcome]

    @property
    def passed(self) -> bool:
        """True when every test passed."""
        return all(outcome.passed for outcome in self.outcomes)

    def format(self) -> str:
        """Human-readable lines: the file, its identity, counts, then each failure."""
        failed = [o for o in self.outcomes if not o.passed]
        lines = [
            f"{self.path}: version {self.version}, sha256 {self.sha256}",
            f"  {self.groups} groups, {self.scoring_rules} scoring rules, "
            f"{self.qualification_rules} qualification entries, {self.routing_rules} routing rules",
            f"  tests: {len(self.outcomes) - len(failed)} passed, {len(failed)} failed",
        ]
        for outcome in failed:
            lines.append(f"  FAILED {outcome.name}")
            lines.extend(f"    {diff}" for diff in outcome.diffs)
        return "\n".join(lines)


def lead_from_test(lead: dict[str, Any]) -> LeadIn:
    """A test's ``lead:`` as a ``LeadIn``, checked exactly as a posted lead body is.

    Keys the contract does not name become attributes; a lead needs an email or a phone.
    Raises ``InvalidLead`` (a ``ValueError``) naming the bad fields.
    """
    from leadroute.intake.parse import parse_lead

    try:
        body = msgspec.json.encode(lead)
    except (TypeError, msgspec.EncodeError) as exc:
        raise ValueError(f"the test lead cannot be read as JSON: {exc}") from None
    return parse_lead(body)


def rule_test_inputs(test: TestSpec, lead: LeadIn | None = None) -> tuple[list[Activity], datetime]:
    """A test's activities and the ``now`` to evaluate it at (see the module docstring).

    ``lead`` (the parsed test lead) supplies its ``occurred_at`` as a last resort for ``now``.
    Use as ``evaluate(ruleset, lead, activities=activities, now=now)``.
    """
    explicit = [a.occurred_at for a in test.activities if a.occurred_at is not None]
    if test.now is not None:
        now = test.now
    elif explicit:
        now = max(explicit)
    elif lead is not None and lead.occurred_at is not None:
        now = lead.occurred_at if lead.occurred_at.tzinfo else lead.occurred_at.replace(tzinfo=UTC)
    else:
        now = TEST_EPOCH
    activities = [
        Activity(
            type=a.type,
            occurred_at=a.occurred_at or now - timedelta(days=a.age_days or 0.0),
            properties=dict(a.properties),
        )
        for a in test.activities
    ]
    return activities, now


def _default_normalizer() -> Normalizer:
    from leadroute.intake.normalize import normalize

    return normalize


def run_ruleset_tests(ruleset: Ruleset, *, normalize: Normalizer | None = None) -> list[TestOutcome]:
    """Run every test in ``ruleset``; ``normalize`` defaults to intake's normalization."""
    normalizer = normalize or _default_normalizer()
    return [_run_one(ruleset, test.spec, normalizer) for test in ruleset.tests]


def _run_one(ruleset: Ruleset, test: TestSpec, normalize: Normalizer) -> TestOutcome:
    from leadroute.scoring import destination, evaluate

    try:
        lead_in = lead_from_test(test.lead)
        lead = normalize(lead_in)
    except ValueError as exc:
        # intake's InvalidLead is a ValueError; each field error says what is wrong with that field.
        errors = getattr(exc, "errors", None)
        if errors:
            reasons = "; ".join(f"{e.field}: {e.message}" for e in errors)
            return TestOutcome(test.name, False, [f"lead is invalid: {reasons} (fix the test's lead)"])
        return TestOutcome(test.name, False, [f"lead is invalid: {exc}"])
    activities, now = rule_test_inputs(test, lead_in)
    result = evaluate(ruleset, lead, activities=activities, now=now)
    expect = test.expect
    diffs: list[str] = []
    if expect.stage is not None and expect.stage != result.stage:
        diffs.append(f"stage: expected {expect.stage}, got {result.stage}")
    if expect.pool is not None and expect.pool != destination(result):
        diffs.append(
            f"pool: expected {expect.pool}, got {destination(result)}{pool_hint(expect.pool, result)}"
        )
    if expect.score is not None and abs(expect.score - result.score) > SCORE_TOLERANCE:
        diffs.append(f"score: expected {expect.score:g}, got {result.score:g}")
    if expect.matched is not None:
        hit = {h.rule for h in result.hits}
        missing = [rule for rule in expect.matched if rule not in hit]
        if missing:
            matched = ", ".join(sorted(hit)) or "none"
            diffs.append(f"matched: expected {', '.join(missing)} to match; matched: {matched}")
    if expect.targets is not None:
        targets = [t.rule for t in result.targets]
        if targets != expect.targets:
            got = ", ".join(targets) or "none"
            diffs.append(f"targets: expected {', '.join(expect.targets)}, got {got}")
    return TestOutcome(test.name, not diffs, diffs)


def pool_hint(expected: str, result: Evaluation) -> str:
    """Why a lead expected in a pool named like the fallback queue is in that queue instead."""
    if result.pool is not None or expected != result.fallback:
        return ""
    return (
        f" (no pool rule matched, so the lead waits in the fallback queue; "
        f"to expect that, write pool: '{QUEUE_PREFIX}{result.fallback}')"
    )


def check_rules(
    path: Path, *, normalize: Normalizer | None = None, evaluator: Evaluator | None = None
) -> CheckReport:
    """Load the rule file at ``path`` (:class:`RulesetError` propagates) and run its tests."""
    ruleset = load_rules_path(path, evaluator=evaluator)
    return CheckReport(
        path=ruleset.display_path,
        version=ruleset.version,
        sha256=ruleset.sha256,
        groups=len(ruleset.groups),
        scoring_rules=len(ruleset.scoring_rules),
        qualification_rules=len(ruleset.qualification_rules),
        routing_rules=len(ruleset.routing_rules),
        outcomes=run_ruleset_tests(ruleset, normalize=normalize),
    )
