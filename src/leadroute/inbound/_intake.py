"""A mapped payload into the ordinary intake, idempotent on the sender's own event identity.

Each item a vendor sends (a HubSpot event, a Salesforce notification or record, a webhook
message) gets an idempotency key built from the identity the vendor gives it (see each route),
in the same namespace as ``Idempotency-Key`` (``lead``). Vendors retry by sending the same item
again, but what leadroute maps may differ between the two sends (HubSpot's contact is fetched
again, with newer properties), so for these keys *the key is the request*: a retry returns the
first decision, whatever the payload says now (the body fingerprint is the key's).
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from typing import Any, Literal

import msgspec

from leadroute.errors import IdempotencyConflict, InvalidLead, NotFound
from leadroute.inbound._format import Mapping
from leadroute.inbound._outcomes import LeadKey
from leadroute.runtime import Runtime
from leadroute.store.queries import QUERIES
from leadroute.workflow.intake import IntakeResult, prepare_lead, record_lead
from leadroute.workflow.outcomes import InvalidOutcome, parse_outcome, record_outcome
from leadroute.workflow.runner import Change, run_grouped

__all__ = ["ItemResult", "submit_mapped", "take", "take_outcome"]

log = logging.getLogger(__name__)
_encode = msgspec.json.encode


class ItemResult(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What became of one item of an inbound request."""

    item: str
    """The vendor's id of the item (HubSpot eventId, Salesforce notification or record Id, ...)."""
    status: Literal["created", "merged", "recorded", "replayed", "refused", "skipped"]
    """``recorded``: an outcome (``outcome``) was recorded for the lead ``lead_id``."""
    lead_id: str | None = None
    decision_status: str | None = None
    outcome: str | None = None
    errors: list[dict[str, str]] | None = None
    reason: str | None = None


async def submit_mapped(
    rt: Runtime, body: dict[str, Any], *, key: str | None, vendor_key: bool, actor: str
) -> IntakeResult:
    """One mapped lead body through intake. ``vendor_key``: ``key`` is a vendor's event identity
    (a retry is the same request whatever its payload); otherwise a client's ``Idempotency-Key``
    (a retry must send the same body). Raises InvalidLead."""
    encoded = _encode(body)
    prepared = prepare_lead(rt, encoded, key)
    if key is not None and vendor_key:
        prepared = msgspec.structs.replace(prepared, body_print=hashlib.sha256(key.encode()).hexdigest())

    async def step(ch: Change) -> IntakeResult:
        return await record_lead(ch, rt, prepared)

    return await run_grouped(rt, step, actor=actor)


async def take(
    rt: Runtime, item: str, body: dict[str, Any], *, key: str, actor: str, route: str
) -> ItemResult:
    """:func:`submit_mapped` for one item of a vendor's batch: a lead the intake refuses is that
    item's result (named fields, no values: they are personal data), not the batch's failure."""
    try:
        result = await submit_mapped(rt, body, key=key, vendor_key=True, actor=actor)
    except InvalidLead as exc:
        fields = [{"field": e.field, "message": e.message} for e in exc.errors]
        log.warning("%s item %s refused at intake: %s", route, item, ", ".join(e["field"] for e in fields))
        return ItemResult(item=item, status="refused", errors=fields)
    decision = result.decision
    return ItemResult(
        item=item,
        status=("merged" if decision.merged else "created") if result.created else "replayed",
        lead_id=decision.lead_id,
        decision_status=decision.status,
    )


async def _find_lead(rt: Runtime, keys: list[LeadKey]) -> uuid.UUID | None:
    async with rt.db.acquire() as conn:
        for key in keys:
            if key.kind == "attribute":
                found = await conn.fetchval(QUERIES["inbound_lead_by_attribute"], key.attribute, key.value)
            else:
                found = await conn.fetchval(QUERIES["inbound_lead_by_email"], key.value)
            if found is not None:
                return found  # type: ignore[no-any-return]
    return None


async def take_outcome(
    rt: Runtime, mapping: Mapping, item: str, record: dict[str, Any], *, key: str, actor: str, route: str
) -> ItemResult | None:
    """The record as an outcome of its lead, when the mapping's ``outcomes:`` rules say it is one
    (None: it is not, take it as a lead). Idempotent on ``key`` (the vendor's event identity):
    a retry is ``replayed``. A record whose lead leadroute does not know, or whose outcome is
    refused, is that item's ``skipped``/``refused`` result: the vendor must not retry it."""
    outcomes = mapping.outcomes
    found = outcomes.match(record) if outcomes is not None else None
    if outcomes is None or found is None:
        return None
    if found.body is None:
        return ItemResult(
            item=item, status="skipped", reason=f"not an outcome (outcomes rule {found.rule + 1})"
        )
    keys = outcomes.lead_keys(record)
    lead_id = await _find_lead(rt, keys)
    if lead_id is None:
        tried = ", ".join(sorted({k.attribute or k.kind for k in keys})) or "nothing to look it up by"
        log.info(
            "%s item %s: %s outcome for a lead leadroute does not know", route, item, found.body["outcome"]
        )
        return ItemResult(item=item, status="skipped", reason=f"no lead matches the record (by {tried})")
    return await _record(rt, lead_id, found.body, item=item, key=key, actor=actor, route=route)


async def _record(
    rt: Runtime, lead_id: uuid.UUID, body: dict[str, Any], *, item: str, key: str, actor: str, route: str
) -> ItemResult:
    """Record one outcome body for the lead; a refusal is the item's result, not an error."""
    try:
        outcome = parse_outcome(_encode(body))
        result = await record_outcome(rt, lead_id, outcome, actor, idempotency_key=key)
    except InvalidOutcome as exc:
        log.warning("%s item %s outcome refused: %s", route, item, ", ".join(e["field"] for e in exc.errors))
        return ItemResult(item=item, status="refused", lead_id=str(lead_id), errors=exc.errors)
    except NotFound:  # deleted between the look-up and the write
        return ItemResult(item=item, status="skipped", reason="the lead no longer exists")
    except IdempotencyConflict:  # the event was recorded before, for another lead (found again now)
        return ItemResult(
            item=item, status="skipped", reason="this event was recorded before for another lead"
        )
    return ItemResult(
        item=item,
        status="recorded" if result.created else "replayed",
        lead_id=str(lead_id),
        outcome=result.answer.outcome,
    )
