"""The SLA scheduler: every instance fires due timers; each timer fires exactly once.

Every instance runs :func:`run_scheduler` in the background (started by the app's lifespan, every
``LEADROUTE_SLA_POLL_SECONDS``). A pass (:func:`fire_due_timers`) takes due timers one at a time,
each in its own transaction::

    SELECT ... FROM sla_timers WHERE status = 'pending' AND due_at <= now
     ORDER BY due_at FOR UPDATE SKIP LOCKED LIMIT 1

then locks the lead (``SKIP LOCKED`` too: a request busy with that lead wins, the timer waits for
the next pass), acts on the breach and marks the timer ``fired`` in the same transaction. Other
instances skip the locked row, and once it commits it is no longer pending, so each timer fires
once; a crash before the commit leaves it pending for the next pass of any instance, so none is
lost across restarts. One transaction per timer (rather than a batch under one ``LIMIT n`` lock)
because a breach claims an owner in Redis: it must commit with the timer's status, and one
failing timer must not roll back the others.

On a breach (the breach policy):

- the breach is recorded (``sla.breached``), and the owner is never given this lead again;
- ``reassign``: the next eligible owner of the pool (``Router.assign`` with the lead's breaching
  owners excluded), with a new timer (``assignment.reassigned``);
- ``escalate``: the pool's ``escalate_to``, an owner (claimed directly: active, not out of office,
  with room) or a pool (routed, excluding the breaching owners); a new timer (``assignment.escalated``).
  A pool without ``escalate_to`` reassigns instead, and says so;
- the lead's ``LEADROUTE_SLA_MAX_BREACHES``-th breach, or nobody left to take it, puts it in the
  fallback queue, unassigned, with the reason (``assignment.fallback``). So a lead never loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from leadroute.routing import Assignment, PoolTarget, RoutingStateLost
from leadroute.rules import Sla
from leadroute.runtime import Runtime
from leadroute.store.db import Connection
from leadroute.store.queries import QUERIES
from leadroute.workflow.actions import (
    WAITING,
    Moves,
    UnknownOwner,
    claim_owner,
    move,
    record_step,
    route_again,
    skipped,
)
from leadroute.workflow.intake import STATE_LOST_RETRIES

__all__ = ["BATCH", "WORKERS", "fire_due_timers", "run_scheduler", "scheduler"]

log = logging.getLogger(__name__)

BATCH = 200
"""Timers one pass fires at most (the next pass, a poll interval later, takes the rest)."""
WORKERS = 4
"""Timers one instance fires side by side (each on its own pooled connection)."""
MAX_RETRY_MINUTES = 60


async def fire_due_timers(
    rt: Runtime, now: datetime | None = None, *, limit: int = BATCH, workers: int = WORKERS
) -> int:
    """Fire the timers due at ``now`` (default: the runtime's clock); returns how many breached.

    ``workers`` tasks claim timers side by side (``SKIP LOCKED`` keeps them apart). Safe to run in
    any number of instances and tasks at once: each timer fires exactly once.
    """
    at = now or rt.clock()
    seen: list[int] = []

    async def worker() -> int:
        fired = 0
        while len(seen) < limit:
            outcome = await _fire_one(rt, at, seen)
            if outcome is None:
                break
            fired += outcome
        return fired

    return sum(await asyncio.gather(*(worker() for _ in range(max(1, workers)))))


async def _fire_one(rt: Runtime, now: datetime, seen: list[int]) -> int | None:
    """Claim and fire one due timer: 1 breached, 0 stale or skipped or failed, None nothing due."""
    for attempt in range(STATE_LOST_RETRIES):
        moves = Moves()
        timer_id: int | None = None
        try:
            async with rt.db.acquire() as conn, conn.transaction():
                timer = await conn.fetchrow(QUERIES["sla_timer_claim"], now, seen)
                if timer is None:
                    return None
                timer_id = timer["id"]
                lead = await conn.fetchrow(QUERIES["workflow_lead_try_lock"], timer["lead_id"])
                breached = lead is not None and await _breach(
                    rt, conn, moves, timer=timer, lead=lead, now=now
                )
                await moves.finish(rt, conn)
        except RoutingStateLost:
            await moves.undo(rt)
            if attempt == STATE_LOST_RETRIES - 1 and timer_id is not None:
                seen.append(timer_id)
                await _failed(rt, timer_id, "RoutingStateLost", now)
                return 0
        except Exception as exc:
            await moves.undo(rt)
            if timer_id is None:
                raise
            seen.append(timer_id)
            await _failed(rt, timer_id, type(exc).__name__, now)
            log.debug("SLA timer %d failed", timer_id, exc_info=True)
            return 0
        except BaseException:  # cancelled (shutdown): rolled back, so give the claimed slot back
            await moves.undo(rt)
            raise
        else:
            await moves.committed(rt)  # outside the try: the claims of a committed breach are kept
            seen.append(timer["id"])
            return int(breached)
    return 0


async def _failed(rt: Runtime, timer_id: int, error: str, now: datetime) -> None:
    """Count a failed attempt and put the timer off (1, 2, 4 ... 60 minutes); it stays pending."""
    async with rt.db.acquire() as conn:
        attempts = await conn.fetchval(QUERIES["sla_timer_failed"], timer_id, error, now, MAX_RETRY_MINUTES)
    log.error(
        "SLA timer %d could not fire (%s, attempt %s); it will be tried again", timer_id, error, attempts
    )


async def _breach(
    rt: Runtime, conn: Connection, moves: Moves, *, timer: Any, lead: Any, now: datetime
) -> bool:
    """Act on one due timer (the lead is locked). False: the timer was stale and is cancelled."""
    lead_id = lead["id"]
    current = await conn.fetchrow(QUERIES["workflow_current"], lead_id)
    if current is None or current["id"] != timer["assignment_id"] or lead["status"] not in WAITING:
        # accepted, moved or closed without stopping this timer: nothing to breach
        await conn.execute(QUERIES["sla_timer_resolve"], timer["id"], "cancelled", "stale", now)
        return False
    owner = timer["owner_id"]
    count = timer["breaches"] + 1
    limit = rt.settings.sla_max_breaches
    await conn.execute(QUERIES["sla_timer_resolve"], timer["id"], "fired", "breached", now)
    await record_step(
        conn,
        lead_id,
        "sla.breached",
        now,
        {
            "owner": owner,
            "due_at": timer["due_at"],
            "minutes": timer["minutes"],
            "business_hours": timer["business_hours"],
            "breach": count,
            "on_breach": timer["on_breach"],
        },
    )
    sla = Sla(accept_within_minutes=timer["minutes"], on_breach=timer["on_breach"])
    exclude = {r["owner_id"] for r in await conn.fetch(QUERIES["sla_breached_owners"], lead_id)}
    common: dict[str, Any] = {"lead_id": lead_id, "current": current, "now": now, "sla": sla}
    common |= {"breaches": count, "sla_pool": timer["pool_id"]}

    if count >= limit:
        reason = f"the SLA was breached {count} times (limit {limit})"
        placed = Assignment(
            owner=None,
            pool=current["pool_id"],
            queue=rt.rules.ruleset.fallback,
            reason=reason,
            skipped=[],
            pools_tried=[],
            rule=current["rule"],
        )
        await move(conn, moves, placed=placed, status="unassigned", resolution="breached", **common)
        await record_step(
            conn,
            lead_id,
            "assignment.fallback",
            now,
            {"by": "sla", "from": owner, "queue": placed.queue, "why": reason},
        )
        return True

    escalate_to: str | None = None
    note: str | None = None
    if timer["on_breach"] == "escalate":
        pool = await conn.fetchrow(QUERIES["routing_pool"], timer["pool_id"]) if timer["pool_id"] else None
        escalate_to = pool["escalate_to"] if pool is not None else None
        if escalate_to is None:
            note = "no escalation target (the pool has no escalate_to): reassigned instead"

    if escalate_to is not None:
        placed = await _escalate(
            rt, conn, moves, lead=lead, current=current, to=escalate_to, sla=sla, now=now
        )
        if placed.pool is not None:
            common["sla_pool"] = placed.pool
        await move(conn, moves, placed=placed, status="escalated", resolution="breached", **common)
        kind = "assignment.escalated" if placed.owner is not None else "assignment.fallback"
        detail: dict[str, Any] = {"by": "sla", "from": owner, "escalate_to": escalate_to}
    else:
        placed = await route_again(
            rt, conn, moves, lead=lead, current=current, exclude=exclude, sla=sla, now=now
        )
        await move(conn, moves, placed=placed, status="reassigned", resolution="breached", **common)
        kind = "assignment.reassigned" if placed.owner is not None else "assignment.fallback"
        detail = {"by": "sla", "from": owner}
    if note is not None:
        detail["note"] = note
    if placed.owner is not None:
        detail |= {"to": placed.owner, "pool": placed.pool, "skipped": skipped(placed)}
    else:
        detail |= {"queue": placed.queue, "why": placed.reason, "skipped": skipped(placed)}
    await record_step(conn, lead_id, kind, now, detail)
    return True


async def _escalate(
    rt: Runtime,
    conn: Connection,
    moves: Moves,
    *,
    lead: Any,
    current: Any,
    to: str,
    sla: Sla,
    now: datetime,
) -> Assignment:
    """Place the lead with the escalation target: a pool (routed) or an owner (claimed)."""
    exclude = {r["owner_id"] for r in await conn.fetch(QUERIES["sla_breached_owners"], lead["id"])}
    rule = current["rule"] or "escalation"
    if await conn.fetchrow(QUERIES["routing_pool"], to) is not None:
        placed = await rt.routing.assign(
            conn,
            lead_id=lead["id"],
            company_domain=lead["company_domain"],
            targets=[PoolTarget(rule=rule, pool=to, sla=sla)],
            fallback=rt.rules.ruleset.fallback,
            now=now,
            exclude=exclude,
        )
        if placed.owner is not None:
            moves.claimed.append(placed)
        return placed
    why: str | None = "already let this lead's SLA run out"
    if to not in exclude:
        try:
            claimed, why = await claim_owner(rt, conn, to, now, rule=rule, strategy="escalation")
        except UnknownOwner:
            claimed, why = None, "no such owner or pool"
        if claimed is not None:
            moves.claimed.append(claimed)
            return claimed
    return Assignment(
        owner=None,
        pool=current["pool_id"],
        queue=rt.rules.ruleset.fallback,
        reason=f"escalation target {to!r} cannot take the lead: {why}",
        skipped=[],
        pools_tried=[],
        rule=rule,
    )


async def run_scheduler(rt: Runtime, interval: float) -> None:
    """Fire due timers every ``interval`` seconds until cancelled; errors are logged, never fatal."""
    while True:
        try:
            fired = await fire_due_timers(rt)
            if fired:
                log.info("SLA: %d timer(s) breached", fired)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("SLA scheduler pass failed (%s); next pass in %ss", type(exc).__name__, interval)
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def scheduler(rt: Runtime) -> AsyncIterator[None]:
    """Run the scheduler in the background while the app serves (off when the interval is 0)."""
    interval = rt.settings.sla_poll_seconds
    if interval <= 0:
        yield
        return
    task = asyncio.create_task(run_scheduler(rt, interval), name="leadroute-sla-scheduler")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
