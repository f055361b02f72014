"""An activity event in, a rescored lead out: record it, rescore with decay, requalify, maybe route.

One step of the runner per event: claim the idempotency keys (scope ``event``; the header and
``event_id`` together, as for leads: :class:`~leadroute.workflow.intake.RequestKeys`), lock the lead row
(so two events of one lead apply one after the other and each sees the other's activity), append
``activity.recorded`` with the points its rules gave, then requalify the lead from its stored
input and all its activities (:func:`leadroute.workflow.rescore.requalify`).

An event by ``email`` goes to the person's lead as intake would merge into it (the live one, with
an owner, the oldest: ``lead_lock_by_email``); the lock also notes that the person was heard from,
which moves the re-engagement window (docs/intake.md).
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from leadroute.errors import NotFound
from leadroute.intake import ActivityEventIn, InvalidEvent, normalize_email, parse_event
from leadroute.intake.errors import FieldError
from leadroute.intake.events import declared_properties, typed_properties
from leadroute.models import Activity, NormalizedLead
from leadroute.runtime import Runtime
from leadroute.scoring import evaluate
from leadroute.store.queries import QUERIES
from leadroute.workflow.intake import RequestKeys, fingerprint, replayed
from leadroute.workflow.log import ActivityRecorded
from leadroute.workflow.rescore import activities, requalify
from leadroute.workflow.runner import Change, run

__all__ = ["EventResult", "record_event"]

SCOPE = "event"


class EventResult(msgspec.Struct, frozen=True):
    """The answer to an event, and whether this request created it (False: a retry's stored answer)."""

    response: dict[str, Any]
    created: bool


async def record_event(
    rt: Runtime, body: bytes, idempotency_key: str | None, *, actor: str = "api"
) -> EventResult:
    """Store one activity event, rescore its lead and route it if its stage rose while unowned.

    With both ``lead_id`` and ``email``, the email must be that lead's (compared normalized).

    Raises InvalidEvent (bad body, or an email that is not lead_id's lead's), NotFound (no such
    lead) or IdempotencyConflict; in each case nothing is written and the key stays unused.
    """
    declared = declared_properties(rt.rules.ruleset.fields)
    # occurred_at at most a day ahead of the clock; declared properties of their declared type
    event = parse_event(body, now=rt.clock(), declared=declared)
    email = normalize_email(event.email)[0] if event.email is not None else None  # checked: valid
    keys = RequestKeys(header=idempotency_key, event_id=event.event_id)  # one namespace, header wins
    key = keys.primary
    body_print = fingerprint(body) if key else ""

    async def step(ch: Change) -> EventResult:
        stored = await replayed(ch.conn, SCOPE, keys, body_print)
        if stored is not None:
            return EventResult(stored.response, created=False)
        row = await _lock(ch, event, email)
        lead_id: uuid.UUID = row["id"]
        active = ch.rt.rules  # one reference: the whole step sees one ruleset
        properties = typed_properties(event.properties, declared_properties(active.ruleset.fields))
        new = Activity(type=event.type, occurred_at=event.occurred_at, properties=properties)
        lead = msgspec.convert(row["normalized"], NormalizedLead)
        evaluation = evaluate(
            active.ruleset, lead, activities=[*await activities(ch, lead_id, active.ruleset), new], now=ch.now
        )
        event_id = await ch.emit(
            lead_id,
            "activity.recorded",
            ActivityRecorded(
                activity=event.type,
                properties=event.properties,
                points=[
                    hit
                    for hit in evaluation.hits
                    if hit.activity == new.type and hit.occurred_at == new.occurred_at
                ],
            ),
            occurred_at=event.occurred_at,
            idempotency_key=key,
        )
        done = await requalify(
            ch, row=row, active=active, evaluation=evaluation, cause="activity", event_id=event_id
        )
        placed = done.placed
        routed = placed is not None and placed.owner is not None
        response = {
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
        if key is not None:
            await ch.conn.execute(QUERIES["idempotency_complete"], SCOPE, keys.all(), lead_id, response)
        return EventResult(response, created=True)

    return await run(rt, step, actor=actor)


async def _lock(ch: Change, event: ActivityEventIn, email: str | None) -> Any:
    """The event's lead, locked until the transaction ends; NotFound or InvalidEvent otherwise."""
    if event.lead_id is not None:
        row = await ch.conn.fetchrow(QUERIES["lead_lock"], event.lead_id, ch.now)
        if row is None:
            raise NotFound("lead", str(event.lead_id))
    else:
        window = ch.rt.settings.reengage_after
        row = await ch.conn.fetchrow(
            QUERIES["lead_lock_by_email"], email, ch.now, ch.now - window if window is not None else None
        )
        if row is None:
            raise NotFound(
                "lead",
                "email",
                # the address is not echoed: responses pass through proxies that log them
                detail="no lead has that email; post the lead first (POST /v1/leads)",
                errors=[{"field": "email", "message": "no lead has this email"}],
            )
    if event.lead_id is not None and email is not None and row["email"] != email:  # two leads
        raise InvalidEvent(
            [
                FieldError(
                    "email",
                    "is not the email of the lead named by lead_id; "
                    "give the lead's own email, or only one of lead_id and email",
                )
            ]
        )
    return row
