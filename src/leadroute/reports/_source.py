"""The reports' inputs, read from PostgreSQL (the named queries in ``store/sql/reports.sql``).

The only module of the package that does I/O: each function takes a connection and a window,
reads the rows, and hands plain values to the pure computations. A report's queries run in one
read-only ``REPEATABLE READ`` transaction, so its figures come from one snapshot (the queue depth
agrees with the placements), with PostgreSQL's JIT off: on 14,000 leads it spent 650 ms of a
930 ms calibration query compiling, and the queries are index lookups it cannot speed up.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

import msgspec

from leadroute.reports._calibration import DEFAULT_BANDS, Basis, CalibrationReport, ScoredLead, calibrate
from leadroute.reports._dashboard import (
    Arrival,
    Breach,
    DashboardReport,
    DeliveryFailures,
    Pick,
    PoolInfo,
    QueueDepth,
    dashboard,
)
from leadroute.reports._outcome import lead_outcome
from leadroute.rules import RulesetError, parse_ruleset
from leadroute.store.db import Connection
from leadroute.store.queries import QUERIES

__all__ = ["read_calibration", "read_dashboard", "scoring_rules_by_version"]


@contextlib.asynccontextmanager
async def _snapshot(conn: Connection) -> AsyncIterator[None]:
    """One read-only snapshot for a report's queries, JIT off (see the module docstring)."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        await conn.execute("SET LOCAL jit = off")
        yield


def _scored_lead(row: Any) -> ScoredLead:
    scored = row["scored"]
    events = list(
        zip(
            row["ats"] or [],
            row["seqs"] or [],
            row["kinds"] or [],
            row["amounts"] or [],
            row["currencies"] or [],
            strict=True,
        )
    )
    outcome = lead_outcome((at, seq, kind) for at, seq, kind, _, _ in events)
    amount = currency = None
    if outcome == "won":  # the deciding event is the latest won (see reports._outcome)
        _, _, _, amount, currency = max(e for e in events if e[2] == "won")
    return ScoredLead(
        lead_id=str(row["lead_id"]),
        score=float(scored["score"]),
        stage=scored["stage"],
        ruleset_version=int(scored["ruleset_version"]),
        matched=frozenset(scored.get("matched") or ()),
        outcome=outcome,
        amount=amount,
        currency=currency,
    )


async def scoring_rules_by_version(conn: Connection, versions: Sequence[int]) -> dict[int, frozenset[str]]:
    """The scoring rule ids of each stored ruleset version (a version whose stored file no longer
    loads is left out: its leads' matched rules stand in for it)."""
    rules: dict[int, frozenset[str]] = {}
    for row in await conn.fetch(QUERIES["report_ruleset_sources"], list(versions)):
        try:
            ruleset = parse_ruleset(row["source"])
        except RulesetError:
            continue
        rules[row["version"]] = rules.get(row["version"], frozenset()) | {r.id for r in ruleset.scoring_rules}
    return rules


async def read_calibration(
    conn: Connection,
    *,
    start: datetime,
    end: datetime,
    basis: Basis = "latest",
    bands: Sequence[float] = DEFAULT_BANDS,
) -> CalibrationReport:
    """The calibration report of the leads that arrived in ``[start, end)``."""
    async with _snapshot(conn):
        rows = await conn.fetch(QUERIES["report_calibration_leads"], start, end, basis == "latest")
        leads = [_scored_lead(row) for row in rows]
        rules = await scoring_rules_by_version(conn, sorted({lead.ruleset_version for lead in leads}))
    return calibrate(leads, start=start, end=end, basis=basis, bands=bands, rules_by_version=rules)


def _pick(row: Any) -> Pick:
    skipped = msgspec.convert(row["skipped"], list[dict[str, Any]])
    return Pick(
        at=row["at"],
        pool=row["pool"],
        owner=row["owner"],
        strategy=row["strategy"] or "",
        skipped=frozenset(s["owner"] for s in skipped if s.get("pool") == row["pool"]),
    )


async def read_dashboard(
    conn: Connection, *, start: datetime, end: datetime, now: datetime
) -> DashboardReport:
    """The dashboard over ``[start, end)``, queue depth as of ``now``."""
    async with _snapshot(conn):
        return await _read_dashboard(conn, start=start, end=end, now=now)


async def _read_dashboard(
    conn: Connection, *, start: datetime, end: datetime, now: datetime
) -> DashboardReport:
    pools = {
        row["id"]: PoolInfo(
            strategy=row["strategy"], members=tuple(sorted(row["weights"])), weights=dict(row["weights"])
        )
        for row in await conn.fetch(QUERIES["report_pools"])
    }
    times = await conn.fetch(QUERIES["report_assign_times"], start, end)
    return dashboard(
        start=start,
        end=end,
        now=now,
        arrivals=[
            Arrival(r["at"], r["stage"]) for r in await conn.fetch(QUERIES["report_arrivals"], start, end)
        ],
        picks=[_pick(r) for r in await conn.fetch(QUERIES["report_picks"], start, end)],
        pools=pools,
        assign_seconds=[
            max(0.0, (r["assigned"] - r["arrived"]).total_seconds())
            for r in times
            if r["assigned"] is not None
        ],
        not_assigned=sum(r["assigned"] is None for r in times),
        accept_seconds=[r["seconds"] for r in await conn.fetch(QUERIES["report_accept_times"], start, end)],
        breaches=[
            Breach(r["at"], r["owner"]) for r in await conn.fetch(QUERIES["report_breaches"], start, end)
        ],
        queues=[
            QueueDepth(queue=r["queue"], pool=r["pool"], leads=r["leads"], oldest=r["oldest"])
            for r in await conn.fetch(QUERIES["report_queues"])
        ],
        deliveries=[
            DeliveryFailures(
                endpoint=r["endpoint"],
                kind=r["kind"],
                attempts=r["attempts"],
                failed=r["failed"],
                dead=r["dead"],
                retrying=r["retrying"],
            )
            for r in await conn.fetch(QUERIES["report_deliveries"], start, end)
        ],
    )
