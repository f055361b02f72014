"""After a load test: hold PostgreSQL and Redis to what the users were told, and to the invariants.

:func:`load_recorded` reads the users' records (:mod:`loadtests.records`); :func:`reconcile` runs
every check on a connection to the run's database and its Redis, and returns one
:class:`Check` per invariant (``ok`` and a short ``detail``, with examples when it failed):

- **processes**: each Locust process had its own seed and worker index.
- **leads**: every lead answered 2xx is in PostgreSQL under its Idempotency-Key, exactly once
  (one ``leads`` row, one ``lead.received`` event); every stored lead was sent by this run (those
  whose answer the end of the run cut off are counted, not failed).
- **events**: every activity answered 2xx is stored once, for its lead.
- **placement**: every lead is closed, or has an owner (its current assignment names the same
  owner), or waits in a queue with a reason.
- **capacity**: no owner holds more open leads than ``max_open``.
- **sla timers**: no timer is pending past its due time by more than the slack (the scheduler's
  poll and a margin); no assignment has more than one fired timer; each lead has as many
  ``lead.sla_breached`` events as fired timers; no timer is stuck retrying after errors.
- **redis**: the open count of every owner in Redis equals what
  :func:`leadroute.routing.snapshot_from_pg` computes from the tables (run when nothing moves).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from redis.asyncio import Redis

from leadroute.routing import RoutingState, snapshot_from_pg
from leadroute.store.db import Connection
from loadtests.records import read_records

__all__ = ["Check", "Recorded", "load_recorded", "reconcile", "reconcile_routing", "reconcile_timers"]

_EXAMPLES = 3


class Check(NamedTuple):
    name: str
    ok: bool
    detail: str


class Recorded(NamedTuple):
    """What the users sent and were told, from every process's record file."""

    processes: list[dict[str, Any]]
    sent: set[str]
    leads: dict[str, str]
    """Idempotency-Key → lead id, for every lead answered 201/202."""
    duplicate_answers: list[str]
    """Keys recorded twice as new leads (two 201s for one key: a duplicate the service made)."""
    retries: int
    events: dict[str, str]
    """Event Idempotency-Key → lead id, for every event answered 201."""
    actions: Counter[str]
    overloads: int
    conflicts: int


def load_recorded(directory: Path) -> Recorded:
    processes: list[dict[str, Any]] = []
    sent: set[str] = set()
    leads: dict[str, str] = {}
    duplicates: list[str] = []
    events: dict[str, str] = {}
    actions: Counter[str] = Counter()
    retries = overloads = conflicts = 0
    for r in read_records(directory):
        kind = r["k"]
        if kind == "process":
            processes.append(r)
        elif kind == "sent":
            sent.add(r["key"])
        elif kind == "lead":
            if r["key"] in leads:
                duplicates.append(r["key"])
            leads[r["key"]] = r["lead"]
        elif kind == "retry":
            retries += 1
        elif kind == "event":
            events[r["key"]] = r["lead"]
        elif kind == "action":
            actions[r["action"]] += 1
        elif kind == "overload":
            overloads += 1
        elif kind == "conflict":
            conflicts += 1
    return Recorded(processes, sent, leads, duplicates, retries, events, actions, overloads, conflicts)


def _check(name: str, problems: Iterable[str], ok_detail: str, what: str) -> Check:
    found = list(problems)
    if not found:
        return Check(name, True, ok_detail)
    return Check(name, False, f"{len(found)} {what}, e.g. {'; '.join(found[:_EXAMPLES])}")


async def reconcile(conn: Connection, recorded: Recorded) -> list[Check]:
    """Every check on the tables that does not depend on time (see the module docstring)."""
    checks = [_processes(recorded)]
    checks += await _leads(conn, recorded)
    checks.append(await _events(conn, recorded))
    checks.append(await _placement(conn))
    checks.append(await _capacity(conn))
    return checks


def _processes(recorded: Recorded) -> Check:
    seeds = Counter(p["seed"] for p in recorded.processes)
    workers = Counter(p["worker"] for p in recorded.processes)
    problems = [f"seed {s} used by {n} processes" for s, n in seeds.items() if n > 1]
    problems += [f"worker index {w} used by {n} processes" for w, n in workers.items() if n > 1]
    detail = f"{len(recorded.processes)} process(es), seeds {sorted(seeds)}"
    return _check("processes have distinct seeds", problems, detail, "clashes")


async def _leads(conn: Connection, recorded: Recorded) -> list[Check]:
    rows = await conn.fetch("SELECT key, lead_id FROM idempotency_keys WHERE scope = 'lead'")
    stored = {r["key"]: str(r["lead_id"]) if r["lead_id"] is not None else None for r in rows}
    problems = [f"{key}: answered, not stored" for key in recorded.leads if key not in stored]
    problems += [
        f"{key}: answered {lead}, stored {stored[key]}"
        for key, lead in recorded.leads.items()
        if key in stored and stored[key] != lead
    ]
    problems += [f"{key}: answered 201 twice" for key in recorded.duplicate_answers]
    answered = _check(
        "every 2xx lead is stored",
        problems,
        f"{len(recorded.leads)} answered leads stored under their keys",
        "lost or different",
    )

    counts = await conn.fetchrow(
        """SELECT (SELECT count(*) FROM leads) AS leads,
                  (SELECT count(DISTINCT lead_id) FROM idempotency_keys WHERE scope = 'lead') AS keyed,
                  (SELECT count(*) FROM lead_events WHERE kind = 'lead.received') AS received"""
    )
    assert counts is not None
    twice = await conn.fetch(
        """SELECT l.id, count(e.id) AS n FROM leads l
             LEFT JOIN lead_events e ON e.lead_id = l.id AND e.kind = 'lead.received'
            GROUP BY l.id HAVING count(e.id) <> 1 LIMIT 10"""
    )
    problems = [f"lead {r['id']} has {r['n']} lead.received events" for r in twice]
    if counts["leads"] != counts["keyed"]:
        problems.append(f"{counts['leads']} leads but {counts['keyed']} lead keys")
    foreign = [key for key in stored if key not in recorded.sent]
    problems += [f"{key}: stored, never sent by this run" for key in foreign]
    unanswered = sum(1 for key in stored if key in recorded.sent and key not in recorded.leads)
    once = _check(
        "every lead is stored exactly once",
        problems,
        f"{counts['leads']} leads, {counts['received']} lead.received events; "
        f"{unanswered} stored whose answer the end of the run cut off",
        "duplicates or strays",
    )
    return [answered, once]


async def _events(conn: Connection, recorded: Recorded) -> Check:
    rows = await conn.fetch(
        """SELECT k.key, k.lead_id, count(e.id) AS n FROM idempotency_keys k
             LEFT JOIN lead_events e ON e.idempotency_key = k.key AND e.kind = 'activity.recorded'
            WHERE k.scope = 'event' GROUP BY k.key, k.lead_id"""
    )
    stored = {r["key"]: (str(r["lead_id"]), int(r["n"])) for r in rows}
    problems = []
    for key, lead in recorded.events.items():
        if key not in stored:
            problems.append(f"{key}: answered, not stored")
        elif stored[key] != (lead, 1):
            problems.append(f"{key}: lead {stored[key][0]}, {stored[key][1]} activity.recorded events")
    return _check(
        "every 2xx event is stored once",
        problems,
        f"{len(recorded.events)} answered events, {len(stored)} stored",
        "lost or duplicated",
    )


async def _placement(conn: Connection) -> Check:
    rows = await conn.fetch(
        """SELECT l.id, l.status, l.owner_id, a.owner_id AS current_owner, a.queue, a.reason
             FROM leads l LEFT JOIN assignments a ON a.lead_id = l.id AND a.ended_at IS NULL
            WHERE NOT (l.status = 'closed'
                       OR (l.status IN ('assigned', 'accepted', 'reassigned', 'escalated')
                           AND l.owner_id IS NOT NULL AND a.owner_id = l.owner_id)
                       OR (l.status = 'unassigned' AND a.queue IS NOT NULL AND a.reason IS NOT NULL))
            LIMIT 20"""
    )
    by_status = await conn.fetch("SELECT status, count(*) AS n FROM leads GROUP BY status ORDER BY status")
    problems = [
        f"lead {r['id']} {r['status']}, owner {r['owner_id']}, assignment owner {r['current_owner']}, "
        f"queue {r['queue']}, reason {r['reason']!r}"
        for r in rows
    ]
    detail = ", ".join(f"{r['status']} {r['n']}" for r in by_status) or "no leads"
    return _check(
        "every lead has an owner, a queue with a reason, or is closed", problems, detail, "misplaced"
    )


async def _capacity(conn: Connection) -> Check:
    rows = await conn.fetch(
        """SELECT o.id, o.max_open, count(a.id) AS n FROM owners o
             JOIN assignments a ON a.owner_id = o.id AND a.ended_at IS NULL AND a.status <> 'closed'
             JOIN leads l ON l.id = a.lead_id AND l.status <> 'closed'
            GROUP BY o.id, o.max_open"""
    )
    over = [
        f"{r['id']} holds {r['n']} (max_open {r['max_open']})"
        for r in rows
        if r["max_open"] is not None and r["n"] > r["max_open"]
    ]
    peak = max((r["n"] for r in rows), default=0)
    return _check(
        "no owner over capacity",
        over,
        f"{len(rows)} owners hold open leads now, at most {peak} each",
        "owners over max_open",
    )


async def reconcile_timers(conn: Connection, *, slack_seconds: float) -> list[Check]:
    """SLA timers: run while the service is still up, after the traffic stopped and a poll or two."""
    overdue = await conn.fetch(
        """SELECT id, lead_id, due_at, now() - due_at AS late, attempts, last_error FROM sla_timers
            WHERE status = 'pending' AND due_at < now() - make_interval(secs => $1)
            ORDER BY due_at LIMIT 10""",
        slack_seconds,
    )
    totals = await conn.fetchrow(
        """SELECT count(*) FILTER (WHERE status = 'fired') AS fired,
                  count(*) FILTER (WHERE status = 'pending') AS pending,
                  count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
                  count(*) FILTER (WHERE attempts > 0) AS retried
             FROM sla_timers"""
    )
    assert totals is not None
    due = _check(
        "every due SLA timer fired",
        [f"timer {r['id']} of lead {r['lead_id']} {r['late']} late ({r['attempts']} tries)" for r in overdue],
        f"{totals['fired']} fired, {totals['pending']} pending (none overdue by {slack_seconds:g} s), "
        f"{totals['cancelled']} stopped by accept/reassign/close",
        "timers overdue",
    )
    twice = await conn.fetch(
        """SELECT assignment_id, count(*) AS n FROM sla_timers WHERE status = 'fired'
            GROUP BY assignment_id HAVING count(*) > 1 LIMIT 10"""
    )
    mismatch = await conn.fetch(
        """WITH t AS (SELECT lead_id, count(*) AS fired FROM sla_timers WHERE status = 'fired'
                       GROUP BY lead_id),
                e AS (SELECT lead_id, count(*) AS breached FROM lead_events WHERE kind = 'lead.sla_breached'
                       GROUP BY lead_id)
           SELECT coalesce(t.lead_id, e.lead_id) AS lead_id, coalesce(t.fired, 0) AS fired,
                  coalesce(e.breached, 0) AS breached
             FROM t FULL JOIN e ON e.lead_id = t.lead_id
            WHERE coalesce(t.fired, 0) <> coalesce(e.breached, 0) LIMIT 10"""
    )
    problems = [f"assignment {r['assignment_id']} has {r['n']} fired timers" for r in twice]
    problems += [
        f"lead {r['lead_id']}: {r['fired']} fired timers, {r['breached']} breach events" for r in mismatch
    ]
    problems += [f"{totals['retried']} timers needed retries after errors"] if totals["retried"] else []
    once = _check(
        "each SLA timer fired at most once",
        problems,
        f"{totals['fired']} fired timers, one breach event each",
        "problems",
    )
    return [due, once]


async def reconcile_routing(conn: Connection, redis: Redis, prefix: str) -> Check:
    """Redis's open counts against PostgreSQL's; run when nothing moves (the service stopped)."""
    expected = await snapshot_from_pg(conn, datetime.now(UTC))
    actual = await RoutingState(redis, prefix).read()
    owners = sorted(set(expected.open) | set(actual.open))
    problems = [
        f"{o}: Redis {actual.open.get(o, 0)}, PostgreSQL {expected.open.get(o, 0)}"
        for o in owners
        if actual.open.get(o, 0) != expected.open.get(o, 0)
    ]
    return _check(
        "Redis open counts equal PostgreSQL's",
        problems,
        f"{len(owners)} owners with open leads, {sum(expected.open.values())} open leads in both",
        "owners differ",
    )
