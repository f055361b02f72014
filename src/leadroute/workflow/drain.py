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

One instance drains a pool at a time (a transaction-level advisory lock per pool; another
instance skips the pool for that pass), so a pool's leads are placed strictly oldest first.

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

from leadroute.runtime import Runtime
from leadroute.store.queries import QUERIES
from leadroute.workflow.actions import former_owners, moving_sla, route_again
from leadroute.workflow.runner import Change, run
from leadroute.workflow.writer import Current, place

__all__ = ["drain_queues"]


async def drain_queues(rt: Runtime, *, limit: int) -> int:
    """Offer up to ``limit`` waiting leads again, oldest first; returns how many were placed."""
    blocked: list[str] = []  # pools whose oldest waiting lead found nobody this pass
    placed_count = 0
    for _ in range(limit):

        async def step(ch: Change) -> bool | None:
            row = await ch.conn.fetchrow(QUERIES["drain_claim"], blocked)
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
            queue = current.pool_id or ""  # pending leads (no pool yet) drain as one queue
            if not await ch.conn.fetchval(QUERIES["drain_pool_lock"], queue):
                blocked.append(queue)  # another instance drains this pool right now
                return False
            sla, breaches, sla_pool = await moving_sla(ch.conn, row["id"], current)
            exclude = await former_owners(ch.conn, row["id"])
            placed = await route_again(ch, lead=row, current=current, exclude=exclude, sla=sla)
            if placed.owner is None and not pending:
                blocked.append(queue)
                return False
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
            return placed.owner is not None

        done = await run(rt, step)
        if done is None:
            break
        placed_count += int(done)
    return placed_count
