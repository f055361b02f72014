"""An activity event in, a rescored lead out: store, rescore with decay, requalify, maybe route.

One PostgreSQL transaction per event: claim the idempotency key (scope ``event``), lock the lead
row (so two events of one lead apply one after the other and each sees the other's activity),
store the event, rescore the lead from its stored input and *all* its activities at the clock's
"now" (so engagement decays by each activity's age), record the decision, and update the lead.

Routing on a stage rise: when the new stage ranks above the old one and the lead has no owner
(it sits in a queue because no routing rule took it at its old stage), the lead is routed now
with the new evaluation's targets, and its history says so. A lead that already has an owner
keeps it: a score change alone never takes a lead away from a rep. A closed lead is rescored
but never reopened.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from leadroute.errors import IdempotencyConflict, NotFound
from leadroute.intake import ActivityEventIn, InvalidEvent, normalize_email, parse_event
from leadroute.intake.errors import FieldError
from leadroute.models import Activity, NormalizedLead, stage_rank
from leadroute.routing import Assignment, Release, RoutingStateLost
from leadroute.runtime import Runtime
from leadroute.scoring import Evaluation, evaluate
from leadroute.store.db import Connection
from leadroute.store.queries import QUERIES
from leadroute.workflow.intake import STATE_LOST_RETRIES, explanation, fingerprint, record_assignment

__all__ = ["EventResult", "record_event"]

SCOPE = "event"


class EventResult(msgspec.Struct, frozen=True):
    """The answer to an event, and whether this request created it (False: a retry's stored answer)."""

    response: dict[str, Any]
    created: bool


async def record_event(rt: Runtime, body: bytes, idempotency_key: str | None) -> EventResult:
    """Store one activity event, rescore its lead and route it if its stage rose while unowned.

    With both ``lead_id`` and ``email``, the email must be that lead's (compared normalized).

    Raises InvalidEvent (bad body, or an email that is not lead_id's lead's), NotFound (no such
    lead) or IdempotencyConflict; in each case nothing is written and the key stays unused.
    """
    event = parse_event(body, now=rt.clock())  # occurred_at at most a day ahead of the clock
    email = None
    if event.email is not None:
        try:
            email, _ = normalize_email(event.email)
        except ValueError as exc:
            raise InvalidEvent([FieldError("email", str(exc))]) from None
    key = idempotency_key or event.event_id
    body_print = fingerprint(body) if key else ""
    for attempt in range(STATE_LOST_RETRIES):
        try:
            return await _apply(rt, event, email, key, body_print)
        except RoutingStateLost:  # Redis lost its state mid-claim: it was rebuilt, try again
            if attempt == STATE_LOST_RETRIES - 1:
                raise
    raise AssertionError("unreachable")


async def _apply(
    rt: Runtime, event: ActivityEventIn, email: str | None, key: str | None, body_print: str
) -> EventResult:
    active = rt.rules  # one reference: the whole request sees one ruleset
    ruleset = active.ruleset
    placed: Assignment | None = None
    freed: Release | None = None
    try:
        async with rt.db.acquire() as conn, conn.transaction():
            if (
                key is not None
                and await conn.fetchval(QUERIES["idempotency_claim"], SCOPE, key, body_print) is None
            ):
                return await _replay(conn, key, body_print)
            if event.lead_id is not None:
                row = await conn.fetchrow(QUERIES["lead_lock"], event.lead_id)
                missing = NotFound("lead", str(event.lead_id))
            else:
                row = await conn.fetchrow(QUERIES["lead_lock_by_email"], email)
                missing = NotFound(
                    "lead",
                    "email",
                    # the address is not echoed: responses pass through proxies that log them
                    detail="no lead has that email; post the lead first (POST /v1/leads)",
                    errors=[{"field": "email", "message": "no lead has this email"}],
                )
            if row is None:
                raise missing
            if email is not None and row["email"] != email:  # lead_id and email name two leads
                raise InvalidEvent(
                    [
                        FieldError(
                            "email",
                            "is not the email of the lead named by lead_id; "
                            "give the lead's own email, or only one of lead_id and email",
                        )
                    ]
                )
            lead_id: uuid.UUID = row["id"]
            event_id = await conn.fetchval(
                QUERIES["event_insert"],
                lead_id,
                "activity",
                key,
                event.occurred_at,
                {"type": event.type, "properties": event.properties},
            )
            activities = [
                Activity(
                    type=a["payload"]["type"],
                    occurred_at=a["occurred_at"],
                    properties=a["payload"]["properties"],
                )
                for a in await conn.fetch(QUERIES["lead_activities"], lead_id)
            ]
            lead = msgspec.convert(row["normalized"], NormalizedLead)
            now = rt.clock()
            evaluation = evaluate(ruleset, lead, activities=activities, now=now)

            rose = stage_rank(evaluation.stage) > stage_rank(row["stage"])
            breaches = 0
            if rose and row["owner_id"] is None and row["status"] != "closed":
                # a lead parked by its SLA (breached, or over the limit) is never routed back to an
                # owner who let it run out, and its breach count carries over: it cannot loop
                breached = await conn.fetch(QUERIES["sla_breached_owners"], lead_id)
                latest = await conn.fetchrow(QUERIES["sla_lead_latest"], lead_id)
                if latest is not None:
                    breaches = latest["breaches"] + (1 if latest["status"] == "fired" else 0)
                placed = await rt.routing.assign(
                    conn,
                    lead_id=lead_id,
                    company_domain=lead.company_domain,
                    targets=evaluation.targets,
                    fallback=evaluation.fallback,
                    now=now,
                    exclude={r["owner_id"] for r in breached},
                )
            decision_id = await conn.fetchval(
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
                placed.rule if placed is not None else None,
                placed.pool if placed is not None else row["pool_id"],
                placed.owner if placed is not None else row["owner_id"],
                _explanation(evaluation, placed, row),
            )
            await conn.execute(QUERIES["lead_rescored"], lead_id, evaluation.score, evaluation.stage)
            if placed is not None and placed.owner is not None:
                freed = await record_assignment(
                    rt,
                    conn,
                    lead_id=lead_id,
                    decision_id=decision_id,
                    placed=placed,
                    now=now,
                    replace=True,
                    breaches=breaches,
                )
                await conn.execute(
                    QUERIES["event_insert"],
                    lead_id,
                    "lead.routed",
                    None,
                    now,
                    {
                        "reason": f"stage rose from {row['stage']} to {evaluation.stage}",
                        "owner": placed.owner,
                    },
                )
            response = _response(lead_id, event_id, row, evaluation, placed)
            if key is not None:
                await conn.execute(QUERIES["idempotency_complete"], SCOPE, key, lead_id, response)
    except BaseException:
        if placed is not None:  # rolled back: give the slot back (unless a rebuild recounted)
            await rt.routing.unclaim(placed)
        raise
    if freed is not None:  # committed: only now free the previous owner's slot
        await rt.routing.release([freed])
    return EventResult(response, created=True)


async def _replay(conn: Connection, key: str, body_print: str) -> EventResult:
    row = await conn.fetchrow(QUERIES["idempotency_get"], SCOPE, key)
    assert row is not None  # the claim conflicted, so the row exists and is committed
    if row["fingerprint"] != body_print:
        raise IdempotencyConflict(key)
    return EventResult(row["response"], created=False)


def _explanation(evaluation: Evaluation, placed: Assignment | None, row: Any) -> dict[str, Any]:
    why = explanation(evaluation, placed)
    if placed is None:
        why["assignment"] = {
            "owner": row["owner_id"],
            "pool": row["pool_id"],
            "rule": None,
            "strategy": None,
            "pools_tried": [],
            "owners_skipped": [],
            "queue": None if row["owner_id"] is not None else row["pool_id"],
            "unchanged": True,
            "reason": (
                "the lead keeps its owner: a score change does not reassign"
                if row["owner_id"] is not None
                else "the lead is closed: events rescore it but never reopen it"
                if row["status"] == "closed"
                else "the stage did not rise, so the lead was not routed again"
            ),
        }
    return why


def _response(
    lead_id: uuid.UUID, event_id: int, row: Any, evaluation: Evaluation, placed: Assignment | None
) -> dict[str, Any]:
    routed = placed is not None and placed.owner is not None
    return {
        "lead_id": str(lead_id),
        "event_id": event_id,
        "score": evaluation.score,
        "previous_score": row["score"],
        "groups": {name: group.score for name, group in evaluation.groups.items()},
        "stage": evaluation.stage,
        "previous_stage": row["stage"],
        "matched": msgspec.to_builtins(evaluation.hits),
        "routed": routed,
        "owner": placed.owner if routed and placed is not None else row["owner_id"],
        "pool": placed.pool if routed and placed is not None else row["pool_id"],
        "ruleset_version": evaluation.ruleset_version,
        "ruleset_sha256": evaluation.ruleset_sha256,
    }
