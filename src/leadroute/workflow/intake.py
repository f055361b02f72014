"""A lead event in, a decision out: parse, normalize, score, qualify, route, record.

The pure steps run first, outside any transaction. Then one PostgreSQL transaction claims the
idempotency key, picks the owner (Redis, atomically), and writes the lead, its event, its decision
and its assignment; the response is stored with the key, so a retry gets the same answer.

Routing claims capacity in Redis before the transaction commits. If Redis lost its state between
the check and the claim (``RoutingStateLost``), the transaction rolls back and the whole request is
tried again (the router rebuilds first); if anything fails after a claim, the claim is released.

Concurrent retries of one key: the second ``INSERT ... ON CONFLICT DO NOTHING`` on the key waits
for the first transaction, then finds the row and reads the stored response. If the first rolled
back, the second claims the key and does the work itself. Either way exactly one lead exists.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Any

import msgspec

from leadroute.errors import IdempotencyConflict
from leadroute.intake import normalize, parse_lead
from leadroute.models import Decision, LeadIn, NormalizedLead
from leadroute.routing import Assignment, Release, RoutingStateLost
from leadroute.runtime import ActiveRuleset, Runtime
from leadroute.scoring import Evaluation, evaluate
from leadroute.store.db import Connection
from leadroute.store.queries import QUERIES
from leadroute.workflow.sla import on_assigned

__all__ = ["IntakeResult", "explanation", "fingerprint", "record_assignment", "submit_lead"]

SCOPE = "lead"
STATE_LOST_RETRIES = 3
"""Tries of one request when Redis loses its routing state mid-request (each rebuilds first)."""
_canonical = msgspec.json.Encoder(order="sorted").encode
_any_json = msgspec.json.Decoder().decode


class IntakeResult(msgspec.Struct, frozen=True):
    """The decision, and whether this request created it (False: a retry's stored answer)."""

    decision: dict[str, Any]
    created: bool


def fingerprint(body: bytes) -> str:
    """sha256 of the body's canonical JSON, so a retry that reorders keys is still the same request."""
    return hashlib.sha256(_canonical(_any_json(body))).hexdigest()


async def submit_lead(rt: Runtime, body: bytes, idempotency_key: str | None) -> IntakeResult:
    """Run one lead event through the workflow; raises InvalidLead or IdempotencyConflict."""
    lead_in = parse_lead(body)
    key = idempotency_key or lead_in.event_id
    lead = normalize(lead_in)
    active = rt.rules  # one reference: the whole request sees one ruleset
    evaluation = evaluate(active.ruleset, lead)
    body_print = fingerprint(body) if key else ""

    for attempt in range(STATE_LOST_RETRIES):
        try:
            return await _decide(
                rt,
                lead_in=lead_in,
                lead=lead,
                key=key,
                body=body,
                body_print=body_print,
                active=active,
                evaluation=evaluation,
            )
        except RoutingStateLost:
            if attempt == STATE_LOST_RETRIES - 1:
                raise
    raise AssertionError("unreachable")


async def _decide(
    rt: Runtime,
    *,
    lead_in: LeadIn,
    lead: NormalizedLead,
    key: str | None,
    body: bytes,
    body_print: str,
    active: ActiveRuleset,
    evaluation: Evaluation,
) -> IntakeResult:
    lead_id = uuid.uuid4()
    placed: Assignment | None = None
    try:
        async with rt.db.acquire() as conn, conn.transaction():
            if (
                key is not None
                and await conn.fetchval(QUERIES["idempotency_claim"], SCOPE, key, body_print) is None
            ):
                return await _replay(conn, key, body_print)
            now = rt.clock()
            placed = await rt.routing.assign(
                conn,
                lead_id=lead_id,
                company_domain=lead.company_domain,
                targets=evaluation.targets,
                fallback=evaluation.fallback,
                now=now,
            )
            decision = await _record(
                rt,
                conn,
                lead_id=lead_id,
                active=active,
                lead=lead,
                occurred_at=lead_in.occurred_at,
                body=body,
                key=key,
                evaluation=evaluation,
                placed=placed,
                now=now,
            )
            if key is not None:
                await conn.execute(
                    QUERIES["idempotency_complete"],
                    SCOPE,
                    key,
                    lead_id,
                    msgspec.to_builtins(decision),
                )
    except BaseException:
        if placed is not None:  # rolled back: give the slot back (unless a rebuild recounted)
            await rt.routing.unclaim(placed)
        raise
    return IntakeResult(msgspec.to_builtins(decision), created=True)


async def _replay(conn: Connection, key: str, body_print: str) -> IntakeResult:
    row = await conn.fetchrow(QUERIES["idempotency_get"], SCOPE, key)
    assert row is not None  # the claim conflicted, so the row exists and is committed
    if row["fingerprint"] != body_print:
        raise IdempotencyConflict(key)
    return IntakeResult(row["response"], created=False)


async def _record(
    rt: Runtime,
    conn: Connection,
    *,
    lead_id: uuid.UUID,
    active: ActiveRuleset,
    lead: NormalizedLead,
    occurred_at: Any,
    body: bytes,
    key: str | None,
    evaluation: Evaluation,
    placed: Assignment,
    now: datetime,
) -> Decision:
    ruleset = active.ruleset
    decision = Decision(
        lead_id=str(lead_id),
        score=evaluation.score,
        groups={name: group.score for name, group in evaluation.groups.items()},
        stage=evaluation.stage,
        matched=list(evaluation.hits),
        pool=placed.pool,
        owner=placed.owner,
        status=placed.status,
        reason=placed.reason,
        routing_rule=placed.rule if placed.rule is not None else evaluation.routing_rule,
        ruleset_version=ruleset.version,
        ruleset_sha256=ruleset.sha256,
    )
    await conn.execute(
        QUERIES["lead_insert"],
        lead_id,
        lead.email,
        lead.company_domain,
        decision.stage,
        decision.score,
        decision.status,
        placed.owner,
        placed.pool,
        msgspec.to_builtins(lead),
    )
    event_id = await conn.fetchval(
        QUERIES["event_insert"], lead_id, "lead.received", key, occurred_at, _any_json(body)
    )
    decision_id = await conn.fetchval(
        QUERIES["decision_insert"],
        lead_id,
        event_id,
        active.id,
        ruleset.version,
        ruleset.sha256,
        decision.score,
        msgspec.to_builtins(evaluation.groups),
        msgspec.to_builtins(decision.matched),
        decision.stage,
        evaluation.qualification_rule,
        decision.routing_rule,
        placed.pool,
        placed.owner,
        explanation(evaluation, placed),
    )
    await record_assignment(rt, conn, lead_id=lead_id, decision_id=decision_id, placed=placed, now=now)
    return decision


async def record_assignment(
    rt: Runtime,
    conn: Connection,
    *,
    lead_id: uuid.UUID,
    decision_id: int | None,
    placed: Assignment,
    now: datetime,
    replace: bool = False,
    breaches: int = 0,
) -> Release | None:
    """Write ``placed`` as the lead's current assignment, in the caller's transaction.

    ``replace=True`` (a lead that already exists): end the current assignment first, prepare
    freeing its owner's open slot (``Router.prepare_release``: the returned :class:`Release`,
    which the caller passes to ``Router.release`` once the transaction committed), and point the
    lead row at the new owner or queue. A new lead's row already names its owner, so intake
    passes ``replace=False``. ``breaches``: the lead's SLA breaches so far, carried to the new timer.
    """
    freed: Release | None = None
    if replace:
        current = await conn.fetchrow(QUERIES["routing_assignment_current"], lead_id)
        if current is not None:
            await conn.execute(QUERIES["routing_assignment_end"], current["id"], now)
            if current["owner_id"] is not None:
                freed = await rt.routing.prepare_release(conn, owner_id=current["owner_id"])
        await conn.execute(
            QUERIES["routing_lead_placed"], lead_id, placed.owner, placed.pool, placed.status, now
        )
    assignment_id = await conn.fetchval(
        QUERIES["routing_assignment_insert"],
        lead_id,
        decision_id,
        placed.owner,
        placed.pool,
        placed.status,
        placed.queue,
        placed.reason,
        now,
        placed.seq,
        placed.rule,
    )
    # the routing target's SLA starts now, in this transaction (package E: workflow/sla.py)
    await on_assigned(
        conn,
        lead_id=lead_id,
        assignment_id=assignment_id,
        placed=placed,
        now=now,
        replace=replace,
        breaches=breaches,
    )
    return freed


def explanation(evaluation: Evaluation, placed: Assignment | None) -> dict[str, Any]:
    """Everything ``explain`` needs, frozen at decision time (later rule edits cannot rewrite it).

    ``placed`` None: routing did not run (the caller fills in ``assignment``).
    """
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
