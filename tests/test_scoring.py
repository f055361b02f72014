"""Scoring, qualification and routing-rule choice: pure functions of a ruleset and a lead."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from leadroute.models import Activity, GroupScore, LeadIn, NormalizedLead, RuleHit
from leadroute.rules import Ruleset, Sla, parse_ruleset, rule_test_inputs, run_ruleset_tests
from leadroute.rules._filetests import TEST_EPOCH
from leadroute.scoring import RouteTarget, RouteTry, decay_factor, evaluate

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


ACTIVITY_RULES = """\
version: 1
fields:
  activity.url: STRING
  activity.minutes: FLOAT
  attributes.form: STRING
scoring:
  groups:
    fit: {max: 50}
    engagement: {max: 30, min: 0, half_life_days: 10}
    intent: {min: -5}
  rules:
    - {id: vp, group: fit, when: 'title == "VP"', points: 20}
    - {id: demo-form, group: engagement, when: 'attributes.form == "demo"', points: 10}
    - {id: pricing, group: engagement, on_activity: page_view, when: 'url =~~ "/pricing"', points: 8}
    - {id: webinar, group: engagement, on_activity: [webinar_attended, webinar_watched],
       when: '(minutes ?? 0) >= 30 and lead.title == "VP"', points: 12}
    - {id: careers, group: intent, on_activity: page_view, when: 'url =~~ "/careers"', points: -3}
qualification:
  - {id: mql, stage: mql, when: 'score >= 40'}
  - {id: lead, stage: lead}
routing:
  rules:
    - {id: existing-account, when: 'true', route: account_owner}
    - id: mql-owner
      when: 'stage == "mql"'
      route: account_owner
      sla: {accept_within_minutes: 5, on_breach: escalate}
    - {id: mql-pool, when: 'stage == "mql"', pool: hot}
    - {id: everyone-else, when: 'true', pool: inbound}
  fallback: unassigned
  sla: {accept_within_minutes: 30, on_breach: reassign}
"""

NOW = datetime(2025, 3, 1, 12, tzinfo=UTC)


def seen(kind: str, days_ago: float, **properties: object) -> Activity:
    return Activity(type=kind, occurred_at=NOW - timedelta(days=days_ago), properties=properties)


@pytest.fixture(scope="module")
def activity_rules() -> Ruleset:
    return parse_ruleset(ACTIVITY_RULES, path=Path("activity.yaml"))


class TestActivityScoring:
    """on_activity rules score each matching activity, against its properties and the lead."""

    def test_each_matching_activity_scores_once(self, activity_rules: Ruleset) -> None:
        result = evaluate(
            activity_rules,
            lead(),
            activities=[seen("page_view", 0, url="/pricing"), seen("page_view", 0, url="/pricing/teams")],
            now=NOW,
        )
        assert [(h.rule, h.points, h.activity, h.occurred_at) for h in result.hits] == [
            ("pricing", 8, "page_view", NOW),
            ("pricing", 8, "page_view", NOW),
        ]
        assert result.score == 16

    def test_only_activities_of_the_rules_type(self, activity_rules: Ruleset) -> None:
        result = evaluate(
            activity_rules, lead(), activities=[seen("email_click", 0, url="/pricing")], now=NOW
        )
        assert result.hits == []
        assert result.score == 0

    def test_a_list_of_types_and_lead_facts(self, activity_rules: Ruleset) -> None:
        acts = [seen("webinar_attended", 0, minutes=45), seen("webinar_watched", 0, minutes=31)]
        vp = evaluate(activity_rules, lead(title="VP"), activities=acts, now=NOW)
        assert [h.activity for h in vp.hits if h.rule == "webinar"] == ["webinar_attended", "webinar_watched"]
        other = evaluate(activity_rules, lead(title="Analyst"), activities=acts, now=NOW)
        assert [h.rule for h in other.hits] == []

    def test_missing_property_is_null_and_wrong_type_is_an_isolated_error(
        self, activity_rules: Ruleset
    ) -> None:
        acts = [seen("page_view", 0), seen("page_view", 0, url=5), seen("page_view", 0, url="/pricing")]
        result = evaluate(activity_rules, lead(), activities=acts, now=NOW)
        assert [h.rule for h in result.hits] == ["pricing"]
        assert {e.rule for e in result.rule_errors} == {"pricing", "careers"}
        assert all(e.message.startswith("page_view at ") for e in result.rule_errors)

    def test_one_error_entry_per_rule_however_many_activities_fail(self, activity_rules: Ruleset) -> None:
        result = evaluate(
            activity_rules, lead(), activities=[seen("page_view", n, url=5) for n in range(3)], now=NOW
        )
        assert [e.rule for e in result.rule_errors] == ["pricing", "careers"]
        assert "(and 2 more activities)" in result.rule_errors[0].message
        assert result.rule_errors[0].message.startswith(
            f"page_view at {(NOW - timedelta(days=2)).isoformat()}"
        )

    def test_lead_level_rules_still_count(self, activity_rules: Ruleset) -> None:
        result = evaluate(
            activity_rules,
            lead(title="VP", attributes={"form": "demo"}),
            activities=[seen("page_view", 0, url="/pricing")],
        )
        assert [h.rule for h in result.hits] == ["vp", "demo-form", "pricing"]
        assert result.score == 38


class TestDecay:
    """Activity points halve every half_life_days; lead-level points never decay; caps apply after."""

    def test_points_halve_each_half_life(self, activity_rules: Ruleset) -> None:
        acts = [
            seen("page_view", 0, url="/pricing"),
            seen("page_view", 10, url="/pricing"),
            seen("page_view", 20, url="/pricing"),
        ]
        result = evaluate(activity_rules, lead(), activities=acts, now=NOW)
        assert sorted((h.points, h.decay) for h in result.hits) == [(2, 0.25), (4, 0.5), (8, 1)]
        assert result.score == pytest.approx(14)
        assert result.as_of == NOW

    def test_fractional_age(self, activity_rules: Ruleset) -> None:
        result = evaluate(activity_rules, lead(), activities=[seen("page_view", 3, url="/pricing")], now=NOW)
        assert result.hits[0].points == pytest.approx(8 * 0.5**0.3)
        assert result.score == pytest.approx(8 * 0.5**0.3)

    def test_lead_points_do_not_decay(self, activity_rules: Ruleset) -> None:
        result = evaluate(
            activity_rules,
            lead(attributes={"form": "demo"}),
            activities=[seen("page_view", 40, url="/x")],
            now=NOW,
        )
        assert [(h.rule, h.points, h.decay) for h in result.hits] == [("demo-form", 10, None)]

    def test_group_without_half_life_does_not_decay(self, activity_rules: Ruleset) -> None:
        result = evaluate(
            activity_rules, lead(), activities=[seen("page_view", 100, url="/careers")], now=NOW
        )
        assert [(h.rule, h.points, h.decay) for h in result.hits] == [("careers", -3, 1)]

    def test_future_activity_counts_in_full(self, activity_rules: Ruleset) -> None:
        result = evaluate(activity_rules, lead(), activities=[seen("page_view", -2, url="/pricing")], now=NOW)
        assert result.hits[0].points == 8

    def test_cap_applies_after_decay(self, activity_rules: Ruleset) -> None:
        # Six fresh pricing views (48) cap at 30; six views one half-life old (24) do not.
        fresh = evaluate(
            activity_rules, lead(), activities=[seen("page_view", 0, url="/pricing")] * 6, now=NOW
        )
        assert fresh.groups["engagement"] == GroupScore(raw=48, score=30, max=30, min=0)
        old = evaluate(
            activity_rules, lead(), activities=[seen("page_view", 10, url="/pricing")] * 6, now=NOW
        )
        assert old.groups["engagement"].raw == pytest.approx(24)
        assert old.groups["engagement"].score == pytest.approx(24)

    def test_min_floor_applies_to_negative_activity_points(self, activity_rules: Ruleset) -> None:
        acts = [seen("page_view", 0, url="/careers")] * 3
        result = evaluate(activity_rules, lead(), activities=acts, now=NOW)
        assert result.groups["intent"] == GroupScore(raw=-9, score=-5, max=None, min=-5)
        assert result.score == -5

    def test_now_defaults_to_the_latest_activity_or_lead_time(self, activity_rules: Ruleset) -> None:
        acts = [seen("page_view", 10, url="/pricing"), seen("email_click", 0)]
        result = evaluate(activity_rules, lead(), activities=acts)
        assert result.as_of == NOW
        assert result.score == pytest.approx(4)
        later = evaluate(activity_rules, lead(occurred_at=NOW + timedelta(days=10)), activities=acts)
        assert later.as_of == NOW + timedelta(days=10)
        assert later.score == pytest.approx(2)

    def test_no_activities_no_as_of(self, activity_rules: Ruleset) -> None:
        assert evaluate(activity_rules, lead()).as_of is None

    def test_decay_factor(self) -> None:
        assert decay_factor(None, NOW - timedelta(days=100), NOW) == 1
        assert decay_factor(7, NOW - timedelta(days=7), NOW) == 0.5
        assert decay_factor(7, NOW + timedelta(days=7), NOW) == 1


class TestTargets:
    """account_owner rules become targets ahead of the first matching pool rule."""

    def test_account_owner_then_pool_with_slas(self, activity_rules: Ruleset) -> None:
        result = evaluate(
            activity_rules,
            lead(title="VP", attributes={"form": "demo"}),
            activities=[seen("page_view", 0, url="/pricing")] * 2,
        )
        assert result.stage == "mql"
        default = Sla(accept_within_minutes=30, on_breach="reassign")
        assert result.targets == [
            RouteTarget(rule="existing-account", kind="account_owner", pool=None, sla=default),
            RouteTarget(
                rule="mql-owner",
                kind="account_owner",
                pool=None,
                sla=Sla(accept_within_minutes=5, on_breach="escalate"),
            ),
            RouteTarget(rule="mql-pool", kind="pool", pool="hot", sla=default),
        ]
        assert (result.routing_rule, result.pool) == ("mql-pool", "hot")
        assert [t.rule for t in result.routes_tried] == ["existing-account", "mql-owner", "mql-pool"]

    def test_unmatched_account_owner_rule_is_not_a_target(self, activity_rules: Ruleset) -> None:
        result = evaluate(activity_rules, lead())
        assert [(t.rule, t.kind) for t in result.targets] == [
            ("existing-account", "account_owner"),
            ("everyone-else", "pool"),
        ]
        assert result.routes_tried[1] == RouteTry("mql-owner", False, None)

    def test_no_pool_rule_matching_keeps_account_owner_targets(self) -> None:
        text = ACTIVITY_RULES.replace("    - {id: everyone-else, when: 'true', pool: inbound}\n", "")
        result = evaluate(parse_ruleset(text), lead())
        assert [t.rule for t in result.targets] == ["existing-account"]
        assert (result.routing_rule, result.pool, result.fallback) == (None, None, "unassigned")

    def test_without_sla_targets_have_none(self, ruleset: Ruleset) -> None:
        result = evaluate(ruleset, lead(country="FR"))
        assert result.targets == [RouteTarget(rule="emea", kind="pool", pool="emea", sla=None)]


FILE_TESTS = """\
version: 1
fields: {activity.url: STRING}
scoring:
  groups: {engagement: {max: 30, half_life_days: 7}}
  rules:
    - {id: pricing, group: engagement, on_activity: page_view, when: 'url =~~ "/pricing"', points: 8}
qualification:
  - {id: mql, stage: mql, when: 'score >= 8'}
  - {id: lead, stage: lead}
routing:
  rules:
    - {id: owner, when: 'stage == "mql"', route: account_owner}
    - {id: rest, when: 'true', pool: inbound}
  fallback: unassigned
tests:
  - name: ages are relative to the test's now
    lead: {email: a@b.example}
    activities: [{type: page_view, age_days: 7, properties: {url: /pricing}}]
    expect: {score: 4, stage: lead, targets: [rest]}
  - name: explicit times decay to the latest of them
    lead: {email: a@b.example}
    activities:
      - {type: page_view, occurred_at: 2025-03-01T00:00:00Z, properties: {url: /pricing}}
      - {type: email_click, occurred_at: 2025-03-08T00:00:00Z}
    expect: {score: 4}
  - name: an explicit now
    lead: {email: a@b.example}
    now: 2025-03-15T00:00:00Z
    activities: [{type: page_view, occurred_at: 2025-03-01T00:00:00Z, properties: {url: /pricing}}]
    expect: {score: 2}
  - name: a fresh view makes an MQL routed to the account owner first
    lead: {email: a@b.example}
    activities: [{type: page_view, properties: {url: /pricing}}]
    expect: {score: 8, stage: mql, targets: [owner, rest], matched: [pricing]}
  - name: a wrong expectation shows both sides
    lead: {email: a@b.example}
    activities: [{type: page_view, properties: {url: /pricing}}]
    expect: {targets: [rest]}
"""


class TestRuleFileTestsWithActivities:
    """Rule-file tests can give activities; ages are relative to the test's now."""

    def test_outcomes(self) -> None:
        outcomes = run_ruleset_tests(parse_ruleset(FILE_TESTS))
        assert [(o.name, o.passed) for o in outcomes[:4]] == [
            ("ages are relative to the test's now", True),
            ("explicit times decay to the latest of them", True),
            ("an explicit now", True),
            ("a fresh view makes an MQL routed to the account owner first", True),
        ], [o.diffs for o in outcomes]
        assert outcomes[4].diffs == ["targets: expected rest, got owner, rest"]

    def test_inputs(self) -> None:
        ruleset = parse_ruleset(FILE_TESTS)
        activities, now = rule_test_inputs(ruleset.tests[0].spec)
        assert now == TEST_EPOCH
        assert activities == [
            Activity(
                type="page_view", occurred_at=TEST_EPOCH - timedelta(days=7), properties={"url": "/pricing"}
            )
        ]
        _, now = rule_test_inputs(ruleset.tests[1].spec)
        assert now == datetime(2025, 3, 8, tzinfo=UTC)
        _, now = rule_test_inputs(ruleset.tests[2].spec)
        assert now == datetime(2025, 3, 15, tzinfo=UTC)
        lead_in = LeadIn(email="a@b.example", occurred_at=datetime(2025, 6, 1, tzinfo=UTC))
        activities, now = rule_test_inputs(ruleset.tests[3].spec, lead_in)
        assert now == datetime(2025, 6, 1, tzinfo=UTC)
        assert activities[0].occurred_at == now
