"""The background work of every instance: SLA timers (each fires exactly once), the queue drain
(:mod:`leadroute.workflow.drain`) and decay (:func:`leadroute.workflow.rescore.requalify_due`).

Every instance runs :func:`run_scheduler` in the background (started by the app's lifespan, every
``LEADROUTE_SLA_POLL_SECONDS``). Its timer part (:func:`fire_due_timers`) takes due timers one at a time,
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

- the breach is recorded (``lead.sla_breached``), and the owner is never given this lead again;
- ``reassign``: the next eligible owner of the pool (``Router.assign`` with the lead's breaching
  owners excluded), with a new timer (``lead.reassigned``);
- ``escalate``: the pool's ``escalate_to``, an owner (claimed directly: active, not out of office,
  with room) or a pool (routed, excluding the breaching owners); a new timer (``lead.escalated``).
  A pool without ``escalate_to`` reassigns instead, and says so;
- the lead's ``LEADROUTE_SLA_MAX_BREACHES``-th breach, or nobody left to take it, puts it in the
  fallback queue, unassigned, with the reason (``lead.queued``). So a lead never loops.

Before the breach, "about to breach" (:func:`fire_due_warnings`): a running timer whose ``warn_at``
has come (``LEADROUTE_SLA_WARN_BEFORE_MINUTES`` before ``due_at``) and whose deadline is still
ahead is claimed the same way (``FOR UPDATE SKIP LOCKED``), and ``lead.sla_warning`` is appended
with ``warned_at`` set in one transaction: once across instances, never after the lead was
accepted, moved or closed (those stop the timer, so it is no longer pending). A warning whose
deadline has already passed is not given: the breach is the news then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

from leadroute.errors import UnknownOwner
from leadroute.outage import OUTAGES, dependency_down
from leadroute.routing import Assignment
from leadroute.rules import Sla
from leadroute.runtime import Runtime
from leadroute.store.queries import QUERIES
from leadroute.telemetry import METRICS
from leadroute.workflow.actions import WAITING, breached_owners, claim_owner, route_again
from leadroute.workflow.drain import drain_queues
from leadroute.workflow.log import LeadSlaBreached, LeadSlaWarning
from leadroute.workflow.rescore import requalify_due
from leadroute.workflow.runner import Change, run
from leadroute.workflow.writer import Current, current_of, place

__all__ = [
    "BATCH",
    "BEHIND_AFTER",
    "WORKERS",
    "background_pass",
    "fire_due_timers",
    "fire_due_warnings",
    "run_scheduler",
    "scheduler",
]

log = logging.getLogger(__name__)

BATCH = 200
"""Timers one pass fires at most (the next pass, a poll interval later, takes the rest)."""
WORKERS = 4
"""Timers one instance fires side by side (each on its own pooled connection)."""
MAX_RETRY_MINUTES = 60
BEHIND_AFTER = 5.0
"""Seconds past the poll interval a due timer may wait before this instance counts itself behind
(admission control then admits fewer requests until the timers catch up)."""


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
    timer_id: int | None = None

    async def step(ch: Change) -> tuple[int, bool] | None:
        nonlocal timer_id
        timer = await ch.conn.fetchrow(QUERIES["sla_timer_claim"], ch.now, seen)
        if timer is None:
            return None
        timer_id = timer["id"]
        lead = await ch.conn.fetchrow(QUERIES["workflow_lead_try_lock"], timer["lead_id"])
        return timer["id"], lead is not None and await _breach(ch, timer=timer, lead=lead)

    try:
        fired = await run(rt, step, now=now, background=True)
    except Exception as exc:
        if timer_id is None:
            raise
        seen.append(timer_id)
        await _failed(rt, timer_id, type(exc).__name__, now)
        log.debug("SLA timer %d failed", timer_id, exc_info=True)
        return 0
    if fired is None:
        return None
    seen.append(fired[0])
    return int(fired[1])


async def fire_due_warnings(rt: Runtime, now: datetime | None = None, *, limit: int = BATCH) -> int:
    """Give the "about to breach" warnings due at ``now`` (default: the runtime's clock); returns
    how many were given. Each timer warns once across every instance (see the module's text).

    A warning that fails for a reason other than a dependency being down (a bug) is logged and
    dropped (``warned_at`` set without an event), so it cannot block the others pass after pass;
    the breach still comes on time."""
    at = now or rt.clock()
    seen: list[int] = []
    warned = 0
    while len(seen) < limit:
        claimed: int | None = None

        async def step(ch: Change) -> tuple[int, bool] | None:
            nonlocal claimed
            timer = await ch.conn.fetchrow(QUERIES["sla_warning_claim"], ch.now, seen)
            if timer is None:
                return None
            claimed = timer["id"]
            lead = await ch.conn.fetchrow(QUERIES["workflow_lead_try_lock"], timer["lead_id"])
            if lead is None:  # a request is busy with the lead: the next pass comes back to it
                return timer["id"], False
            await ch.conn.execute(QUERIES["sla_warning_done"], timer["id"], ch.now)
            current = current_of(await ch.conn.fetchrow(QUERIES["workflow_current"], lead["id"]))
            if current is None or current.id != timer["assignment_id"] or lead["status"] not in WAITING:
                return timer["id"], False  # stale: the breach pass cancels the timer
            left = max(1, round((timer["due_at"] - ch.now).total_seconds() / 60))
            await ch.emit(
                lead["id"],
                "lead.sla_warning",
                LeadSlaWarning(
                    owner=timer["owner_id"],
                    due_at=timer["due_at"],
                    minutes_left=left,
                    minutes=timer["minutes"],
                    pool=timer["pool_id"],
                    business_hours=timer["business_hours"],
                ),
            )
            return timer["id"], True

        try:
            done = await run(rt, step, now=at, background=True)
        except Exception as exc:
            if dependency_down(exc) is not None or claimed is None:
                raise  # background_pass logs it (an outage once)
            log.error("SLA warning of timer %d failed (%s); dropped", claimed, type(exc).__name__)
            log.debug("SLA warning failed", exc_info=True)
            async with rt.pool(background=True).acquire() as conn:
                await conn.execute(QUERIES["sla_warning_done"], claimed, at)
            seen.append(claimed)
            continue
        if done is None:
            return warned
        seen.append(done[0])
        warned += int(done[1])
    return warned


async def _failed(rt: Runtime, timer_id: int, error: str, now: datetime) -> None:
    """Count a failed attempt and put the timer off (1, 2, 4 ... 60 minutes); it stays pending."""
    async with rt.pool(background=True).acquire() as conn:
        attempts = await conn.fetchval(QUERIES["sla_timer_failed"], timer_id, error, now, MAX_RETRY_MINUTES)
    log.error(
        "SLA timer %d could not fire (%s, attempt %s); it will be tried again", timer_id, error, attempts
    )


async def _breach(ch: Change, *, timer: Any, lead: Any) -> bool:
    """Act on one due timer (the lead is locked). False: the timer was stale and is cancelled."""
    lead_id = lead["id"]
    current = current_of(await ch.conn.fetchrow(QUERIES["workflow_current"], lead_id))
    if current is None or current.id != timer["assignment_id"] or lead["status"] not in WAITING:
        # accepted, moved or closed without stopping this timer: nothing to breach
        await ch.conn.execute(QUERIES["sla_timer_resolve"], timer["id"], "cancelled", "stale", ch.now)
        return False
    count = timer["breaches"] + 1
    limit = ch.rt.settings.sla_max_breaches
    await ch.conn.execute(QUERIES["sla_timer_resolve"], timer["id"], "fired", "breached", ch.now)
    ch.after_commit(METRICS.sla_breaches.inc)
    await ch.emit(
        lead_id,
        "lead.sla_breached",
        LeadSlaBreached(
            owner=timer["owner_id"],
            due_at=timer["due_at"],
            minutes=timer["minutes"],
            breach=count,
            on_breach=timer["on_breach"],
            business_hours=timer["business_hours"],
        ),
    )
    sla = Sla(accept_within_minutes=timer["minutes"], on_breach=timer["on_breach"])
    common: dict[str, Any] = {"lead_id": lead_id, "current": current, "sla": sla, "breaches": count}
    fallback = ch.rt.rules.ruleset.fallback

    if count >= limit:
        reason = f"the SLA was breached {count} times (limit {limit})"
        parked = Assignment(
            owner=None,
            pool=current.pool_id,
            queue=fallback,
            reason=reason,
            skipped=[],
            pools_tried=[],
            rule=current.rule,
        )
        await place(ch, placed=parked, cause="sla_breach", sla_pool=timer["pool_id"], parked=True, **common)
        return True

    escalate_to: str | None = None
    note: str | None = None
    if timer["on_breach"] == "escalate":
        pool = await ch.conn.fetchrow(QUERIES["routing_pool"], timer["pool_id"]) if timer["pool_id"] else None
        escalate_to = pool["escalate_to"] if pool is not None else None
        if escalate_to is None:
            note = "no escalation target (the pool has no escalate_to): reassigned instead"

    exclude = await breached_owners(ch.conn, lead_id)
    if escalate_to is not None:
        placed = await _escalate(ch, lead=lead, current=current, to=escalate_to, sla=sla, exclude=exclude)
        await place(
            ch,
            placed=placed,
            cause="escalation",
            moved="escalated",
            sla_pool=placed.pool or timer["pool_id"],
            escalate_to=escalate_to,
            parked=placed.owner is None,
            **common,
        )
    else:
        placed = await route_again(ch, lead=lead, current=current, exclude=exclude, sla=sla)
        await place(
            ch,
            placed=placed,
            cause="sla_breach",
            moved="reassigned",
            sla_pool=timer["pool_id"],
            note=note,
            **common,
        )
    return True


async def _escalate(
    ch: Change, *, lead: Any, current: Current, to: str, sla: Sla, exclude: set[str]
) -> Assignment:
    """Place the lead with the escalation target: a pool (routed) or an owner (claimed)."""
    rule = current.rule or "escalation"
    if await ch.conn.fetchrow(QUERIES["routing_pool"], to) is not None:
        return await route_again(ch, lead=lead, current=current, exclude=exclude, sla=sla, pool=to, rule=rule)
    why: str | None = "already let this lead's SLA run out"
    if to not in exclude:
        try:
            claimed, why = await claim_owner(ch, to, rule=rule, strategy="escalation")
        except UnknownOwner:
            claimed, why = None, "no such owner or pool"
        if claimed is not None:
            return claimed
    return Assignment(
        owner=None,
        pool=current.pool_id,
        queue=ch.rt.rules.ruleset.fallback,
        reason=f"escalation target {to!r} cannot take the lead: {why}",
        skipped=[],
        pools_tried=[],
        rule=rule,
    )


async def background_pass(rt: Runtime) -> None:
    """One pass of the background work: fire due SLA timers, drain queues, requalify for decay.

    Each part's failure is logged and does not stop the others (the next pass tries again).
    """
    settings = rt.settings
    parts: tuple[tuple[str, str, Callable[[], Awaitable[int]]], ...] = (
        ("SLA warnings", "warned", lambda: fire_due_warnings(rt)),
        ("SLA timers", "breached", lambda: fire_due_timers(rt)),
        ("queue drain", "placed", lambda: drain_queues(rt, limit=settings.drain_batch)),
        ("decay", "changed stage", lambda: requalify_due(rt, limit=settings.drain_batch)),
    )
    async with rt.pool(background=True).acquire() as conn:
        METRICS.queue_depth.set(await conn.fetchval(QUERIES["queue_depth"]))
        lag = await conn.fetchval(QUERIES["sla_timers_lag"], rt.clock())
    behind = lag > settings.sla_poll_seconds + BEHIND_AFTER
    if behind != rt.backlog.behind:
        log.warning(
            "SLA timers %s (the oldest due one is %.0f s late): admitting %s",
            "behind" if behind else "caught up",
            lag,
            "fewer new leads" if behind else "all requests",
        )
    rt.backlog.behind, rt.backlog.lag_seconds = behind, lag
    for name, verb, work in parts:
        try:
            done = await work()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if (down := dependency_down(exc)) is not None:  # one line per outage, not one a pass
                OUTAGES.down(down, exc, f"the {name} pass")
                continue
            log.error("%s pass failed (%s); the next pass tries again", name, type(exc).__name__)
            log.debug("%s pass failed", name, exc_info=True)
            continue
        if done:
            log.info("%s: %d lead(s) %s", name, done, verb)


async def run_scheduler(rt: Runtime, interval: float) -> None:
    """Run :func:`background_pass` every ``interval`` seconds, or sooner when this instance freed
    routing capacity (the queue drain then places waiting leads at once), until cancelled."""
    while True:
        rt.drain_wakeup.clear()
        await background_pass(rt)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(rt.drain_wakeup.wait(), timeout=interval)


@contextlib.asynccontextmanager
async def scheduler(rt: Runtime) -> AsyncIterator[None]:
    """Run the background work while the app serves (off when the interval is 0)."""
    interval = rt.settings.sla_poll_seconds
    if interval <= 0:
        yield
        return
    task = asyncio.create_task(run_scheduler(rt, interval), name="leadroute-scheduler")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
