"""Scoring, qualification and routing-rule choice: pure functions of a ruleset and a lead."""

from __future__ import annotations

from pathlib import Path

import pytest

from leadroute.models import GroupScore, NormalizedLead, RuleHit
from leadroute.rules import Ruleset, parse_ruleset
from leadroute.scoring import RouteTry, evaluate

RULES = """\
version: 3
fields:
  attributes.form: STRING
  attributes.seats: FLOAT
scoring:
  groups:
    fit: {max: 50}
    engagement: {max: 30, min: -10}
  rules:
    - {id: senior-title, group: fit, when: 'title =~~ "(?i)(vp|director)"', points: 30}
    - {id: big-company, group: fit, when: '(employees ?? 0) >= 1000', points: 30}
    - {id: free-email, group: fit, when: is_free_email, points: -20}
    - {id: demo, group: engagement, when: 'attributes.form == "demo"', points: 25}
    - {id: newsletter, group: engagement, when: 'attributes.form == "newsletter"', points: -15}
    - {id: unsubscribed, group: engagement, when: 'attributes.form == "unsubscribe"', points: -40}
    - {id: many-seats, group: engagement, when: 'attributes.seats > 100', points: 10}
    - {id: revenue-raw, group: fit, when: 'annual_revenue >= 1000000', points: 5}
qualification:
  - {id: competitor, stage: disqualified, when: 'email_domain in ["competitor.example"]'}
  - {id: sql, stage: sql, when: 'score >= 60 and groups.fit >= 50'}
  - {id: mql, stage: mql, when: 'score >= 40'}
routing:
  rules:
    - {id: broken, when: 'employees > 5000', pool: big}
    - {id: enterprise, when: 'stage in ["sql", "mql"] and (employees ?? 0) >= 1000', pool: enterprise-na}
    - {id: emea, when: 'country in ["DE", "FR"]', pool: emea}
  fallback: unassigned
"""


@pytest.fixture(scope="module")
def ruleset() -> Ruleset:
    return parse_ruleset(RULES, path=Path("scoring.yaml"))


def lead(**values: object) -> NormalizedLead:
    return NormalizedLead(**values)  # type: ignore[arg-type]


class TestScore:
    """Matched rules add their points to their group; groups are clamped; the total sums groups."""

    def test_points_add_up_within_caps(self, ruleset: Ruleset) -> None:
        result = evaluate(ruleset, lead(title="VP Sales", employees=50, attributes={"form": "demo"}))
        assert result.hits == [RuleHit("senior-title", "fit", 30), RuleHit("demo", "engagement", 25)]
        assert result.groups["fit"] == GroupScore(raw=30, score=30, max=50, min=None)
        assert result.score == 55

    def test_group_is_capped_at_its_max(self, ruleset: Ruleset) -> None:
        result = evaluate(ruleset, lead(title="Director", employees=5000))
        assert result.groups["fit"] == GroupScore(raw=60, score=50, max=50, min=None)
        assert result.score == 50

    def test_negative_points_lower_the_group(self, ruleset: Ruleset) -> None:
        result = evaluate(ruleset, lead(title="VP", is_free_email=True))
        assert result.groups["fit"].raw == 10
        assert result.score == 10

    def test_negative_group_without_min_stays_negative(self, ruleset: Ruleset) -> None:
        result = evaluate(ruleset, lead(is_free_email=True))
        assert result.groups["fit"].score == -20
        assert result.score == -20

    def test_group_is_floored_at_its_min(self, ruleset: Ruleset) -> None:
        result = evaluate(ruleset, lead(attributes={"form": "unsubscribe"}))
        assert result.groups["engagement"] == GroupScore(raw=-40, score=-10, max=30, min=-10)
        assert result.score == -10

    def test_every_group_is_reported_even_without_hits(self, ruleset: Ruleset) -> None:
        result = evaluate(ruleset, lead())
        assert set(result.groups) == {"fit", "engagement"}
        assert result.score == 0
        assert result.hits == []


class TestNulls:
    """Missing values are null: equality, membership and regex are false; nothing is raised."""

    def test_empty_lead_matches_nothing_and_records_only_ordered_comparisons(self, ruleset: Ruleset) -> None:
        result = evaluate(ruleset, lead())
        assert result.hits == []
        # These ordered comparisons have no `??`: comparing null raises, and is recorded, not fatal.
        assert [e.rule for e in result.rule_errors] == ["many-seats", "revenue-raw"]

    def test_declared_attribute_missing_is_null(self, ruleset: Ruleset) -> None:
        result = evaluate(ruleset, lead(annual_revenue=0.0, attributes={"other": "x"}))
        assert "demo" not in {h.rule for h in result.hits}

    def test_declared_numeric_attribute(self, ruleset: Ruleset) -> None:
        result = evaluate(ruleset, lead(annual_revenue=1.0, attributes={"seats": 500}))
        assert {h.rule for h in result.hits} == {"many-seats"}
        assert result.rule_errors == []


class TestRuleErrors:
    """A rule that raises counts as not matched, is recorded, and does not affect other rules."""

    def test_wrong_attribute_type_is_isolated(self, ruleset: Ruleset) -> None:
        result = evaluate(
            ruleset, lead(title="VP", annual_revenue=5e6, attributes={"seats": "lots", "form": "demo"})
        )
        assert {h.rule for h in result.hits} == {"senior-title", "demo", "revenue-raw"}
        assert [e.rule for e in result.rule_errors] == ["many-seats"]
        assert result.rule_errors[0].message
        assert "lots" not in result.rule_errors[0].message  # lead values stay out of messages


class TestQualification:
    """The first qualification entry that matches gives the stage; none matching gives ``lead``."""

    def test_first_match_wins(self, ruleset: Ruleset) -> None:
        result = evaluate(
            ruleset,
            lead(email_domain="competitor.example", title="VP", employees=5000, attributes={"form": "demo"}),
        )
        assert result.score == 75
        assert (result.stage, result.qualification_rule) == ("disqualified", "competitor")

    def test_group_scores_are_facts(self, ruleset: Ruleset) -> None:
        sql = evaluate(ruleset, lead(title="VP", employees=5000, attributes={"form": "demo"}))
        assert (sql.stage, sql.qualification_rule) == ("sql", "sql")
        # score 60 (engagement capped at 30) but fit only 30: not sql, falls to mql.
        mql = evaluate(ruleset, lead(title="VP", attributes={"form": "demo", "seats": 200}))
        assert (mql.score, mql.stage, mql.qualification_rule) == (60, "mql", "mql")

    def test_no_entry_matching_gives_lead(self, ruleset: Ruleset) -> None:
        result = evaluate(ruleset, lead(title="VP"))
        assert (result.stage, result.qualification_rule) == ("lead", None)


class TestRouting:
    """Routing rules are tried in order up to the first match; none matching leaves the fallback."""

    def test_first_match_and_what_was_tried(self, ruleset: Ruleset) -> None:
        result = evaluate(
            ruleset, lead(title="VP", employees=5000, country="DE", attributes={"form": "demo"})
        )
        assert (result.routing_rule, result.pool) == ("enterprise", "enterprise-na")
        assert result.routes_tried == [RouteTry("broken", False, None), RouteTry("enterprise", True, None)]
        assert result.fallback == "unassigned"

    def test_erroring_route_is_recorded_and_skipped(self, ruleset: Ruleset) -> None:
        result = evaluate(ruleset, lead(country="FR"))
        assert (result.routing_rule, result.pool) == ("emea", "emea")
        assert [t.rule for t in result.routes_tried] == ["broken", "enterprise", "emea"]
        assert result.routes_tried[0].error is not None
        assert not result.routes_tried[0].matched

    def test_no_match_leaves_pool_empty(self, ruleset: Ruleset) -> None:
        result = evaluate(ruleset, lead(country="US"))
        assert (result.routing_rule, result.pool, result.fallback) == (None, None, "unassigned")
        assert len(result.routes_tried) == 3

    def test_identity_is_recorded(self, ruleset: Ruleset) -> None:
        result = evaluate(ruleset, lead())
        assert (result.ruleset_version, result.ruleset_sha256) == (3, ruleset.sha256)
