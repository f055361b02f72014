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
from typing import Any, Literal

import msgspec

from leadroute.errors import InvalidLead
from leadroute.runtime import Runtime
from leadroute.workflow.intake import IntakeResult, prepare_lead, record_lead
from leadroute.workflow.runner import Change, run

__all__ = ["ItemResult", "submit_mapped", "take"]

log = logging.getLogger(__name__)
_encode = msgspec.json.encode


class ItemResult(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What became of one item of an inbound request."""

    item: str
    """The vendor's id of the item (HubSpot eventId, Salesforce notification or record Id, ...)."""
    status: Literal["created", "merged", "replayed", "refused", "skipped"]
    lead_id: str | None = None
    decision_status: str | None = None
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

    return await run(rt, step, actor=actor)


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
