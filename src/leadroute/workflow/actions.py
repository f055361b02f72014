"""The lead workflow's transitions: accept, reassign, close, and the moves an SLA breach makes.

States (``leads.status``, mirrored on the lead's current assignment row)::

    assigned ──accept──▶ accepted ──close──▶ closed
       │  ▲                 │
       │  └── reassign ─────┘  (by hand, or by the scheduler on an SLA breach)
       ├──breach──▶ reassigned | escalated | unassigned (the fallback queue)
       └──close───▶ closed

``assigned``, ``reassigned`` and ``escalated`` wait for the owner to accept (an SLA timer may be
running); ``accepted`` is owned and the clock has stopped; ``unassigned`` sits in a queue with the
reason; ``closed`` is final (its last assignment stays current, marked closed).

Each transition is one PostgreSQL transaction that locks the lead row first, so concurrent
requests and schedulers on one lead apply one after the other. Capacity follows PostgreSQL: a
new owner is claimed in Redis (``Router.assign`` or a direct claim) inside the transaction and
given back if it rolls back; the previous owner's slot is freed only once the commit succeeded
(``Moves``: ``Router.prepare_release`` as the last step in the transaction, ``Router.release``
after it), so a failed commit never leaves the count below what PostgreSQL holds.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from leadroute.errors import ClientError, NotFound
from leadroute.routing import (
    Assignment,
    PoolRules,
    PoolTarget,
    Release,
    RoutingStateLost,
    member_from_row,
)
from leadroute.routing.assign import ROUTING_LOCK
from leadroute.routing.eligibility import skip_reason
from leadroute.rules import Sla
from leadroute.runtime import Runtime
from leadroute.store.db import Connection
from leadroute.store.queries import QUERIES
from leadroute.workflow.intake import STATE_LOST_RETRIES
from leadroute.workflow.sla import cancel_timers, start_timer

__all__ = [
    "OWNED",
    "STATES",
    "WAITING",
    "Moves",
    "NotCurrentOwner",
    "UnknownOwner",
    "WorkflowConflict",
    "accept",
    "claim_owner",
    "close",
    "move",
    "reassign",
    "record_step",
    "route_again",
    "transition",
    "view",
    "workflow_history",
]

STATES = ("assigned", "accepted", "reassigned", "escalated", "closed", "unassigned")
WAITING = frozenset({"assigned", "reassigned", "escalated"})
"""States in which the owner has not accepted yet (an SLA timer may be running)."""
OWNED = WAITING | {"accepted"}


class WorkflowConflict(ClientError):
    """The lead's state does not allow this action (closed, no owner, ...): 409."""

    status = 409
    kind = "workflow-conflict"
    title = "The lead's workflow state does not allow this"


class NotCurrentOwner(WorkflowConflict):
    kind = "not-current-owner"
    title = "Not the lead's current owner"

    def __init__(self, owner_id: str, current: str | None) -> None:
        super().__init__(
            f"owner {owner_id!r} is not the lead's current owner"
            + (f" (it is {current!r})" if current else " (the lead has no owner)"),
            errors=[{"field": "owner_id", "message": "not the current owner"}],
        )


class UnknownOwner(ClientError):
    status = 422
    kind = "unknown-owner"
    title = "Unknown owner"

    def __init__(self, owner_id: str) -> None:
        super().__init__(
            f"no owner with id {owner_id!r}",
            errors=[{"field": "owner_id", "message": f"unknown owner {owner_id!r}"}],
        )


@dataclass(slots=True)
class Moves:
    """Redis capacity effects of one transaction: slots claimed (undone on rollback), slots to free
    (only after the commit).

    In the transaction: ``claimed`` / ``released`` as the step goes, then :meth:`finish` last.
    Then :meth:`committed` after a commit, or :meth:`undo` after a rollback (never both).
    """

    claimed: list[Assignment] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    """Owners whose lead this transaction ends (closed, or moved to someone else)."""
    pending: list[Release] = field(default_factory=list)

    async def finish(self, rt: Runtime, conn: Connection) -> None:
        """The last step before the commit: prepare freeing the previous owners' slots."""
        self.pending = [await rt.routing.prepare_release(conn, owner_id=o) for o in self.released]

    async def committed(self, rt: Runtime) -> None:
        """The transaction committed: free the previous owners' slots now, not before (a failed
        commit must leave them taken, as PostgreSQL still has the leads open)."""
        pending, self.pending = self.pending, []
        await rt.routing.release(pending)

    async def undo(self, rt: Runtime) -> None:
        """The transaction rolled back: give back the slots it claimed (unless a rebuild recounted)."""
        for placed in self.claimed:
            await rt.routing.unclaim(placed)
        self.claimed.clear()
        self.pending.clear()


Step = Callable[[Connection, Moves], Awaitable[dict[str, Any]]]


async def transition(rt: Runtime, step: Step) -> dict[str, Any]:
    """Run ``step`` in one transaction; retried when Redis lost its routing state mid-claim."""
    for attempt in range(STATE_LOST_RETRIES):
        moves = Moves()
        try:
            async with rt.db.acquire() as conn, conn.transaction():
                result = await step(conn, moves)
                await moves.finish(rt, conn)
        except RoutingStateLost:
            await moves.undo(rt)
            if attempt == STATE_LOST_RETRIES - 1:
                raise
            continue
        except BaseException:
            await moves.undo(rt)
            raise
        await moves.committed(rt)  # outside the try: the claims of a committed step are kept
        return result
    raise AssertionError("unreachable")


# -- reads -----------------------------------------------------------------------------------------


def _timer(row: Any) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        "status": row["status"],
        "owner": row["owner_id"],
        "started_at": row["started_at"],
        "due_at": row["due_at"],
        "minutes": row["minutes"],
        "on_breach": row["on_breach"],
        "business_hours": row["business_hours"],
        "breaches": row["breaches"],
        "resolution": row["resolution"],
        "resolved_at": row["resolved_at"],
    }


async def view(conn: Connection, lead_id: uuid.UUID) -> dict[str, Any]:
    """The lead's workflow state now: state, owner or queue, and its latest SLA timer."""
    lead = await conn.fetchrow(QUERIES["lead_get"], lead_id)
    if lead is None:
        raise NotFound("lead", str(lead_id))
    current = await conn.fetchrow(QUERIES["workflow_current"], lead_id)
    timer = await conn.fetchrow(QUERIES["sla_lead_latest"], lead_id)
    return {
        "lead_id": str(lead_id),
        "status": lead["status"],
        "owner": lead["owner_id"],
        "pool": lead["pool_id"],
        "queue": current["queue"] if current is not None else None,
        "reason": current["reason"] if current is not None else None,
        "assigned_at": current["created_at"] if current is not None else None,
        "accepted_at": current["accepted_at"] if current is not None else None,
        "sla": _timer(timer),
    }


async def workflow_history(conn: Connection, lead_id: uuid.UUID) -> dict[str, Any]:
    """For ``GET /v1/leads/{id}``: the state, every assignment, SLA timer and workflow step, in order."""
    state = await view(conn, lead_id)
    del state["lead_id"]
    state["assignments"] = [
        {
            "owner": a["owner_id"],
            "pool": a["pool_id"],
            "status": a["status"],
            "queue": a["queue"],
            "reason": a["reason"],
            "rule": a["rule"],
            "assigned_at": a["created_at"],
            "accepted_at": a["accepted_at"],
            "ended_at": a["ended_at"],
        }
        for a in await conn.fetch(QUERIES["workflow_assignments"], lead_id)
    ]
    state["timers"] = [_timer(t) for t in await conn.fetch(QUERIES["sla_lead_timers"], lead_id)]
    state["steps"] = [
        {"at": s["received_at"], "kind": s["kind"], **(s["payload"] or {})}
        for s in await conn.fetch(QUERIES["workflow_steps"], lead_id)
    ]
    return state


# -- building blocks -------------------------------------------------------------------------------


async def record_step(
    conn: Connection, lead_id: uuid.UUID, kind: str, now: datetime, detail: dict[str, Any]
) -> None:
    """One step in the lead's history (a ``lead_events`` row at the service clock's time)."""
    await conn.fetchval(QUERIES["workflow_event"], lead_id, kind, now, detail)


async def _lock(conn: Connection, lead_id: uuid.UUID) -> tuple[Any, Any]:
    lead = await conn.fetchrow(QUERIES["workflow_lead_lock"], lead_id)
    if lead is None:
        raise NotFound("lead", str(lead_id))
    return lead, await conn.fetchrow(QUERIES["workflow_current"], lead_id)


async def _lead_sla(conn: Connection, lead_id: uuid.UUID) -> tuple[Sla | None, int, str | None]:
    """The lead's SLA terms (from its latest timer), its breaches so far, and that timer's pool."""
    row = await conn.fetchrow(QUERIES["sla_lead_latest"], lead_id)
    if row is None:
        return None, 0, None
    breaches = row["breaches"] + (1 if row["status"] == "fired" else 0)
    return Sla(accept_within_minutes=row["minutes"], on_breach=row["on_breach"]), breaches, row["pool_id"]


async def _rule_sla(conn: Connection, lead_id: uuid.UUID, rule: str | None) -> Sla | None:
    """The SLA of routing rule ``rule`` in the lead's latest decision (None: no rule or no SLA).

    A lead that waited in a queue from the start has no timer to carry the terms over from; when
    someone takes it, the SLA of the rule that routed it applies.
    """
    if rule is None:
        return None
    raw = await conn.fetchval(QUERIES["workflow_targets"], lead_id)
    for target in msgspec.convert(raw or [], list[PoolTarget]):
        if target.rule == rule and target.sla is not None:
            return target.sla
    return None


async def claim_owner(
    rt: Runtime, conn: Connection, owner_id: str, now: datetime, *, rule: str | None, strategy: str
) -> tuple[Assignment | None, str | None]:
    """Claim one named owner (a reassignment by hand, an escalation to a person).

    The owner must exist (else :class:`UnknownOwner`), be active and not out of office, and have
    room (``max_open``, ``max_per_day``, checked and claimed atomically in Redis). Working hours are
    not checked: a person chose this owner. Returns the placement, or None and the reason.
    """
    row = await conn.fetchrow(QUERIES["routing_owner_get"], owner_id)
    if row is None:
        raise UnknownOwner(owner_id)
    member = member_from_row(row)
    reason = skip_reason(member, PoolRules(allow_off_hours=True), now)
    if reason is not None:
        return None, reason
    await rt.routing.ensure_state()
    await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", ROUTING_LOCK)
    claim = await rt.routing.state.pick("claim", None, [member], frozenset({owner_id}), now)
    if claim.owner is None:
        return None, claim.skipped[0].reason if claim.skipped else "over_capacity"
    placed = Assignment(
        owner=claim.owner,
        pool=None,
        queue=None,
        reason=None,
        skipped=[],
        pools_tried=[],
        rule=rule,
        strategy=strategy,
        seq=claim.seq,
        generation=claim.generation,
    )
    return placed, None


async def route_again(
    rt: Runtime,
    conn: Connection,
    moves: Moves,
    *,
    lead: Any,
    current: Any,
    exclude: Collection[str],
    sla: Sla | None,
    now: datetime,
) -> Assignment:
    """Route the lead again, never to ``exclude``: within its current pool if it has one, else
    through its latest decision's routing targets. Falls back to a queue like intake does."""
    pool = current["pool_id"] if current is not None else lead["pool_id"]
    if pool is not None:
        rule = (current["rule"] if current is not None else None) or "reassign"
        targets = [PoolTarget(rule=rule, pool=pool, sla=sla)]
    else:
        raw = await conn.fetchval(QUERIES["workflow_targets"], lead["id"])
        targets = msgspec.convert(raw or [], list[PoolTarget])
    placed = await rt.routing.assign(
        conn,
        lead_id=lead["id"],
        company_domain=lead["company_domain"],
        targets=targets,
        fallback=rt.rules.ruleset.fallback,
        now=now,
        exclude=exclude,
    )
    if placed.owner is not None:
        moves.claimed.append(placed)
    return placed


async def move(
    conn: Connection,
    moves: Moves,
    *,
    lead_id: uuid.UUID,
    current: Any,
    placed: Assignment,
    status: str,
    now: datetime,
    sla: Sla | None,
    breaches: int,
    sla_pool: str | None,
    resolution: str,
) -> None:
    """Make ``placed`` the lead's current assignment in state ``status`` (``unassigned`` when it
    has no owner): stop the running timer, end the current assignment and free its owner's slot,
    write the new row and the lead, and start the new owner's timer when the lead has an SLA."""
    if placed.owner is None:
        status = "unassigned"
    await cancel_timers(conn, lead_id, resolution, now)
    if current is not None:
        await conn.execute(QUERIES["routing_assignment_end"], current["id"], now)
        if current["owner_id"] is not None and current["status"] != "closed":
            moves.released.append(current["owner_id"])
    assignment_id = await conn.fetchval(
        QUERIES["routing_assignment_insert"],
        lead_id,
        None,
        placed.owner,
        placed.pool,
        status,
        placed.queue,
        placed.reason,
        now,
        placed.seq,
        placed.rule,
    )
    await conn.execute(QUERIES["workflow_lead_set"], lead_id, status, placed.owner, placed.pool, now)
    if placed.owner is not None and sla is not None:
        await start_timer(
            conn,
            lead_id=lead_id,
            assignment_id=assignment_id,
            owner_id=placed.owner,
            pool_id=placed.pool or sla_pool,
            sla=sla,
            now=now,
            breaches=breaches,
        )


def skipped(placed: Assignment) -> list[dict[str, Any]]:
    """The owners passed over, for a history step."""
    result: list[dict[str, Any]] = msgspec.to_builtins(placed.skipped)
    return result


# -- the HTTP actions ------------------------------------------------------------------------------


async def accept(rt: Runtime, lead_id: uuid.UUID, owner_id: str) -> dict[str, Any]:
    """The current owner accepts the lead: the SLA clock stops. Accepting again answers the same."""

    async def step(conn: Connection, moves: Moves) -> dict[str, Any]:
        del moves
        lead, current = await _lock(conn, lead_id)
        status = lead["status"]
        if status == "closed":
            raise WorkflowConflict("the lead is closed")
        if status == "unassigned":
            raise WorkflowConflict(
                "the lead has no owner to accept it (it is in a queue)",
                errors=[{"field": "owner_id", "message": "the lead is unassigned"}],
            )
        if lead["owner_id"] != owner_id:
            raise NotCurrentOwner(owner_id, lead["owner_id"])
        if status == "accepted":
            return await view(conn, lead_id)
        now = rt.clock()
        timers = await conn.fetch(QUERIES["sla_timers_cancel"], lead_id, "accepted", now)
        await conn.execute(QUERIES["workflow_assignment_state"], current["id"], "accepted", now)
        await conn.execute(QUERIES["workflow_lead_status"], lead_id, "accepted", now)
        await record_step(
            conn,
            lead_id,
            "assignment.accepted",
            now,
            {
                "owner": owner_id,
                "after_minutes": round((now - current["created_at"]).total_seconds() / 60, 2),
                "sla_stopped": bool(timers),
            },
        )
        return await view(conn, lead_id)

    return await transition(rt, step)


async def reassign(
    rt: Runtime, lead_id: uuid.UUID, owner_id: str | None, reason: str | None
) -> dict[str, Any]:
    """Move the lead to ``owner_id``, or to the next eligible owner of its pool (never the current
    one, nor anyone who let its SLA run out). Nobody eligible: the fallback queue, with the reason.

    Reassigning to the lead's current owner changes nothing (a retry gets the same answer).
    """

    async def step(conn: Connection, moves: Moves) -> dict[str, Any]:
        lead, current = await _lock(conn, lead_id)
        if lead["status"] == "closed":
            raise WorkflowConflict("the lead is closed; closed leads are not reassigned")
        if owner_id is not None and owner_id == lead["owner_id"]:
            return await view(conn, lead_id)
        now = rt.clock()
        sla, breaches, sla_pool = await _lead_sla(conn, lead_id)
        if sla is None and current is not None:
            sla = await _rule_sla(conn, lead_id, current["rule"])
        previous = lead["owner_id"]
        if owner_id is not None:
            placed, why = await claim_owner(
                rt, conn, owner_id, now, rule=current["rule"] if current else None, strategy="direct"
            )
            if placed is None:
                raise WorkflowConflict(
                    f"owner {owner_id!r} cannot take the lead now: {why}",
                    errors=[{"field": "owner_id", "message": str(why)}],
                )
            moves.claimed.append(placed)
            sla_pool = (current["pool_id"] if current else None) or sla_pool
        else:
            exclude = {r["owner_id"] for r in await conn.fetch(QUERIES["sla_breached_owners"], lead_id)}
            if previous is not None:
                exclude.add(previous)
            placed = await route_again(
                rt, conn, moves, lead=lead, current=current, exclude=exclude, sla=sla, now=now
            )
            sla = placed.sla or sla
        await move(
            conn,
            moves,
            lead_id=lead_id,
            current=current,
            placed=placed,
            status="reassigned",
            now=now,
            sla=sla,
            breaches=breaches,
            sla_pool=sla_pool,
            resolution="reassigned",
        )
        detail: dict[str, Any] = {"by": "api", "from": previous, "reason": reason}
        if placed.owner is not None:
            detail |= {"to": placed.owner, "pool": placed.pool, "skipped": skipped(placed)}
            await record_step(conn, lead_id, "assignment.reassigned", now, detail)
        else:
            detail |= {"queue": placed.queue, "why": placed.reason, "skipped": skipped(placed)}
            await record_step(conn, lead_id, "assignment.fallback", now, detail)
        return await view(conn, lead_id)

    return await transition(rt, step)


async def close(rt: Runtime, lead_id: uuid.UUID, reason: str | None) -> dict[str, Any]:
    """Close the lead: its timer stops and its owner's slot is freed. Closing again answers the same."""

    async def step(conn: Connection, moves: Moves) -> dict[str, Any]:
        lead, current = await _lock(conn, lead_id)
        if lead["status"] == "closed":
            return await view(conn, lead_id)
        now = rt.clock()
        await cancel_timers(conn, lead_id, "closed", now)
        if current is not None:
            await conn.execute(QUERIES["workflow_assignment_state"], current["id"], "closed", None)
            if current["owner_id"] is not None:
                moves.released.append(current["owner_id"])
        await conn.execute(QUERIES["workflow_lead_status"], lead_id, "closed", now)
        await record_step(
            conn,
            lead_id,
            "assignment.closed",
            now,
            {"by": "api", "owner": lead["owner_id"], "from_status": lead["status"], "reason": reason},
        )
        return await view(conn, lead_id)

    return await transition(rt, step)
