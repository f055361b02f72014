"""The one writer of decisions and placements, used by every step of the workflow.

:func:`record_decision` stores a scoring decision (``decisions``, the full explanation) and its
``lead.scored`` event. :func:`place` makes a placement the lead's current assignment: it stops the
running SLA timer, ends the current assignment and frees its owner's slot, writes the new
assignment and the lead row, starts the new owner's timer, and appends the move to the log
(``lead.assigned``, ``lead.reassigned``, ``lead.escalated`` or ``lead.queued``).
:func:`record_new_lead` writes what those two write for a new lead, in one statement.

Why one module of ~420 lines: it is the one writer, so every rule about what a change writes
(states, waiting, SLA timers, the payloads of the log) is in one place; splitting the new-lead
statement from the generic path would put the same rules in two.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import msgspec
import redis.exceptions

from leadroute.routing import Assignment
from leadroute.rules import Sla
from leadroute.runtime import ActiveRuleset
from leadroute.scoring import Evaluation
from leadroute.store.queries import QUERIES
from leadroute.telemetry import METRICS
from leadroute.workflow.log import Cause, LeadReceived, LeadScored, Placement
from leadroute.workflow.runner import Change
from leadroute.workflow.sla import Due, cancel_timers, start_timer, timer_due

__all__ = [
    "PENDING_QUEUE",
    "REDIS_DOWN",
    "Current",
    "Moved",
    "NewLead",
    "current_of",
    "explanation",
    "pending_placement",
    "place",
    "record_decision",
    "record_new_lead",
]

PENDING_QUEUE = "pending"
"""Where a lead waits when it came in while the routing state (Redis) could not be reached."""
REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
"""What redis-py raises when Redis cannot be reached (the routing state is unavailable)."""

log = logging.getLogger(__name__)


def pending_placement() -> Assignment:
    """A lead that routing could not place because Redis was unreachable (routed later)."""
    return Assignment(
        owner=None,
        pool=None,
        queue=PENDING_QUEUE,
        reason="the routing state (Redis) could not be reached; the lead is routed as soon as it is back",
        skipped=[],
        pools_tried=[],
    )


Moved = Literal["assigned", "reassigned", "escalated"]
"""The state a lead placed with an owner gets; with no owner it is ``unassigned``."""


class Current(msgspec.Struct, frozen=True, kw_only=True):
    """A lead's current assignment, as :func:`place` needs it (None for a new lead)."""

    id: int
    owner_id: str | None
    pool_id: str | None
    status: str
    created_at: datetime
    rule: str | None = None


def current_of(row: Any) -> Current | None:
    """The :class:`Current` of a ``workflow_current`` row (None: the lead has none)."""
    if row is None:
        return None
    return Current(
        id=row["id"],
        owner_id=row["owner_id"],
        pool_id=row["pool_id"],
        status=row["status"],
        created_at=row["created_at"],
        rule=row["rule"],
    )


async def record_decision(
    ch: Change,
    *,
    lead_id: uuid.UUID,
    event_id: int,
    active: ActiveRuleset,
    evaluation: Evaluation,
    placed: Assignment | None,
    why: dict[str, Any],
    cause: Cause,
    previous: tuple[float, str] | None = None,
    kept: tuple[str | None, str | None] | None = None,
) -> int:
    """Store the decision ``event_id`` led to, and its ``lead.scored`` event; returns the decision id.

    ``placed`` is where routing put the lead in this decision; when routing did not run, ``kept``
    is the pool and owner the lead keeps. ``previous``: the score and stage before it.
    """
    ruleset = active.ruleset
    pool, owner = (placed.pool, placed.owner) if placed is not None else kept or (None, None)
    rule = placed.rule if placed is not None else None
    if placed is not None and rule is None:
        rule = evaluation.routing_rule
    decision_id: int = await ch.conn.fetchval(
        QUERIES["decision_insert"],
        lead_id,
        event_id,
        active.id,
        ruleset.version,
        ruleset.sha256,
        evaluation.score,
        msgspec.to_builtins(evaluation.groups),
        msgspec.to_builtins(evaluation.hits),
        evaluation.stage,
        evaluation.qualification_rule,
        rule,
        pool,
        owner,
        why,
    )
    await ch.emit(lead_id, "lead.scored", scored(active, evaluation, cause, decision_id, previous))
    return decision_id


def scored(
    active: ActiveRuleset,
    evaluation: Evaluation,
    cause: Cause,
    decision_id: int | None,
    previous: tuple[float, str] | None = None,
) -> LeadScored:
    """The ``lead.scored`` payload of a decision."""
    return LeadScored(
        cause=cause,
        score=evaluation.score,
        stage=evaluation.stage,
        groups={name: group.score for name, group in evaluation.groups.items()},
        matched=list(dict.fromkeys(hit.rule for hit in evaluation.hits)),
        ruleset_version=active.ruleset.version,
        ruleset_sha256=active.ruleset.sha256,
        qualification_rule=evaluation.qualification_rule,
        decision_id=decision_id,
        previous_score=previous[0] if previous is not None else None,
        previous_stage=previous[1] if previous is not None else None,
    )


def placement(
    placed: Assignment,
    *,
    cause: Cause,
    moved: Moved = "assigned",
    previous_owner: str | None = None,
    reason: str | None = None,
    escalate_to: str | None = None,
    note: str | None = None,
    due: datetime | None = None,
    ruleset_version: int | None = None,
) -> tuple[str, Placement]:
    """The placement event of ``placed``: its type and payload."""
    if placed.owner is None:
        event_type = "lead.queued"
    elif moved == "escalated":
        event_type = "lead.escalated"
    elif previous_owner is not None or cause in {"reassign", "sla_breach"}:
        event_type = "lead.reassigned"
    else:
        event_type = "lead.assigned"
    return event_type, Placement(
        cause=cause,
        owner=placed.owner,
        pool=placed.pool,
        queue=placed.queue,
        reason=placed.reason if placed.owner is None else reason,
        previous_owner=previous_owner,
        rule=placed.rule,
        strategy=placed.strategy,
        skipped=list(placed.skipped),
        pools_tried=list(placed.pools_tried),
        escalate_to=escalate_to,
        note=note,
        sla_due_at=due,
        ruleset_version=ruleset_version,
    )


def _count(ch: Change, placed: Assignment) -> None:
    """Count the placement in the metrics once the transaction committed."""
    if placed.owner is None:
        ch.after_commit(METRICS.queued.labels(placed.queue or "").inc)
    else:
        ch.after_commit(METRICS.assignments.labels(placed.pool or "", placed.owner).inc)


async def place(
    ch: Change,
    *,
    lead_id: uuid.UUID,
    current: Current | None,
    placed: Assignment,
    cause: Cause,
    moved: Moved = "assigned",
    decision_id: int | None = None,
    sla: Sla | None = None,
    sla_pool: str | None = None,
    breaches: int = 0,
    reason: str | None = None,
    escalate_to: str | None = None,
    note: str | None = None,
    ruleset_version: int | None = None,
    parked: bool = False,
    pending: bool = False,
) -> int:
    """Make ``placed`` the lead's current assignment, in ``ch``'s transaction; returns its id.

    ``current`` None: a new lead, whose row intake has just written with this placement. Else the
    current assignment ends (its running timer stops with resolution ``cause``, its owner's slot
    is freed after the commit) and the lead row points at the new owner or queue.

    The new owner's SLA timer starts when there is an SLA: ``sla`` (carried over from the lead's
    previous timer) or the placing rule's; ``sla_pool`` is the pool whose settings it follows
    when ``placed`` has none; ``breaches`` counts the lead's breaches so far. ``moved`` is the state
    of a lead placed with an owner (without one it is ``unassigned``); ``reason`` is the reason a
    person gave, ``escalate_to`` and ``note`` what an escalation tried.

    A lead queued with a pool waits for it: the queue drain offers it again when an owner of the
    pool can take it. ``parked``: it does not wait, a person moves it (the SLA ran out too often,
    or the escalation target could not take it). ``pending``: routing could not run (Redis was
    unreachable); the lead waits to be routed in arrival order.
    """
    status = moved if placed.owner is not None else "pending" if pending else "unassigned"
    waiting = placed.owner is None and (placed.pool is not None or pending) and not parked
    previous_owner: str | None = None
    if current is not None:
        await cancel_timers(ch.conn, lead_id, _resolution(cause), ch.now)
        await ch.conn.execute(QUERIES["routing_assignment_end"], current.id, ch.now)
        if current.owner_id is not None and current.status != "closed":
            previous_owner = current.owner_id
            ch.free(current.owner_id)
        await ch.conn.execute(
            QUERIES["workflow_lead_set"], lead_id, status, placed.owner, placed.pool, ch.now
        )
    assignment_id: int = await ch.conn.fetchval(
        QUERIES["workflow_assignment_insert"],
        lead_id,
        decision_id,
        placed.owner,
        placed.pool,
        status,
        placed.queue,
        placed.reason,
        ch.now,
        placed.seq,
        placed.rule,
        waiting,
    )
    terms = placed.sla or sla
    due = None
    if placed.owner is not None and terms is not None:
        timer = await start_timer(
            ch.conn,
            lead_id=lead_id,
            assignment_id=assignment_id,
            owner_id=placed.owner,
            pool_id=placed.pool or sla_pool,
            sla=terms,
            now=ch.now,
            breaches=breaches,
            config=ch.rt.routing.config,
            warn_before=ch.rt.settings.sla_warn_before_minutes,
        )
        due = timer["due_at"]
    _count(ch, placed)
    event_type, data = placement(
        placed,
        cause=cause,
        moved=moved,
        previous_owner=previous_owner,
        reason=reason,
        escalate_to=escalate_to,
        note=note,
        due=due,
        ruleset_version=ruleset_version,
    )
    await ch.emit(lead_id, event_type, data)
    return assignment_id


def _resolution(cause: Cause) -> str:
    """Why a running timer stopped when the lead moved (``sla_timers.resolution``)."""
    return {"sla_breach": "breached", "escalation": "breached", "reassign": "reassigned"}.get(
        cause, "rerouted"
    )


def explanation(evaluation: Evaluation, placed: Assignment | None) -> dict[str, Any]:
    """Everything ``explain`` needs of a decision, frozen when it is made (later rule edits cannot
    rewrite it). ``placed`` None: routing did not run in this decision."""
    why: dict[str, Any] = {
        "scoring": msgspec.to_builtins(evaluation.hits),
        "rule_errors": msgspec.to_builtins(evaluation.rule_errors),
        "groups": msgspec.to_builtins(evaluation.groups),
        "qualification": {"rule": evaluation.qualification_rule, "stage": evaluation.stage},
        "routing": {
            "tried": msgspec.to_builtins(evaluation.routes_tried),
            "rule": evaluation.routing_rule,
            "pool": evaluation.pool,
            "targets": msgspec.to_builtins(evaluation.targets),
        },
        "assignment": {},
    }
    if placed is not None:
        why["assignment"] = {
            "owner": placed.owner,
            "pool": placed.pool,
            "rule": placed.rule,
            "strategy": placed.strategy,
            "pools_tried": placed.pools_tried,
            "owners_skipped": msgspec.to_builtins(placed.skipped),
            "account": msgspec.to_builtins(placed.account),
            "queue": placed.queue,
            "reason": placed.reason,
        }
    return why


class NewLead(msgspec.Struct, frozen=True, kw_only=True):
    """A lead as intake stores it: its row's fields and how it came in."""

    id: uuid.UUID
    email: str | None
    company_domain: str | None
    phone_e164: str | None
    name_key: str | None
    """The values duplicates are matched on (:mod:`leadroute.intake.identity`)."""
    normalized: dict[str, Any]
    rescore_at: datetime | None
    received: LeadReceived
    occurred_at: datetime | None
    idempotency_key: str | None


async def record_new_lead(
    ch: Change,
    *,
    lead: NewLead,
    active: ActiveRuleset,
    evaluation: Evaluation,
    placed: Assignment,
    pending: bool,
    answer: dict[str, Any] | None,
    answer_keys: Sequence[str] | None = None,
) -> int:
    """Write a new lead with its decision and placement, in one statement; returns the decision id.

    What :func:`record_decision` and :func:`place` write for a lead (the same rows, the same
    ``lead.received``, ``lead.scored`` and placement events, built by the same functions), in one
    round trip instead of nine: intake is the hot path. ``answer`` is the response stored under
    ``answer_keys``, the request's idempotency keys claimed in this transaction (default: the
    lead's ``idempotency_key``); None: no key. The same statement records the company domain's
    account owner (what routing does itself for other steps), cached in Redis when written.
    """
    ruleset = active.ruleset
    status = "assigned" if placed.owner is not None else "pending" if pending else "unassigned"
    waiting = placed.owner is None and (placed.pool is not None or pending)
    timer: Due | None = None
    terms = placed.sla
    if placed.owner is not None and terms is not None:
        config = ch.rt.routing.config
        warn = ch.rt.settings.sla_warn_before_minutes
        timer = timer_due(config, placed.pool, placed.owner, terms, ch.now, warn_before=warn)
        if timer is None:  # a pool routing did not read through the configuration: cannot happen
            raise AssertionError(f"pool {placed.pool!r} is not in the routing configuration")
    event_type, data = placement(
        placed,
        cause="received",
        due=timer.due if timer is not None else None,
        ruleset_version=ruleset.version,
    )
    row = await ch.conn.fetchrow(
        QUERIES["intake_record"],
        lead.id,
        lead.email,
        lead.company_domain,
        evaluation.stage,
        evaluation.score,
        status,
        placed.owner,
        placed.pool,
        lead.normalized,
        lead.rescore_at,
        ch.now,
        lead.occurred_at,
        lead.idempotency_key,
        ch.actor,
        msgspec.to_builtins(lead.received),
        active.id,
        ruleset.version,
        ruleset.sha256,
        msgspec.to_builtins(evaluation.groups),
        msgspec.to_builtins(evaluation.hits),
        evaluation.qualification_rule,
        placed.rule if placed.rule is not None else evaluation.routing_rule,
        explanation(evaluation, placed),
        msgspec.to_builtins(scored(active, evaluation, "received", None)),
        status,
        placed.queue,
        placed.reason,
        placed.seq,
        placed.rule,
        waiting,
        timer is not None,
        terms.accept_within_minutes if terms is not None else None,
        terms.on_breach if terms is not None else None,
        timer.business if timer is not None else False,
        timer.due if timer is not None else None,
        placed.pool,
        event_type,
        msgspec.to_builtins(data),
        (list(answer_keys) if answer_keys is not None else [lead.idempotency_key])
        if answer is not None
        else [],
        answer,
        lead.phone_e164,
        lead.name_key,
        timer.warn if timer is not None else None,
    )
    assert row is not None
    if row["account_owner"] is not None and lead.company_domain is not None:
        try:  # the cache of account_owners in Redis (a miss reads PostgreSQL)
            await ch.rt.routing.state.set_account_owner(lead.company_domain, row["account_owner"])
        except REDIS_DOWN:
            log.warning("routing state unreachable: a new account owner is not cached in Redis")
    _count(ch, placed)
    decision_id: int = row["id"]
    return decision_id
