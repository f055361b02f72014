"""Replay: the pure diff core, the progress line, and end to end on leads posted through the API."""

from __future__ import annotations

import asyncio
import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from leadroute.cli import main
from leadroute.config import Settings
from leadroute.models import NormalizedLead
from leadroute.replay import (
    Outcome,
    ProgressBar,
    ReplayAccumulator,
    RulesetInfo,
    Side,
    format_report,
    outcome_of,
    parse_since,
    replay_stored,
    score_stats,
    unknown_pools,
)
from leadroute.rules import Ruleset, parse_ruleset
from leadroute.scoring import evaluate
from process_support import ROOT, cli_env, leadroute
from support import connection, post_one, redis_state

INBOUND = (ROOT / "rules" / "inbound.yaml").read_text(encoding="utf-8")
AS_OF = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
INFO = RulesetInfo(version=1, sha256="a" * 64, source="test")


def outcome(
    stage: Any = "lead",
    *,
    score: float = 10,
    pool: str = "inbound",
    targets: str | None = None,
    matched: tuple[str, ...] = (),
    errors: tuple[str, ...] = (),
) -> Outcome:
    return Outcome(
        stage=stage, score=score, pool=pool, targets=targets or pool, matched=matched, errors=errors
    )


def report(acc: ReplayAccumulator) -> Any:
    return acc.report(baseline=INFO, candidate=INFO, as_of=AS_OF)


class TestAccumulator:
    """Each (before, after) pair is counted once in the matrix; only changes become transitions."""

    def test_stage_matrix_counts_every_lead(self) -> None:
        acc = ReplayAccumulator()
        acc.add("a", outcome("lead"), outcome("mql"))
        acc.add("b", outcome("lead"), outcome("mql"))
        acc.add("c", outcome("sql"), outcome("sql"))
        acc.add("d", outcome("mql"), outcome("disqualified"))
        r = report(acc)
        assert r.leads == 4
        assert r.stage_matrix["lead"] == {"disqualified": 0, "lead": 0, "mql": 2, "sql": 0}
        assert r.stage_matrix["sql"]["sql"] == 1
        assert r.stage_matrix["mql"]["disqualified"] == 1
        assert list(r.stage_matrix) == ["disqualified", "lead", "mql", "sql"]
        assert sum(sum(row.values()) for row in r.stage_matrix.values()) == 4
        assert [(t.from_, t.to, t.count) for t in r.stage_changes] == [
            ("lead", "mql", 2),
            ("mql", "disqualified", 1),
        ]
        assert r.changed == 3

    def test_pool_and_target_changes(self) -> None:
        acc = ReplayAccumulator()
        acc.add("a", outcome(pool="inbound"), outcome(pool="emea"))
        acc.add("b", outcome(pool="inbound"), outcome(pool="emea"))
        acc.add("c", outcome(pool="emea"), outcome(pool="queue:unassigned"))
        acc.add(
            "d",
            outcome(pool="emea", targets="emea"),
            outcome(pool="emea", targets="account_owner > emea"),
        )
        r = report(acc)
        assert [(t.from_, t.to, t.count) for t in r.pool_changes] == [
            ("inbound", "emea", 2),
            ("emea", "queue:unassigned", 1),
        ]
        assert ("emea", "account_owner > emea", 1) in [(t.from_, t.to, t.count) for t in r.target_changes]
        assert r.examples["pool inbound -> emea"] == ["a", "b"]
        assert r.examples["targets emea -> account_owner > emea"] == ["d"]

    def test_unchanged_leads_are_not_changes(self) -> None:
        acc = ReplayAccumulator()
        acc.add("a", outcome(matched=("x",)), outcome(matched=("x",)))
        r = report(acc)
        assert (r.leads, r.changed, r.score_changed) == (1, 0, 0)
        assert r.stage_changes == []
        assert r.pool_changes == []
        assert r.examples == {}
        assert r.rules == {}

    def test_examples_are_capped_per_kind(self) -> None:
        acc = ReplayAccumulator(examples=2)
        for n in range(5):
            acc.add(f"lead-{n}", outcome("lead", score=n), outcome("mql", score=n + 1))
        r = report(acc)
        assert r.examples["stage lead -> mql"] == ["lead-0", "lead-1"]
        assert r.examples["score up"] == ["lead-0", "lead-1"]
        assert len(r.largest_score_changes) == 2

    def test_float_noise_is_not_a_change_and_zero_examples_lists_none(self) -> None:
        acc = ReplayAccumulator(examples=0)
        acc.add("a", outcome(score=0.1 + 0.2), outcome(score=0.3))
        acc.add("b", outcome("lead"), outcome("mql"))
        r = report(acc)
        assert (r.score_changed, r.changed) == (0, 1)
        assert r.examples == {}
        assert r.largest_score_changes == []

    def test_largest_score_changes_by_size_either_direction(self) -> None:
        acc = ReplayAccumulator(examples=2)
        acc.add("small", outcome(score=10), outcome(score=12))
        acc.add("drop", outcome(score=50), outcome(score=20))
        acc.add("rise", outcome(score=0), outcome(score=25))
        r = report(acc)
        assert [(c.lead_id, c.before, c.after) for c in r.largest_score_changes] == [
            ("drop", 50, 20),
            ("rise", 0, 25),
        ]
        assert r.examples["score down"] == ["drop"]

    def test_rule_match_counts_and_errors(self) -> None:
        acc = ReplayAccumulator()
        acc.add("a", outcome(matched=("demo", "vp")), outcome(matched=("vp",), errors=("broken",)))
        acc.add("b", outcome(matched=("demo",)), outcome(matched=("new",), errors=("broken", "broken")))
        r = report(acc)
        assert {k: (v.before, v.after) for k, v in r.rules.items()} == {"demo": (2, 0), "new": (0, 1)}
        assert {k: (v.before, v.after) for k, v in r.rule_errors.items()} == {"broken": (0, 2)}

    def test_drift_from_the_stored_stage(self) -> None:
        acc = ReplayAccumulator()
        acc.add("a", outcome("lead"), outcome("lead"), stored_stage="mql")
        acc.add("b", outcome("lead"), outcome("mql"), stored_stage="lead")
        acc.add("c", outcome("lead"), outcome("lead"))
        assert report(acc).baseline_drift == 1

    def test_skipped_leads_are_counted_apart(self) -> None:
        acc = ReplayAccumulator()
        acc.skip()
        r = report(acc)
        assert (r.leads, r.skipped) == (0, 1)
        assert r.scores_before.count == 0
        assert r.scores_before.mean is None


class TestScoreStats:
    """Mean and percentiles are exact; both sides share histogram buckets."""

    def test_statistics(self) -> None:
        stats = score_stats([0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100])
        assert (stats.count, stats.mean, stats.min, stats.max) == (11, 50, 0, 100)
        assert stats.p50 == 50
        assert stats.p90 == 90
        assert stats.histogram[0].low == 0
        assert stats.histogram[-1].high == 110
        assert [b.count for b in stats.histogram] == [1] * 11

    def test_percentiles_interpolate(self) -> None:
        stats = score_stats([1, 2, 3, 4])
        assert stats.p50 == 2.5
        assert stats.p90 == pytest.approx(3.7)

    def test_negative_scores_and_shared_buckets(self) -> None:
        acc = ReplayAccumulator()
        acc.add("a", outcome(score=-5), outcome(score=35))
        acc.add("b", outcome(score=12), outcome(score=12))
        r = report(acc)
        edges = [(b.low, b.high) for b in r.scores_before.histogram]
        assert edges == [(b.low, b.high) for b in r.scores_after.histogram]
        assert edges == [(-10, 0), (0, 10), (10, 20), (20, 30), (30, 40)]
        assert [b.count for b in r.scores_before.histogram] == [1, 0, 1, 0, 0]
        assert [b.count for b in r.scores_after.histogram] == [0, 0, 1, 0, 1]

    def test_empty(self) -> None:
        assert score_stats([]).histogram == []


ROUTES = """
version: 1
scoring:
  groups:
    fit: {max: 100}
  rules:
    - {id: big, group: fit, when: '(employees ?? 0) >= 1000', points: 50}
qualification:
  - {id: warm, stage: mql, when: 'score >= 50'}
  - {id: rest, stage: lead}
routing:
  rules:
    - {id: known-account, when: 'stage == "mql"', route: account_owner}
    - {id: enterprise, when: 'stage == "mql" and country == "US"', pool: enterprise-na}
    - {id: emea, when: 'country == "DE"', pool: emea}
  fallback: unassigned
"""


@pytest.fixture(scope="module")
def ruleset() -> Ruleset:
    return parse_ruleset(ROUTES, path=Path("routes.yaml"))


class TestOutcomeOf:
    """An evaluation reduces to stage, score, pool (or the fallback queue) and the target chain."""

    def test_account_owner_then_pool(self, ruleset: Ruleset) -> None:
        hot = outcome_of(evaluate(ruleset, NormalizedLead(employees=5000, country="US")))
        assert (hot.stage, hot.score, hot.pool) == ("mql", 50, "enterprise-na")
        assert hot.targets == "account_owner > enterprise-na"
        assert hot.matched == ("big",)

    def test_pool_only(self, ruleset: Ruleset) -> None:
        cold = outcome_of(evaluate(ruleset, NormalizedLead(country="DE")))
        assert (cold.pool, cold.targets) == ("emea", "emea")

    def test_no_pool_is_the_fallback_queue(self, ruleset: Ruleset) -> None:
        none = outcome_of(evaluate(ruleset, NormalizedLead(country="JP")))
        assert (none.pool, none.targets) == ("queue:unassigned", "queue:unassigned")
        owner_only = outcome_of(evaluate(ruleset, NormalizedLead(employees=5000, country="JP")))
        assert owner_only.targets == "account_owner > queue:unassigned"

    def test_rule_errors_are_listed(self) -> None:
        strict = parse_ruleset(
            ROUTES.replace("(employees ?? 0) >= 1000", "employees >= 1000"), path=Path("x.yaml")
        )
        assert outcome_of(evaluate(strict, NormalizedLead(country="US"))).errors == ("big",)


class TestUnknownPools:
    """A candidate routing to pools the database lacks: one warning per pool, naming its rules."""

    def test_each_missing_pool_names_the_rules_using_it(self, ruleset: Ruleset) -> None:
        twice = parse_ruleset(
            ROUTES.replace(
                "  fallback: unassigned\n",
                "    - {id: emea-late, when: 'country == \"FR\"', pool: emea}\n  fallback: unassigned\n",
            ),
            path=Path("routes.yaml"),
        )
        assert unknown_pools(ruleset, {"enterprise-na", "emea"}) == []
        [warning] = unknown_pools(twice, {"enterprise-na"})
        assert (warning.kind, warning.pool, warning.rules) == ("unknown_pool", "emea", ["emea", "emea-late"])
        assert warning.message == (
            "the candidate routes to pool 'emea', which does not exist (rules 'emea' (routes.yaml:15), "
            "'emea-late' (routes.yaml:16)): its leads would wait in queue 'unassigned', and "
            "activation refuses a ruleset naming an unknown pool: create the pool or fix the name"
        )
        assert [w.pool for w in unknown_pools(ruleset, set())] == ["enterprise-na", "emea"]


class TestParseSince:
    """``--since`` takes a duration before now or an ISO date."""

    @pytest.mark.parametrize(
        ("text", "delta"),
        [
            ("30d", timedelta(days=30)),
            ("12h", timedelta(hours=12)),
            ("90m", timedelta(minutes=90)),
            ("2w", timedelta(weeks=2)),
        ],
    )
    def test_durations(self, text: str, delta: timedelta) -> None:
        assert parse_since(text, now=AS_OF) == AS_OF - delta

    def test_dates(self) -> None:
        assert parse_since("2026-11-01", now=AS_OF) == datetime(2026, 11, 1, tzinfo=UTC)
        assert parse_since("2026-11-01T10:00:00+01:00", now=AS_OF) == datetime(2026, 11, 1, 9, tzinfo=UTC)

    def test_nonsense(self) -> None:
        with pytest.raises(ValueError, match="neither a duration"):
            parse_since("last tuesday", now=AS_OF)

    @pytest.mark.parametrize("text", ["800000d", "9999999999d", "99999999999999999999w"])
    def test_a_duration_longer_than_the_calendar_is_a_clear_error(self, text: str) -> None:
        with pytest.raises(ValueError, match="reaches back before the year 1"):
            parse_since(text, now=AS_OF)


class FakeStream(io.StringIO):
    def __init__(self, *, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


class TestProgressBar:
    """A bar redrawn in place on a terminal; a plain line now and then elsewhere."""

    def test_plain_lines_are_periodic(self) -> None:
        now = [0.0]
        stream = FakeStream(tty=False)
        bar = ProgressBar(stream, line_every=5, clock=lambda: now[0])
        bar(0, 1000)
        for done in range(100, 1000, 100):
            now[0] += 1
            bar(done, 1000)
        now[0] += 1
        bar(1000, 1000)
        bar.close()
        lines = stream.getvalue().splitlines()
        assert lines[0].startswith("replaying 0/1,000 leads (0%)")
        assert any(line.startswith("replaying 500/1,000 leads (50%)") for line in lines)
        assert lines[-1].startswith("replaying 1,000/1,000 leads (100%)")
        assert len(lines) == 3
        assert "\r" not in stream.getvalue()

    def test_terminal_redraws_in_place(self) -> None:
        stream = FakeStream(tty=True)
        bar = ProgressBar(stream, redraw_every=0, clock=lambda: 0.0)
        bar(5, 10)
        bar.close()
        text = stream.getvalue()
        assert text.startswith("\r\x1b[2K[###############...............] replaying 5/10 leads (50%)")
        assert text.endswith("\n")


VERSION = int(re.search(r"^version: (\d+)$", INBOUND, re.MULTILINE)[1])  # type: ignore[index]
"""The shipped ruleset's version: the one the ``client`` fixture's app records and activates."""

CANDIDATE = INBOUND.replace(f"version: {VERSION}\n", f"version: {VERSION + 1}\n", 1).replace(
    "when: 'score >= 40'", "when: 'score >= 30'"
)
"""The shipped rules with the MQL threshold lowered from 40 to 30."""

DEMO_LEADS: dict[str, dict[str, Any]] = {
    "vp-us-demo": {
        "email": "jane@acme.example",
        "first_name": "Jane",
        "title": "VP Sales",
        "employees": 5000,
        "country": "US",
        "website": "https://acme.example",
        "source": "web_form",
        "form": "demo",
    },
    "de-manager": {
        "email": "max@kraftwerk.example",
        "title": "IT Manager",
        "employees": 400,
        "country": "DE",
        "industry": "Manufacturing",
        "utm_medium": "cpc",
        "form": "pricing",
        "source": "web_form",
    },
    "student": {"email": "sam@gmail.com", "title": "Student", "country": "US", "form": "ebook"},
    "competitor": {"email": "spy@competitor.example", "title": "CEO", "employees": 2000, "country": "US"},
    "ca-enterprise": {"email": "li@maple.example", "title": "Analyst", "employees": 3000, "country": "CA"},
    "gb-enterprise": {"email": "ann@thames.example", "title": "Analyst", "employees": 3000, "country": "GB"},
    "phone-only": {"phone": "+1 415 555 0100"},
}
"""Scores under the shipped rules: 82 sql, 65 mql, 8, disqualified, 30 lead, 30 lead, 3."""


async def post_demo_leads(client: AsyncTestClient[Litestar]) -> dict[str, dict[str, Any]]:
    return {name: await post_one(client, body) for name, body in DEMO_LEADS.items()}


ENGAGEMENT = """
version: 10
fields:
  activity.url: STRING
scoring:
  groups:
    engagement: {max: 40, half_life_days: 14}
  rules:
    - {id: web-form, group: engagement, when: 'source == "web_form"', points: 1}
qualification:
  - {id: warm, stage: mql, when: 'score >= 30'}
  - {id: rest, stage: lead}
routing:
  rules:
    - {id: everyone, when: 'true', pool: inbound}
  fallback: unassigned
"""
WITH_PRICING = ENGAGEMENT.replace(
    "points: 1}\n",
    "points: 1}\n"
    "    - {id: pricing-page, group: engagement, on_activity: page_view, when: 'url =~~ \"/pricing\"',"
    " points: 28}\n",
)

EXPECTED_MATRIX = {
    "disqualified": {"disqualified": 1, "lead": 0, "mql": 0, "sql": 0},
    "lead": {"disqualified": 0, "lead": 2, "mql": 2, "sql": 0},
    "mql": {"disqualified": 0, "lead": 0, "mql": 1, "sql": 0},
    "sql": {"disqualified": 0, "lead": 0, "mql": 0, "sql": 1},
}


class TestReplayEndToEnd:
    """Leads posted through the API, replayed under a candidate that lowers the MQL threshold."""

    async def test_matrix_pools_and_examples(
        self, client: AsyncTestClient[Litestar], settings: Settings
    ) -> None:
        decided = await post_demo_leads(client)
        assert decided["ca-enterprise"]["stage"] == "lead"
        assert decided["ca-enterprise"]["score"] == 30
        async with connection(settings) as conn:
            active = parse_ruleset(INBOUND, path=Path("inbound.yaml"))
            candidate = parse_ruleset(CANDIDATE, path=Path("candidate.yaml"))
            r = await replay_stored(
                conn,
                baseline=Side(active, "active"),
                candidate=Side(candidate, "candidate.yaml"),
                as_of=AS_OF,
                batch_size=3,  # several batches through the cursor
            )
        assert r.leads == 7
        assert r.skipped == 0
        assert r.stage_matrix == EXPECTED_MATRIX
        assert r.baseline_drift == 0  # the baseline is the ruleset that decided them
        assert [(t.from_, t.to, t.count) for t in r.pool_changes] == [("inbound", "enterprise-na", 1)]
        assert sorted(r.examples["stage lead -> mql"]) == sorted(
            [decided["ca-enterprise"]["lead_id"], decided["gb-enterprise"]["lead_id"]]
        )
        assert r.examples["pool inbound -> enterprise-na"] == [decided["ca-enterprise"]["lead_id"]]
        assert r.scores_before.mean == r.scores_after.mean  # a threshold moves stages, not scores
        # No pool exists in this database: the replay ran anyway and says which pools are missing.
        assert [(w.pool, w.rules) for w in r.warnings] == [
            ("enterprise-na", ["enterprise-na"]),
            ("emea", ["emea"]),
            ("inbound", ["everyone-else"]),
        ]
        assert r.score_changed == 0
        assert (r.baseline.version, r.candidate.version) == (VERSION, VERSION + 1)
        text = format_report(r)
        assert "  warning    the candidate routes to pool 'emea', which does not exist (rule 'emea' (" in text
        assert "Stage transitions" in text
        assert "inbound -> enterprise-na" in text
        assert "jane@" not in text
        assert "acme.example" not in text

    async def test_stored_activities_are_replayed(
        self, client: AsyncTestClient[Litestar], settings: Settings
    ) -> None:
        decided = await post_demo_leads(client)
        lead_id = decided["student"]["lead_id"]
        now = datetime.now(UTC).replace(microsecond=0)
        for days, url in ((0, "/pricing"), (14, "/pricing"), (1, "/blog")):
            event = {
                "lead_id": lead_id,
                "type": "page_view",
                "occurred_at": (now - timedelta(days=days)).isoformat(),
                "properties": {"url": url},
            }
            posted = await client.post("/v1/events", json=event)
            assert posted.status_code in (200, 201), posted.text
        async with connection(settings) as conn:
            r = await replay_stored(
                conn,
                baseline=Side(parse_ruleset(ENGAGEMENT, path=Path("a.yaml")), "active"),
                candidate=Side(parse_ruleset(WITH_PRICING, path=Path("b.yaml")), "candidate"),
                as_of=now,
            )
        # 28 points for today's pricing view, 14 for the one a half-life (14 days) old, none for
        # the blog: 42, capped at the group's max of 40. No other lead has activities.
        assert r.score_changed == 1
        [change] = r.largest_score_changes
        assert (change.lead_id, change.before, change.after) == (lead_id, 0, 40)
        assert r.stage_changes[0].count == 1
        assert r.examples["stage lead -> mql"] == [lead_id]
        assert (r.rules["pricing-page"].before, r.rules["pricing-page"].after) == (0, 1)

    async def test_since_and_limit(self, client: AsyncTestClient[Litestar], settings: Settings) -> None:
        await post_demo_leads(client)
        async with connection(settings) as conn:
            await conn.execute(
                "UPDATE leads SET created_at = now() - interval '40 days' WHERE email LIKE 'li@%'"
            )
            side = Side(parse_ruleset(INBOUND, path=Path("a.yaml")), "active")
            cand = Side(parse_ruleset(CANDIDATE, path=Path("b.yaml")), "candidate")
            now = datetime.now(UTC)
            recent = await replay_stored(
                conn, baseline=side, candidate=cand, as_of=now, since=now - timedelta(days=30)
            )
            limited = await replay_stored(conn, baseline=side, candidate=cand, as_of=now, limit=2)
        assert recent.leads == 6
        assert recent.stage_matrix["lead"]["mql"] == 1  # the Canadian lead is older than 30 days
        assert recent.pool_changes == []
        assert limited.leads == 2

    async def test_replay_writes_nothing(self, client: AsyncTestClient[Litestar], settings: Settings) -> None:
        await post_demo_leads(client)
        tables = ("leads", "lead_events", "decisions", "assignments", "rulesets")
        async with connection(settings) as conn:
            before = [await conn.fetchval(f"SELECT count(*) FROM {t}") for t in tables]
            stamp = await conn.fetchval("SELECT max(updated_at) FROM leads")
            ruleset = Side(parse_ruleset(INBOUND, path=Path("a.yaml")), "active")
            await replay_stored(conn, baseline=ruleset, candidate=ruleset, as_of=AS_OF)
            after = [await conn.fetchval(f"SELECT count(*) FROM {t}") for t in tables]
            assert await conn.fetchval("SELECT max(updated_at) FROM leads") == stamp
        assert before == after

    async def test_admin_endpoint(self, client: AsyncTestClient[Litestar], settings: Settings) -> None:
        decided = await post_demo_leads(client)
        routing_before = await redis_state(settings)
        r = await client.post("/v1/rulesets/replay", json={"candidate": CANDIDATE})
        assert await redis_state(settings) == routing_before  # no routing state read or written
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["stage_matrix"] == EXPECTED_MATRIX
        assert body["pool_changes"] == [{"from": "inbound", "to": "enterprise-na", "count": 1}]
        assert body["baseline"]["source"] == "active"
        assert body["examples"]["pool inbound -> enterprise-na"] == [decided["ca-enterprise"]["lead_id"]]
        assert body["limit"] == 10_000
        assert [(w["kind"], w["pool"], w["rules"]) for w in body["warnings"]] == [
            ("unknown_pool", "enterprise-na", ["enterprise-na"]),
            ("unknown_pool", "emea", ["emea"]),
            ("unknown_pool", "inbound", ["everyone-else"]),
        ]
        assert "candidate.yaml:" in body["warnings"][0]["message"]
        for pool in ("enterprise-na", "emea", "inbound"):
            assert (await client.put(f"/v1/pools/{pool}", json={"members": []})).status_code == 200
        created = await client.post("/v1/rulesets/replay", json={"candidate": CANDIDATE})
        assert created.json()["warnings"] == []

        limited = await client.post("/v1/rulesets/replay", json={"candidate": CANDIDATE, "limit": 3})
        assert limited.json()["leads"] == 3

        same = await client.post("/v1/rulesets/replay", json={"version": VERSION})
        assert same.status_code == 200, same.text
        assert same.json()["changed"] == 0
        assert same.json()["candidate"]["source"] == f"stored version {VERSION}"

    async def test_admin_endpoint_errors(self, client: AsyncTestClient[Litestar]) -> None:
        r = await client.post("/v1/rulesets/replay", content=b"{not json")
        assert r.status_code == 400
        r = await client.post("/v1/rulesets/replay", json={})
        assert r.status_code == 422
        assert r.json()["errors"][0]["field"] == "candidate"
        r = await client.post("/v1/rulesets/replay", json={"version": 99})
        assert r.status_code == 422
        assert r.json()["errors"] == [{"field": "version", "message": "no stored ruleset has version 99"}]
        r = await client.post("/v1/rulesets/replay", json={"candidate": CANDIDATE, "limit": 0})
        assert r.status_code == 422
        assert r.json()["errors"][0]["field"] == "limit"
        r = await client.post("/v1/rulesets/replay", json={"candidate": CANDIDATE, "since": "yesterday"})
        assert r.status_code == 422
        assert r.json()["errors"][0]["field"] == "since"
        assert r.json()["detail"].startswith("since: 'yesterday' is neither")  # named once
        r = await client.post("/v1/rulesets/replay", json={"candidate": CANDIDATE, "since": "9999999999d"})
        assert r.status_code == 422
        assert r.json()["errors"][0]["field"] == "since"
        broken = CANDIDATE.replace("points: 25\n", "points: lots\n", 1)
        r = await client.post("/v1/rulesets/replay", json={"candidate": broken})
        assert r.status_code == 422
        assert r.json()["errors"][0]["rule"] == "title-c-level"
        assert r.json()["errors"][0]["line"] > 0


class TestReplayCli:
    """``leadroute rules replay`` prints the report, draws progress on stderr and writes JSON."""

    async def test_cli_report_and_output(
        self, client: AsyncTestClient[Litestar], settings: Settings, tmp_path: Path
    ) -> None:
        await post_demo_leads(client)
        candidate = tmp_path / "candidate.yaml"
        candidate.write_text(CANDIDATE, encoding="utf-8")
        out = tmp_path / "out.json"
        env = cli_env(settings, rules_path=str(ROOT / "rules"))
        proc = await asyncio.to_thread(
            leadroute,
            "rules",
            "replay",
            "--candidate",
            str(candidate),
            "--since",
            "30d",
            "--output",
            str(out),
            "--examples",
            "1",
            env=env,
        )
        assert proc.returncode == 0, proc.stderr
        assert "Replayed 7 leads" in proc.stdout
        assert "inbound -> enterprise-na" in proc.stdout
        warned = [line for line in proc.stdout.splitlines() if line.startswith("  warning    ")]
        assert len(warned) == 3  # no pool exists here: enterprise-na, emea, inbound
        assert f"pool 'inbound', which does not exist (rule 'everyone-else' ({candidate}:" in warned[2]
        assert "replaying 7/7 leads (100%)" in proc.stderr  # not a TTY: plain lines
        data = json.loads(out.read_text(encoding="utf-8"))
        assert data["stage_matrix"] == EXPECTED_MATRIX
        assert [w["pool"] for w in data["warnings"]] == ["enterprise-na", "emea", "inbound"]
        assert len(data["examples"]["stage lead -> mql"]) == 1
        assert data["candidate"]["source"].endswith("candidate.yaml")
        assert data["baseline"]["source"] == f"active (stored version {VERSION})"  # what the fleet runs

        same = await asyncio.to_thread(
            leadroute,
            "rules",
            "replay",
            "--candidate-version",
            str(VERSION),
            "--baseline-version",
            str(VERSION),
            env=env,
        )
        assert same.returncode == 0, same.stderr
        assert "changed    0 leads" in same.stdout
        missing = await asyncio.to_thread(leadroute, "rules", "replay", "--candidate-version", "999", env=env)
        assert missing.returncode == 1
        assert "no stored ruleset has version 999" in missing.stderr

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--since", "last tuesday"], "neither a duration"),
            (["--limit", "0"], "--limit must be at least 1"),
            (["--since", "9999999999d"], "reaches back before the year 1"),
            (["--output", "/nonexistent-dir/replay.json"], "no such directory /nonexistent-dir"),
        ],
    )
    def test_cli_bad_options(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], message: str
    ) -> None:
        candidate = tmp_path / "candidate.yaml"
        candidate.write_text(CANDIDATE, encoding="utf-8")
        assert main(["rules", "replay", "--candidate", str(candidate), *args]) == 2
        assert message in capsys.readouterr().err

    def test_cli_bad_candidate_fails_before_connecting(self, tmp_path: Path) -> None:
        candidate = tmp_path / "candidate.yaml"
        candidate.write_text(CANDIDATE.replace("points: 25\n", "points: lots\n", 1), encoding="utf-8")
        env = cli_env(database_url="postgresql://127.0.0.1:1/none", redis_url="redis://127.0.0.1:1/0")
        proc = leadroute("rules", "replay", "--candidate", str(candidate), env=env)
        assert proc.returncode == 1
        assert f"{candidate}:" in proc.stderr
        assert "rule 'title-c-level'" in proc.stderr
