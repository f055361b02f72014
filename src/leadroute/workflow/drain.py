"""The queue drain: queued leads are offered again, oldest first, when an owner can take them.

A lead queued because its pool had nobody eligible (everyone at capacity, off shift, out of
office, inactive) *waits* for that pool (``assignments.waiting``). Each background pass, and at
once when this instance freed capacity (:attr:`Runtime.drain_wakeup`), :func:`drain_queues` takes
waiting leads oldest first, one transaction each, and routes them again within their pool (and
its fallback chain), never back to an owner it was moved away from (an SLA breach, a
reassignment). Placed: the lead is
``assigned`` with a ``lead.assigned`` event (cause ``queue_drain``) and its rule's SLA starts. Not
placed: nothing is written, and the pool is left alone until the next pass (the leads behind the
oldest one would meet the same owners).

One instance drains a pool at a time: it takes a transaction-level advisory lock per pool before
it picks the pool's oldest waiting lead (another instance skips the pool for that pass), so a
pool's leads are placed strictly oldest first, even while capacity comes free concurrently.

Leads taken while Redis was unreachable (``pending``, no pool yet) are drained the same way, as
one queue in arrival order: each is routed once through its decision's routing targets, to an
owner or, like at intake, to a queue.

So an owner who frees capacity (close, reassign), comes back from out-of-office, starts their
working hours, or is added to the pool or reactivated gets the queue's oldest lead within one
pass. Exactly once across instances: the lead row is claimed ``FOR UPDATE SKIP LOCKED`` and must
still be ``unassigned`` when locked. Bounded: at most ``LEADROUTE_DRAIN_BATCH`` leads per pass, on
one connection at a time, so a burst of frees cannot starve intake.
"""

from __future__ import annotations

import functools

from leadroute.runtime import Runtime
from leadroute.store.queries import QUERIES
from leadroute.workflow.actions import former_owners, moving_sla, route_again
from leadroute.workflow.runner import Change, run
from leadroute.workflow.writer import Current, place

__all__ = ["drain_queues"]


async def drain_queues(rt: Runtime, *, limit: int) -> int:
    """Offer up to ``limit`` waiting leads again, oldest first; returns how many were placed."""
    async with rt.pool(background=True).acquire() as conn:
        queues = [r["queue"] for r in await conn.fetch(QUERIES["drain_queues"])]
    placed_count = 0
    tries = 0
    for queue in queues:  # the queue whose oldest lead has waited longest first
        while tries < limit:
            tries += 1
            outcome = await run(rt, functools.partial(_drain_one, queue=queue), background=True)
            if outcome is None:  # empty, drained by another instance right now, or nobody can take it
                break
            placed_count += outcome
    return placed_count


async def _drain_one(ch: Change, *, queue: str) -> int | None:
    """Place the oldest waiting lead of ``queue`` (a pool, or ``''`` for pending leads), holding
    the queue's lock so that no other instance places a younger one meanwhile.

    1: placed with an owner; 0: a pending lead routed to a queue; None: nothing more to do here.
    """
    if not await ch.conn.fetchval(QUERIES["drain_pool_lock"], queue):
        return None  # another instance drains this queue right now
    row = await ch.conn.fetchrow(QUERIES["drain_claim"], queue)
    if row is None:
        return None
    current = Current(
        id=row["assignment_id"],
        owner_id=row["assignment_owner"],
        pool_id=row["assignment_pool"],
        status=row["assignment_status"],
        created_at=row["queued_at"],
        rule=row["rule"],
    )
    pending = row["status"] == "pending"
    sla, breaches, sla_pool = await moving_sla(ch.conn, row["id"], current)
    exclude = await former_owners(ch.conn, row["id"])
    placed = await route_again(ch, lead=row, current=current, exclude=exclude, sla=sla)
    if placed.owner is None and not pending:
        return None  # nobody can take it now: neither the leads behind it (the same owners)
    await place(
        ch,
        lead_id=row["id"],
        current=current,
        placed=placed,
        cause="queue_drain",
        sla=sla,
        sla_pool=sla_pool,
        breaches=breaches,
    )
    return 1 if placed.owner is not None else 0
