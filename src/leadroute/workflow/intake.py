"""A lead event in, a decision out: parse, normalize, score, qualify, route, record.

The pure steps run first, outside any transaction. Then one PostgreSQL transaction claims the
idempotency key, picks the owner (Redis, atomically), and writes the lead, its event, its decision
and its assignment; the response is stored with the key, so a retry gets the same answer.

Concurrent retries of one key: the second ``INSERT ... ON CONFLICT DO NOTHING`` on the key waits
for the first transaction, then finds the row and reads the stored response. If the first rolled
back, the second claims the key and does the work itself. Either way exactly one lead exists.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import msgspec

from leadroute.errors import IdempotencyConflict
from leadroute.intake import normalize, parse_lead
from leadroute.models import Decision, NormalizedLead
from leadroute.routing.assign import Assignment, assign
from leadroute.runtime import ActiveRuleset, Runtime
from leadroute.scoring import Evaluation, evaluate
from leadroute.store.db import Connection
from leadroute.store.queries import QUERIES

__all__ = ["IntakeResult", "explanation", "fingerprint", "submit_lead"]

SCOPE = "lead"
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

    async with rt.db.acquire() as conn, conn.transaction():
        if (
            key is not None
            and await conn.fetchval(QUERIES["idempotency_claim"], SCOPE, key, body_print) is None
        ):
            return await _replay(conn, key, body_print)
        placed = await assign(conn, rt.routing, evaluation.pool, fallback=evaluation.fallback)
        decision = await _record(
            conn,
            active=active,
            lead=lead,
            occurred_at=lead_in.occurred_at,
            body=body,
            key=key,
            evaluation=evaluation,
            placed=placed,
        )
        if key is not None:
            await conn.execute(
                QUERIES["idempotency_complete"],
                SCOPE,
                key,
                uuid.UUID(decision.lead_id),
                msgspec.to_builtins(decision),
            )
    return IntakeResult(msgspec.to_builtins(decision), created=True)


async def _replay(conn: Connection, key: str, body_print: str) -> IntakeResult:
    row = await conn.fetchrow(QUERIES["idempotency_get"], SCOPE, key)
    assert row is not None  # the claim conflicted, so the row exists and is committed
    if row["fingerprint"] != body_print:
        raise IdempotencyConflict(key)
    return IntakeResult(row["response"], created=False)


async def _record(
    conn: Connection,
    *,
    active: ActiveRuleset,
    lead: NormalizedLead,
    occurred_at: Any,
    body: bytes,
    key: str | None,
    evaluation: Evaluation,
    placed: Assignment,
) -> Decision:
    ruleset = active.ruleset
    lead_id = uuid.uuid4()
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
        routing_rule=evaluation.routing_rule,
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
        evaluation.routing_rule,
        placed.pool,
        placed.owner,
        explanation(evaluation, placed),
    )
    await conn.execute(
        QUERIES["assignment_insert"],
        lead_id,
        decision_id,
        placed.owner,
        placed.pool,
        decision.status,
        placed.queue,
        placed.reason,
    )
    return decision


def explanation(evaluation: Evaluation, placed: Assignment) -> dict[str, Any]:
    """Everything ``explain`` needs, frozen at decision time (later rule edits cannot rewrite it)."""
    return {
        "scoring": msgspec.to_builtins(evaluation.hits),
        "rule_errors": msgspec.to_builtins(evaluation.rule_errors),
        "groups": msgspec.to_builtins(evaluation.groups),
        "qualification": {"rule": evaluation.qualification_rule, "stage": evaluation.stage},
        "routing": {
            "tried": msgspec.to_builtins(evaluation.routes_tried),
            "rule": evaluation.routing_rule,
            "pool": evaluation.pool,
        },
        "assignment": {
            "owner": placed.owner,
            "pool": placed.pool,
            "pools_tried": placed.pools_tried,
            "owners_skipped": msgspec.to_builtins(placed.skipped),
            "queue": placed.queue,
            "reason": placed.reason,
        },
    }
