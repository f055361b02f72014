"""Reports: Wilson intervals and percentiles against known values, what outcomes add up to, the SVG
charts, the calibration report on generated leads and outcomes (real PostgreSQL and Redis) checked
against a computation written here independently, the dashboard on a small known day, and the CLI."""

from __future__ import annotations

import bisect
import random
import statistics
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from conftest import FakeClock
from leadroute.config import Settings
from leadroute.reports import (
    Bar,
    Series,
    bar_chart,
    calibration_charts,
    dashboard_charts,
    grouped_bar_chart,
    lead_outcome,
    line_chart,
    parse_bands,
    percentile,
    rate,
    read_calibration,
    read_dashboard,
)
from outbound_support import always, create_endpoint, receiver, relay_pass
from process_support import cli_env, leadroute
from sla_support import fire, instance, sla_rules
from support import Client, authed, connection, lead, post_one, setup_pool

SVG = "{http://www.w3.org/2000/svg}"
Z = statistics.NormalDist().inv_cdf(0.975)


def wilson_by_roots(successes: int, n: int) -> tuple[float, float]:
    """The Wilson interval as the roots of (p̂ - p)² = z² p (1 - p) / n (solved here, not copied)."""
    p_hat = successes / n
    a = 1 + Z * Z / n
    b = -(2 * p_hat + Z * Z / n)
    c = p_hat * p_hat
    root = (b * b - 4 * a * c) ** 0.5
    return (-b - root) / (2 * a), (-b + root) / (2 * a)


class TestWilson:
    @pytest.mark.parametrize(
        ("successes", "n", "low", "high"),
        [  # Newcombe (1998), Statistics in Medicine 17:857, Table I, method 3 (score, no correction)
            (81, 263, 0.2553, 0.3662),
            (15, 148, 0.0624, 0.1605),
            (0, 20, 0.0000, 0.1611),
            (1, 29, 0.0061, 0.1718),
        ],
    )
    def test_published_values(self, successes: int, n: int, low: float, high: float) -> None:
        r = rate(successes, n)
        assert r.rate == successes / n
        assert r.low == pytest.approx(low, abs=5e-5)
        assert r.high == pytest.approx(high, abs=5e-5)

    def test_agrees_with_the_quadratic_roots_everywhere(self) -> None:
        rng = random.Random(7)
        for _ in range(500):
            n = rng.randint(1, 2000)
            k = rng.randint(0, n)
            r = rate(k, n)
            low, high = wilson_by_roots(k, n)
            assert r.low == pytest.approx(max(low, 0.0), abs=1e-12)
            assert r.high == pytest.approx(min(high, 1.0), abs=1e-12)
            assert r.low is not None
            assert r.high is not None
            assert r.low <= k / n <= r.high

    def test_no_leads_no_rate_and_impossible_counts_refused(self) -> None:
        assert rate(0, 0).rate is None
        assert rate(0, 0).low is None
        with pytest.raises(ValueError, match=r"within 0\.\.n"):
            rate(3, 2)


class TestPercentile:
    def test_matches_the_standard_librarys_inclusive_quantiles(self) -> None:
        rng = random.Random(3)
        for size in (2, 3, 10, 101):
            values = [rng.uniform(0, 1000) for _ in range(size)]
            cuts = statistics.quantiles(values, n=10, method="inclusive")
            assert percentile(values, 50) == pytest.approx(statistics.median(values))
            assert percentile(values, 90) == pytest.approx(cuts[8])
        assert percentile([5.0], 90) == 5.0
        assert percentile([], 50) is None


class TestLeadOutcome:
    """The latest outcome counts; a ``converted`` never undoes a won or lost deal."""

    @pytest.mark.parametrize(
        ("history", "expected"),
        [
            ([], None),
            (["converted"], "converted"),
            (["converted", "won"], "won"),
            (["converted", "lost"], "lost"),
            (["won", "converted"], "won"),
            (["won", "lost"], "lost"),
            (["disqualified_by_sales"], "disqualified_by_sales"),
            (["disqualified_by_sales", "converted"], "converted"),
            (["won", "disqualified_by_sales", "converted"], "converted"),
        ],
    )
    def test_cases(self, history: list[Any], expected: str | None) -> None:
        start = datetime(2026, 11, 1, tzinfo=UTC)
        events = [(start + timedelta(hours=i), i, kind) for i, kind in enumerate(history)]
        assert lead_outcome(reversed(events)) == expected  # any order: sorted by time first


class TestBands:
    def test_parse(self) -> None:
        assert parse_bands("0, 25,50") == (0.0, 25.0, 50.0)
        for bad in ("", "a,b", "10,5", "1,1", "nan"):
            with pytest.raises(ValueError, match="bands"):
                parse_bands(bad)


def _texts(svg: str) -> list[str]:
    root = ET.fromstring(svg)
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


class TestCharts:
    """Well-formed SVG, with a title and a description, and every number written as text."""

    def test_bar_chart_with_whiskers(self) -> None:
        bars = [
            Bar(label="0-20", value=0.1, low=0.05, high=0.2, note="n=40"),
            Bar(label="20-40 <&>", value=None),
        ]
        svg = bar_chart("Conversion & more", "A desc", bars, fmt=lambda v: f"{v * 100:.1f}%", top=1.0)
        root = ET.fromstring(svg)
        assert root.get("role") == "img"
        title, desc = root.find(f"{SVG}title"), root.find(f"{SVG}desc")
        assert title is not None
        assert title.text == "Conversion & more"
        assert desc is not None
        assert desc.text == "A desc"
        assert root.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
        texts = _texts(svg)
        assert {"10.0%", "0-20", "n=40", "20-40 <&>", "no data", "100.0%"} <= set(texts)
        assert len(root.findall(f".//{SVG}rect")) == 1
        assert len(root.findall(f".//{SVG}path")) == 1  # the whisker
        tips = ["".join(t.itertext()) for t in root.iter(f"{SVG}title")]
        assert "0-20: 10.0% (95% interval 5.0% to 20.0%)" in tips

    def test_grouped_bars_and_lines(self) -> None:
        svg = grouped_bar_chart(
            "Funnel",
            "d",
            ["v1", "v2"],
            [Series(name="leads", values=(120.0, 80.0)), Series(name="won", values=(7.0, None))],
        )
        texts = _texts(svg)
        assert {"120", "80", "7", "v1", "v2", "leads", "won"} <= set(texts)
        times = [datetime(2026, 11, 23, h, tzinfo=UTC) for h in (14, 15, 16)]
        line = line_chart("Per hour", "d", times, [Series(name="mql", values=(0.0, 6.0, 4.0))])
        root = ET.fromstring(line)
        assert len(root.findall(f".//{SVG}circle")) == 3
        assert "mql (10)" in _texts(line)
        assert "2026-11-23 16:00 UTC" in _texts(line)
        month = [datetime(2026, 11, 1, tzinfo=UTC) + timedelta(hours=h) for h in range(720)]
        long = ET.fromstring(line_chart("30 days", "d", month, [Series(name="sql", values=(1.0,) * 720)]))
        assert long.findall(f".//{SVG}circle") == []  # past a week of hours: the line alone
        polyline = long.find(f".//{SVG}polyline")
        assert polyline is not None
        assert len(polyline.get("points", "").split()) == 720


# -- calibration on generated leads and outcomes ---------------------------------------------

V1 = """
version: 1
description: calibration test, three scoring rules
scoring:
  groups:
    fit: {max: 100}
  rules:
    - {id: senior, group: fit, when: 'title =~~ "(?i)\\\\bvp\\\\b"', points: 40}
    - {id: big, group: fit, when: '(employees ?? 0) >= 1000', points: 30}
    - {id: free, group: fit, when: 'is_free_email', points: -20}
qualification:
  - {id: hot, stage: sql, when: 'score >= 60'}
  - {id: warm, stage: mql, when: 'score >= 30'}
  - {id: junk, stage: disqualified, when: 'score < 0'}
  - {id: rest, stage: lead}
routing:
  rules:
    - {id: everyone, when: 'true', pool: sales}
  fallback: unassigned
"""
V2 = V1.replace("version: 1", "version: 2").replace(
    "  rules:\n    - {id: senior",
    "  rules:\n    - {id: mid, group: fit, points: 15,"
    " when: '(employees ?? 0) >= 200 and (employees ?? 0) < 1000'}\n    - {id: senior",
)
RULES = {1: {"senior", "big", "free"}, 2: {"senior", "big", "free", "mid"}}
TEMPLATES: list[list[str]] = [
    ["converted"],
    ["converted", "won"],
    ["converted", "lost"],
    ["won", "converted-late"],
    ["disqualified_by_sales"],
    ["disqualified_by_sales", "converted"],
]


def generated_lead(rng: random.Random, n: int) -> dict[str, Any]:
    free = rng.random() < 0.25
    return lead(
        n,
        domain="gmail.com" if free else None,
        title=rng.choice(["VP Sales", "Engineer", "VP Marketing", "Analyst"]),
        employees=rng.choice([20, 500, 5000]),
    )


def final_outcome(history: Sequence[tuple[datetime, str, float | None, str | None]]) -> str | None:
    """What the outcomes add up to, said differently from the code: the last one, unless it is
    ``converted`` and the last that is not ``converted`` is a won or lost deal."""
    ordered = [kind for _, kind, _, _ in sorted(history, key=lambda h: h[0])]
    if not ordered:
        return None
    if ordered[-1] != "converted":
        return ordered[-1]
    deals = [k for k in ordered if k != "converted"]
    return deals[-1] if deals and deals[-1] in ("won", "lost") else "converted"


async def post_batch(
    client: Client, clock: FakeClock, rng: random.Random, first: int, count: int
) -> list[Any]:
    """``count`` leads, each followed by generated outcomes; [(decision, [(at, kind)])]."""
    out = []
    for n in range(first, first + count):
        d = await post_one(client, generated_lead(rng, n))
        clock.advance(minutes=1)
        chance = {"sql": 0.6, "mql": 0.35, "lead": 0.15, "disqualified": 0.05}[d["stage"]]
        history: list[tuple[datetime, str, float | None, str | None]] = []
        roll = rng.random()
        template = (
            rng.choice(TEMPLATES[:4])
            if roll < chance
            else rng.choice(TEMPLATES[4:])
            if roll < chance + 0.25
            else []
        )
        for kind in template:
            clock.advance(minutes=1)
            body: dict[str, Any] = {"outcome": kind}
            if kind == "converted-late":  # sent last, dated before the won deal
                body = {"outcome": "converted", "at": (history[-1][0] - timedelta(seconds=30)).isoformat()}
            if kind == "won" and rng.random() < 0.8:  # a deal's value; one in five in euros
                body["amount"] = float(rng.randrange(1000, 50000, 500))
                if rng.random() < 0.2:
                    body["currency"] = "EUR"
            r = await client.post(f"/v1/leads/{d['lead_id']}/outcome", json=body)
            assert r.status_code == 201, r.text
            answer = r.json()
            history.append(
                (
                    datetime.fromisoformat(answer["at"]),
                    body["outcome"],
                    body.get("amount"),
                    answer["currency"],
                )
            )
        out.append((d, history))
    return out


def deal(history: Sequence[tuple[datetime, str, float | None, str | None]]) -> tuple[float, str] | None:
    """The amount and currency of the deal that counts: the latest ``won``, when the lead's
    outcome is won and the deal had an amount."""
    if final_outcome(history) != "won":
        return None
    *_, (_, _, amount, currency) = sorted((h for h in history if h[1] == "won"), key=lambda h: h[0])
    return None if amount is None else (amount, currency or "USD")


def revenue_of(rows: Sequence[dict[str, Any]], per: int | None = None) -> dict[str, Any]:
    sums: dict[str, float] = {}
    for x in rows:
        if x["deal"] is not None:
            amount, currency = x["deal"]
            sums[currency] = sums.get(currency, 0.0) + amount
    return {c: pytest.approx(v / per if per else v) for c, v in sorted(sums.items())}


def expected_counts(rows: Sequence[tuple[Any, str | None]]) -> tuple[int, int, int]:
    """(leads, converted, won)."""
    return (
        len(rows),
        sum(o in ("converted", "won", "lost") for _, o in rows),
        sum(o == "won" for _, o in rows),
    )


def assert_rate(r: Any, successes: int, n: int) -> None:
    assert (r.successes, r.n) == (successes, n)
    if n:
        low, high = wilson_by_roots(successes, n)
        assert (r.low, r.high) == (pytest.approx(max(low, 0)), pytest.approx(min(high, 1)))
    else:
        assert r.rate is None


class TestCalibration:
    async def test_generated_leads_and_outcomes_two_ruleset_versions(
        self, make_app: Any, clock: FakeClock, settings: Settings, tmp_path: Path
    ) -> None:
        rng = random.Random(14)
        async with authed(make_app(V1, clock=clock)) as client:
            await setup_pool(client, ["alice", "bob"])
            posted = await post_batch(client, clock, rng, 0, 70)
        start, end = datetime(2026, 11, 23, 14, tzinfo=UTC), clock.now + timedelta(days=1)
        async with authed(make_app(V2, clock=clock)) as client:
            posted += await post_batch(client, clock, rng, 1000, 70)
            window = {"start": start.isoformat(), "end": end.isoformat()}
            over_http = await client.get("/v1/reports/calibration", params=window)
            assert over_http.status_code == 200, over_http.text
            refused = await client.get("/v1/reports/calibration", params={"bands": "9,3"})
            assert refused.status_code == 400
            assert refused.json()["errors"] == [
                {"field": "bands", "message": "the edges must increase, e.g. 0,20,40,60,80"}
            ]
        async with connection(settings) as conn:
            report = await read_calibration(conn, start=start, end=end)
            intake = await read_calibration(conn, start=start, end=end, basis="intake", bands=(0, 50))

        leads = [
            {
                "score": d["score"],
                "stage": d["stage"],
                "version": d["ruleset_version"],
                "matched": {h["rule"] for h in d["matched"]},
                "outcome": final_outcome(history),
                "deal": deal(history),
            }
            for d, history in posted
        ]
        assert {x["version"] for x in leads} == {1, 2}
        assert {x["outcome"] for x in leads} >= {None, "converted", "won", "lost", "disqualified_by_sales"}
        n, c, w = expected_counts([(x, x["outcome"]) for x in leads])
        assert report.leads == n == 140
        assert_rate(report.converted, c, n)
        assert_rate(report.won, w, n)
        assert report.with_outcome == sum(x["outcome"] is not None for x in leads)
        assert report.revenue == revenue_of(leads)
        assert set(report.revenue) == {"EUR", "USD"}
        assert report.currency == max(report.revenue, key=lambda c: report.revenue[c])

        # by score band: below 0, 0-20, 20-40, 40-60, 60-80, 80 and over
        edges = [0, 20, 40, 60, 80]
        for i, band in enumerate(report.by_band):
            rows = [(x, x["outcome"]) for x in leads if bisect.bisect_right(edges, x["score"]) == i]
            bn, bc, bw = expected_counts(rows)
            assert_rate(band.converted, bc, bn)
            assert_rate(band.won, bw, bn)
            assert band.revenue == revenue_of([x for x, _ in rows])
        assert [b.label for b in report.by_band] == ["< 0", "0-20", "20-40", "40-60", "60-80", ">= 80"]
        assert sum(b.converted.n for b in report.by_band) == n
        assert [b.label for b in intake.by_band] == ["< 0", "0-50", ">= 50"]

        # by stage, with rejections among the leads sales judged
        for row in report.by_stage:
            of = [x for x in leads if x["stage"] == row.stage]
            sn, sc, _sw = expected_counts([(x, x["outcome"]) for x in of])
            assert_rate(row.converted, sc, sn)
            judged = [x for x in of if x["outcome"] is not None]
            assert_rate(
                row.rejected, sum(x["outcome"] == "disqualified_by_sales" for x in judged), len(judged)
            )
            assert row.revenue == revenue_of(of)

        # rule lift, among leads whose ruleset has the rule
        assert [r.rule for r in report.rules] == ["big", "free", "mid", "senior"]
        for lift in report.rules:
            eligible = [x for x in leads if lift.rule in RULES[x["version"]]]
            hit = [(x, x["outcome"]) for x in eligible if lift.rule in x["matched"]]
            miss = [(x, x["outcome"]) for x in eligible if lift.rule not in x["matched"]]
            hn, hc, _ = expected_counts(hit)
            mn, mc, _ = expected_counts(miss)
            assert_rate(lift.matched, hc, hn)
            assert_rate(lift.unmatched, mc, mn)
            if hn and mn and mc:
                assert lift.lift == pytest.approx((hc / hn) / (mc / mn))
            assert lift.revenue_per_lead_matched == revenue_of([x for x, _ in hit], hn)
            assert lift.revenue_per_lead_unmatched == revenue_of([x for x, _ in miss], mn)
        assert report.rules[2].matched.n + report.rules[2].unmatched.n == 70  # mid: version 2 only

        # the funnel per version
        for step in report.funnel:
            of = [x for x in leads if x["version"] == step.ruleset_version]
            qualified = [x for x in of if x["stage"] in ("mql", "sql")]
            assert (step.leads, step.qualified, step.sql) == (
                len(of),
                len(qualified),
                sum(x["stage"] == "sql" for x in of),
            )
            _, fc, fw = expected_counts([(x, x["outcome"]) for x in of])
            assert (step.converted, step.won) == (fc, fw)
            assert step.revenue == revenue_of(of)
            assert_rate(step.won_of_qualified, sum(x["outcome"] == "won" for x in qualified), len(qualified))
        assert [f.ruleset_version for f in report.funnel] == [1, 2]

        # qualified leads rejected by sales
        for judgement in report.rejection:
            stages = {"mql": {"mql"}, "sql": {"sql"}, "qualified": {"mql", "sql"}}[judgement.stage]
            judged = [x for x in leads if x["stage"] in stages and x["outcome"] is not None]
            rejected = sum(x["outcome"] == "disqualified_by_sales" for x in judged)
            assert_rate(judgement.rejected, rejected, len(judged))
            assert judgement.accuracy == pytest.approx(1 - rejected / len(judged))

        # GET /v1/reports/calibration answers the same report as JSON
        assert over_http.json() == msgspec.json.decode(msgspec.json.encode(report))

        # the charts carry the same numbers
        charts = calibration_charts(report)
        assert list(charts) == [
            "conversion-by-band",
            "conversion-by-stage",
            "revenue-by-band",
            "rule-lift",
            "rule-revenue",
            "funnel",
            "rejected-by-sales",
        ]
        band_texts = _texts(charts["conversion-by-band"])
        for band in report.by_band:
            assert f"n={band.converted.n}" in band_texts
            if band.converted.rate is not None:
                assert f"{band.converted.rate * 100:.1f}%" in band_texts
        funnel_texts = _texts(charts["funnel"])
        assert {str(report.funnel[0].leads), str(report.funnel[1].won)} <= set(funnel_texts)

        # the CLI, end to end, on the same database
        env = cli_env(settings)
        options = ["--from", "2026-11-23T14:00:00Z", "--to", end.isoformat()]
        done = leadroute(
            "report",
            "calibration",
            *options,
            "--svg",
            str(tmp_path / "svg"),
            "--html",
            str(tmp_path / "c.html"),
            env=env,
        )
        assert done.returncode == 0, done.stderr
        assert f"Calibration of {n} leads" in done.stdout
        assert "Conversion by score band:" in done.stdout
        assert "Scoring rule lift" in done.stdout
        sql = next(s for s in report.by_stage if s.stage == "sql")
        assert any(
            line.split()[:3] == ["sql", str(sql.converted.n), str(sql.converted.successes)]
            for line in done.stdout.splitlines()
        )
        written = sorted(p.name for p in (tmp_path / "svg").iterdir())
        assert written == sorted(f"{name}.svg" for name in charts)
        for path in (tmp_path / "svg").iterdir():
            ET.parse(path)  # well-formed
        page = (tmp_path / "c.html").read_text()
        assert page.count("<svg") == len(charts)
        assert "Conversion by stage:" in page
        bad = leadroute("report", "calibration", "--bands", "5,1", env=env)
        assert bad.returncode == 2
        assert "bands" in bad.stderr
        both = leadroute("report", "distribution", "--days", "2", "--from", "2026-11-01", env=env)
        assert both.returncode == 2
        assert "--days: give a number of days or a start (from), not both" in both.stderr


ACTIVITY_RULES = V1.replace(
    "    - {id: free, group: fit, when: 'is_free_email', points: -20}",
    "    - {id: free, group: fit, when: 'is_free_email', points: -20}\n"
    "    - {id: visit, group: fit, on_activity: page_view, when: 'true', points: 30}",
)


class TestBasis:
    """``latest``: the last decision before the lead's first outcome (before the window's end
    without one); ``intake``: the first. Activities between change which score stands."""

    async def test_latest_and_intake(self, make_app: Any, clock: FakeClock, settings: Settings) -> None:
        async with authed(make_app(ACTIVITY_RULES, clock=clock)) as client:
            await setup_pool(client, ["alice"])
            won = await post_one(client, lead(1, title="Analyst"))  # 0: lead
            quiet = await post_one(client, lead(2, title="Analyst"))
            assert (won["score"], won["stage"]) == (0, "lead")

            async def visit(d: dict[str, Any]) -> None:
                body = {"lead_id": d["lead_id"], "type": "page_view", "occurred_at": clock.now.isoformat()}
                r = await client.post("/v1/events", json=body)
                assert r.status_code == 201, r.text

            clock.advance(minutes=10)
            await visit(won)  # 30: mql
            await visit(quiet)
            clock.advance(minutes=10)
            r = await client.post(f"/v1/leads/{won['lead_id']}/outcome", json={"outcome": "won"})
            assert r.status_code == 201, r.text
            assert (r.json()["stage"], r.json()["score"]) == ("mql", 30)
            clock.advance(minutes=10)
            await visit(won)  # 60: sql, after the outcome
        start, end = datetime(2026, 11, 23, 14, tzinfo=UTC), clock.now + timedelta(hours=1)
        async with connection(settings) as conn:
            latest = await read_calibration(conn, start=start, end=end, bands=(0, 20, 50))
            intake = await read_calibration(conn, start=start, end=end, basis="intake", bands=(0, 20, 50))
        # latest: the won lead as it was when it was won (30, mql), the other as it is (30, mql)
        assert [(b.label, b.converted.n, b.won.successes) for b in latest.by_band] == [
            ("< 0", 0, 0),
            ("0-20", 0, 0),
            ("20-50", 2, 1),
            (">= 50", 0, 0),
        ]
        assert {s.stage: s.converted.n for s in latest.by_stage}["mql"] == 2
        assert {r.rule: r.matched.n for r in latest.rules}["visit"] == 2
        # intake: both as they arrived (0, lead), no rule matched yet
        assert [(b.label, b.converted.n, b.won.successes) for b in intake.by_band][1] == ("0-20", 2, 1)
        assert {s.stage: s.converted.n for s in intake.by_stage}["lead"] == 2
        assert {r.rule: r.matched.n for r in intake.rules}["visit"] == 0


# -- the dashboard on a small known day ------------------------------------------------------


async def _active(client: Client, owner_id: str, active: bool) -> None:
    r = await client.patch(f"/v1/owners/{owner_id}", json={"active": active})
    assert r.status_code == 200, r.text


async def _accept(client: Client, d: dict[str, Any]) -> None:
    r = await client.post(f"/v1/assignments/{d['lead_id']}/accept", json={"owner_id": d["owner"]})
    assert r.status_code == 200, r.text


class TestDashboard:
    async def test_ten_leads_with_known_times(
        self, settings: Settings, clean: None, clock: FakeClock, tmp_path: Path
    ) -> None:
        """Ten leads, 10 minutes apart from 15:00, to a round-robin pool where carol joins at 15:35;
        three accepted after 5, 10 and 20 minutes; everyone away from 16:15 (two leads queue);
        timers fire at 16:50 (five breaches); one queued lead taken by hand at 16:55."""
        with receiver(always(500)) as down, receiver(always(200)) as up:
            async with instance(settings, sla_rules(30), clock, webhook_allow_private=True) as client:
                await setup_pool(client, ["alice", "bob", "carol"], inactive=["carol"])
                failing = (await create_endpoint(client, down.url, ["lead.outcome"]))["id"]
                working = (await create_endpoint(client, up.url, ["lead.outcome"]))["id"]
                d: list[dict[str, Any]] = []

                async def post(n: int) -> None:
                    d.append(await post_one(client, lead(n)))

                async def everyone_away() -> None:
                    for who in ("alice", "bob", "carol"):
                        await _active(client, who, False)

                schedule: list[tuple[str, Any]] = [
                    ("15:00", lambda: post(0)),
                    ("15:05", lambda: _accept(client, d[0])),  # after 5 minutes
                    ("15:10", lambda: post(1)),
                    ("15:20", lambda: _accept(client, d[1])),  # after 10 minutes
                    ("15:20", lambda: post(2)),
                    ("15:30", lambda: post(3)),
                    ("15:35", lambda: _active(client, "carol", True)),
                    ("15:40", lambda: post(4)),
                    ("15:50", lambda: post(5)),
                    ("16:00", lambda: post(6)),
                    ("16:00", lambda: _accept(client, d[4])),  # after 20 minutes
                    ("16:10", lambda: post(7)),
                    ("16:15", everyone_away),
                    ("16:20", lambda: post(8)),
                    ("16:30", lambda: post(9)),
                ]
                for when, action in schedule:
                    hour, minute = map(int, when.split(":"))
                    clock.now = datetime(2026, 11, 23, hour, minute, tzinfo=UTC)
                    await action()
                owners = [x["owner"] for x in d]
                assert owners == [
                    "alice",
                    "bob",
                    "alice",
                    "bob",
                    "carol",
                    "alice",
                    "bob",
                    "carol",
                    None,
                    None,
                ]
                clock.now = datetime(2026, 11, 23, 16, 50, tzinfo=UTC)
                assert await fire(client) == 5
                clock.advance(minutes=5)
                await _active(client, "alice", True)
                r = await client.post(
                    f"/v1/assignments/{d[8]['lead_id']}/reassign", json={"owner_id": "alice"}
                )
                assert r.status_code == 200, r.text
                for won in (d[0], d[1]):
                    r = await client.post(f"/v1/leads/{won['lead_id']}/outcome", json={"outcome": "won"})
                    assert r.status_code == 201, r.text
                await relay_pass(client)

                start = datetime(2026, 11, 23, 14, tzinfo=UTC)
                end = datetime(2026, 11, 23, 17, tzinfo=UTC)
                async with connection(settings) as conn:
                    report = await read_dashboard(conn, start=start, end=end, now=clock.now)
                window = {"start": start.isoformat(), "end": end.isoformat()}
                over_http = await client.get("/v1/reports/distribution", params=window)
                assert over_http.status_code == 200, over_http.text
                assert over_http.json() == msgspec.json.decode(msgspec.json.encode(report))
                both = await client.get("/v1/reports/distribution", params={"days": "2", **window})
                assert both.status_code == 400
                assert both.json()["errors"][0]["field"] == "days"

        assert report.leads == 10
        assert [(row.hour.hour, row.counts["lead"]) for row in report.per_hour] == [(14, 0), (15, 6), (16, 4)]
        # carol was inactive for the first four placements: expected 2 + 4/3 for alice and bob
        shares = {row.owner: row for row in report.shares}
        assert {row.pool for row in report.shares} == {"sales"}
        assert {o: s.actual.successes for o, s in shares.items()} == {"alice": 3, "bob": 3, "carol": 2}
        assert shares["alice"].expected_leads == pytest.approx(2 + 4 / 3)
        assert shares["carol"].expected_leads == pytest.approx(4 / 3)
        assert shares["carol"].expected_share == pytest.approx(4 / 3 / 8)
        assert all(s.within for s in shares.values())
        # 8 assigned at once, lead 9 taken at 16:55 after 35 minutes, lead 10 never
        assert report.time_to_assign.count == 9
        assert report.time_to_assign.p50 == 0
        assert report.time_to_assign.p90 == pytest.approx(0.2 * 35 * 60)
        assert report.not_assigned == 1
        assert report.time_to_accept.count == 3
        assert report.time_to_accept.p50 == 600
        assert report.time_to_accept.p90 == pytest.approx(1080)
        assert report.breaches == 5
        assert report.breaches_by_owner == {"alice": 2, "bob": 2, "carol": 1}
        assert sum(q.leads for q in report.queues) == 6  # 5 breached with nobody to take them, lead 10
        assert {q.pool for q in report.queues} >= {"sales"}
        deliveries = {x.endpoint: x for x in report.deliveries}
        assert (deliveries[failing].attempts, deliveries[failing].failed) == (2, 2)
        assert deliveries[failing].retrying == 2
        assert (deliveries[working].attempts, deliveries[working].failed) == (2, 0)
        assert len(up.requests) == 2
        assert up.requests[0].json()["type"] == "lead.outcome"

        charts = dashboard_charts(report)
        assert list(charts) == [
            "leads-per-hour",
            "share-sales",
            "response-times",
            "sla-breaches",
            "queue-depth",
            "delivery-failures",
        ]
        for svg in charts.values():
            ET.fromstring(svg)
        assert {"alice", "37.5%", "41.7%", "25.0%", "16.7%"} <= set(_texts(charts["share-sales"]))
        assert {"0", "7", "10", "18"} <= set(_texts(charts["response-times"]))  # minutes
        assert "lead (10)" in _texts(charts["leads-per-hour"])

        done = leadroute(
            "report",
            "distribution",
            "--from",
            start.isoformat(),
            "--to",
            end.isoformat(),
            "--html",
            str(tmp_path / "d.html"),
            env=cli_env(settings),
        )
        assert done.returncode == 0, done.stderr
        assert "sales / carol" in done.stdout
        assert "SLA breaches: 5 (alice 2, bob 2, carol 1)" in done.stdout
        assert (tmp_path / "d.html").read_text().count("<svg") == len(charts)
