"""The lead workflow's transitions that people make: accept, reassign, close.

States (``leads.status``, mirrored on the lead's current assignment row)::

    assigned ──accept──▶ accepted ──close──▶ closed
       │  ▲                 │
       │  └── reassign ─────┘  (by hand, or by the scheduler on an SLA breach)
       ├──breach──▶ reassigned | escalated | unassigned (the fallback queue)
       └──close───▶ closed

``assigned``, ``reassigned`` and ``escalated`` wait for the owner to accept (an SLA timer may be
running); ``accepted`` is owned and the clock has stopped; ``unassigned`` sits in a queue with the
reason; ``closed`` is final (its last assignment stays current, marked closed).

Each is one step of the runner (:mod:`leadroute.workflow.runner`) that locks the lead row first,
so concurrent requests and schedulers on one lead apply one after the other. The building blocks
the scheduler shares (:func:`claim_owner`, :func:`route_again`, :func:`lead_sla`) live here too.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Any, Final

import msgspec

from leadroute.errors import NotCurrentOwner, NotFound, UnknownOwner, WorkflowConflict
from leadroute.routing import Assignment, PoolRules, PoolTarget
from leadroute.routing.eligibility import skip_reason
from leadroute.rules import Sla
from leadroute.runtime import Runtime
from leadroute.store.db import Connection
from leadroute.store.queries import QUERIES
from leadroute.workflow.log import LeadAccepted, LeadClosed
from leadroute.workflow.runner import Change, run
from leadroute.workflow.sla import cancel_timers
from leadroute.workflow.story import LeadState, view
from leadroute.workflow.writer import Current, current_of, place

__all__ = [
    "WAITING",
    "accept",
    "breached_owners",
    "claim_owner",
    "close",
    "close_lead",
    "former_owners",
    "lead_sla",
    "lock",
    "moving_sla",
    "reassign",
    "route_again",
]

WAITING: Final = frozenset({"assigned", "reassigned", "escalated"})
"""States in which the owner has not accepted yet (an SLA timer may be running)."""


async def lock(conn: Connection, lead_id: uuid.UUID) -> tuple[Any, Current | None]:
    """The lead's workflow fields, locked until the transaction ends, and its current assignment."""
    lead = await conn.fetchrow(QUERIES["workflow_lead_lock"], lead_id)
    if lead is None:
        raise NotFound("lead", str(lead_id))
    return lead, current_of(await conn.fetchrow(QUERIES["workflow_current"], lead_id))


async def moving_sla(
    conn: Connection, lead_id: uuid.UUID, current: Current | None
) -> tuple[Sla | None, int, str | None]:
    """The SLA a lead that moves to a new owner gets: its latest timer's terms (or, for a lead that
    never had one, its routing rule's), its breaches so far, and the pool whose settings apply."""
    sla, breaches, sla_pool = await lead_sla(conn, lead_id)
    if sla is None and current is not None:
        sla = await _rule_sla(conn, lead_id, current.rule)
    return sla, breaches, sla_pool


async def lead_sla(conn: Connection, lead_id: uuid.UUID) -> tuple[Sla | None, int, str | None]:
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
    for target in await _targets(conn, lead_id):
        if target.rule == rule and target.sla is not None:
            return target.sla
    return None


async def _targets(conn: Connection, lead_id: uuid.UUID) -> list[PoolTarget]:
    """The routing targets of the lead's latest decision."""
    raw = await conn.fetchval(QUERIES["workflow_targets"], lead_id)
    return msgspec.convert(raw or [], list[PoolTarget])


async def claim_owner(
    ch: Change, owner_id: str, *, rule: str | None, strategy: str
) -> tuple[Assignment | None, str | None]:
    """Claim one named owner (a reassignment by hand, an escalation to a person).

    The owner must exist (else :class:`UnknownOwner`), be active and not out of office, and have
    room (``max_open``, ``max_per_day``, checked and claimed atomically in Redis). Working hours are
    not checked: a person chose this owner. Returns the placement, or None and the reason.
    """
    routing = ch.rt.routing
    await routing.ensure_state()
    member = (await routing.configuration(ch.conn)).owners.get(owner_id)
    if member is None:
        raise UnknownOwner(owner_id)
    reason = skip_reason(member, PoolRules(allow_off_hours=True), ch.now)
    if reason is not None:
        return None, reason
    claim = await routing.state.pick("claim", None, [member], frozenset({owner_id}), ch.now)
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
    return ch.claimed(placed), None


async def route_again(
    ch: Change,
    *,
    lead: Any,
    current: Current | None,
    exclude: Collection[str],
    sla: Sla | None,
    pool: str | None = None,
    rule: str | None = None,
) -> Assignment:
    """Route the lead again, never to ``exclude``: within ``pool`` (default: its current pool) if it
    has one, else through its latest decision's routing targets. Falls back to a queue like intake.
    ``rule``: the routing rule the placement is recorded under (default: the current one)."""
    pool = pool or (current.pool_id if current is not None else lead["pool_id"])
    if pool is not None:
        rule = rule or (current.rule if current is not None else None) or "reassign"
        targets = [PoolTarget(rule=rule, pool=pool, sla=sla)]
    else:
        targets = await _targets(ch.conn, lead["id"])
    placed = await ch.rt.routing.assign(
        ch.conn,
        lead_id=lead["id"],
        company_domain=lead["company_domain"],
        targets=targets,
        fallback=ch.rt.rules.ruleset.fallback,
        now=ch.now,
        exclude=exclude,
    )
    return ch.claimed(placed)


async def breached_owners(conn: Connection, lead_id: uuid.UUID) -> set[str]:
    """Every owner who let this lead's SLA run out (it never goes back to them)."""
    return {r["owner_id"] for r in await conn.fetch(QUERIES["sla_breached_owners"], lead_id)}


async def former_owners(conn: Connection, lead_id: uuid.UUID) -> set[str]:
    """Every owner the lead was moved away from (an SLA breach, a reassignment): the queue drain
    never hands it back to them."""
    return {r["owner_id"] for r in await conn.fetch(QUERIES["lead_former_owners"], lead_id)}


def _owner_actor(owner_id: str) -> str:
    return f"owner:{owner_id}"


async def accept(rt: Runtime, lead_id: uuid.UUID, owner_id: str, *, actor: str | None = None) -> LeadState:
    """The current owner accepts the lead: the SLA clock stops. Accepting again answers the same.

    ``actor`` is who made the call (the API's ``key:<id>``); by default the owner itself.
    """

    async def step(ch: Change) -> LeadState:
        lead, current = await lock(ch.conn, lead_id)
        status = lead["status"]
        if status == "closed":
            raise WorkflowConflict("the lead is closed")
        if status in ("unassigned", "pending") or current is None:
            raise WorkflowConflict(
                "the lead has no owner to accept it (it is in a queue)",
                errors=[{"field": "owner_id", "message": "the lead is unassigned"}],
            )
        if lead["owner_id"] != owner_id:
            raise NotCurrentOwner(owner_id, lead["owner_id"])
        if status == "accepted":
            return await view(ch.conn, lead_id)
        stopped = await cancel_timers(ch.conn, lead_id, "accepted", ch.now)
        await ch.conn.execute(QUERIES["workflow_assignment_state"], current.id, "accepted", ch.now)
        await ch.conn.execute(QUERIES["workflow_lead_status"], lead_id, "accepted", ch.now)
        await ch.emit(
            lead_id,
            "lead.accepted",
            LeadAccepted(
                owner=owner_id,
                after_minutes=round((ch.now - current.created_at).total_seconds() / 60, 2),
                sla_stopped=bool(stopped),
            ),
        )
        return await view(ch.conn, lead_id)

    return await run(rt, step, actor=actor or _owner_actor(owner_id))


async def reassign(
    rt: Runtime, lead_id: uuid.UUID, owner_id: str | None, reason: str | None, *, actor: str = "api"
) -> LeadState:
    """Move the lead to ``owner_id``, or to the next eligible owner of its pool (never the current
    one, nor anyone who let its SLA run out). Nobody eligible: the fallback queue, with the reason.

    Reassigning to the lead's current owner changes nothing (a retry gets the same answer).
    """

    async def step(ch: Change) -> LeadState:
        lead, current = await lock(ch.conn, lead_id)
        if lead["status"] == "closed":
            raise WorkflowConflict("the lead is closed; closed leads are not reassigned")
        if owner_id is not None and owner_id == lead["owner_id"]:
            return await view(ch.conn, lead_id)
        sla, breaches, sla_pool = await moving_sla(ch.conn, lead_id, current)
        if owner_id is not None:
            placed, why = await claim_owner(
                ch, owner_id, rule=current.rule if current else None, strategy="direct"
            )
            if placed is None:
                raise WorkflowConflict(
                    f"owner {owner_id!r} cannot take the lead now: {why}",
                    errors=[{"field": "owner_id", "message": str(why)}],
                )
            sla_pool = (current.pool_id if current else None) or sla_pool
        else:
            exclude = await breached_owners(ch.conn, lead_id)
            if lead["owner_id"] is not None:
                exclude.add(lead["owner_id"])
            placed = await route_again(ch, lead=lead, current=current, exclude=exclude, sla=sla)
        await place(
            ch,
            lead_id=lead_id,
            current=current,
            placed=placed,
            cause="reassign",
            moved="reassigned",
            sla=sla,
            sla_pool=sla_pool,
            breaches=breaches,
            reason=reason,
        )
        return await view(ch.conn, lead_id)

    return await run(rt, step, actor=actor)


async def close(rt: Runtime, lead_id: uuid.UUID, reason: str | None, *, actor: str = "api") -> LeadState:
    """Close the lead: its timer stops and its owner's slot is freed. Closing again answers the same."""

    async def step(ch: Change) -> LeadState:
        await close_lead(ch, lead_id, reason)
        return await view(ch.conn, lead_id)

    return await run(rt, step, actor=actor)


async def close_lead(ch: Change, lead_id: uuid.UUID, reason: str | None) -> bool:
    """Close the lead in ``ch``'s transaction (its timer stops, its owner's slot is freed after the
    commit); False when it was closed already. Also how ``leads dedupe`` closes a merged duplicate."""
    lead, current = await lock(ch.conn, lead_id)
    if lead["status"] == "closed":
        return False
    await cancel_timers(ch.conn, lead_id, "closed", ch.now)
    if current is not None:
        await ch.conn.execute(QUERIES["workflow_assignment_state"], current.id, "closed", None)
        if current.owner_id is not None:
            ch.free(current.owner_id)
    await ch.conn.execute(QUERIES["workflow_lead_closed"], lead_id, ch.now)
    await ch.emit(
        lead_id,
        "lead.closed",
        LeadClosed(owner=lead["owner_id"], from_status=lead["status"], reason=reason),
    )
    return True
