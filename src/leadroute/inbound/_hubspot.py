"""HubSpot webhook events to leads.

HubSpot posts a JSON array of up to 100 events (developers.hubspot.com, "Webhooks API"), e.g.
``{"eventId": 1, "subscriptionId": 12345, "portalId": 62515, "occurredAt": 1564113600000,
"subscriptionType": "contact.creation", "attemptNumber": 0, "objectId": 123, ...}``; a
``contact.propertyChange`` adds ``propertyName`` and ``propertyValue``. An event names the
contact, it does not carry it: leadroute reads the contact from the CRM API
(``GET /crm/v3/objects/contacts/{objectId}?properties=<the ones the mapping reads>`` with the
private-app token of ``LEADROUTE_HUBSPOT_TOKEN``), once per contact per request, and maps it
with ``{"event": <the event>}`` added.

- ``contact.creation`` and ``contact.propertyChange`` of a property the mapping reads become a
  lead intake each; other events (other objects, other properties) are skipped.
- Idempotency key: ``hubspot:<portalId>:<objectId>:<occurredAt>``: a retry of the same event, and
  the creation and initial property events HubSpot sends for one change, are one intake.
- An event the mapping's ``outcomes:`` rules name (``lifecyclestage`` becoming ``customer``) is
  an outcome of the lead whose ``hubspot_contact_id`` is its ``objectId``, recorded once per
  ``eventId`` (key ``hubspot:<portalId>:<eventId>``); no contact is read for it.
- A contact that no longer exists (404) is skipped. A failure of the CRM API (network, 429, 5xx)
  fails the whole request with 503: HubSpot retries it, and the events already taken answer
  their first decision again.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import httpx
import msgspec

from leadroute.errors import MalformedBody, UpstreamUnavailable
from leadroute.inbound._format import Mapping
from leadroute.inbound._intake import ItemResult, take, take_outcome
from leadroute.runtime import Runtime

__all__ = ["CONTACT_EVENTS", "CrmUnavailable", "HubSpotEvent", "contact_properties", "handle_events"]

CONTACT_EVENTS = frozenset({"contact.creation", "contact.propertyChange"})
MAX_EVENTS = 100
_FETCH_CONCURRENCY = 8


class CrmUnavailable(UpstreamUnavailable):
    """The CRM API could not be read now (network, 429, 5xx): the sender should retry (503)."""


class HubSpotEvent(msgspec.Struct, kw_only=True):
    """The fields of a webhook event leadroute reads (others are kept in ``event`` for the mapping)."""

    eventId: int | str  # noqa: N815 - HubSpot's names
    portalId: int | str  # noqa: N815
    objectId: int | str  # noqa: N815
    occurredAt: int  # noqa: N815
    subscriptionType: str  # noqa: N815
    propertyName: str | None = None  # noqa: N815


def contact_properties(mapping: Mapping) -> list[str]:
    """The contact properties a mapping reads (its ``properties.<name>`` paths), sorted."""
    return sorted({path[1] for path in mapping.paths() if len(path) >= 2 and path[0] == "properties"})


def _events(body: bytes) -> list[tuple[HubSpotEvent, dict[str, Any]]]:
    try:
        raw = msgspec.json.decode(body)
    except msgspec.DecodeError:
        raise MalformedBody("body must be a JSON array of HubSpot events") from None
    if not isinstance(raw, list) or len(raw) > MAX_EVENTS:
        raise MalformedBody(f"body must be a JSON array of at most {MAX_EVENTS} HubSpot events")
    events = []
    for i, item in enumerate(raw):
        try:
            events.append((msgspec.convert(item, HubSpotEvent), item))
        except msgspec.ValidationError as exc:
            raise MalformedBody(f"event {i}: {exc}") from None
    return events


async def _contact(
    client: httpx.AsyncClient, base: str, token: str, object_id: str, properties: list[str]
) -> dict[str, Any] | None:
    try:
        r = await client.get(
            f"{base}/crm/v3/objects/contacts/{quote(object_id, safe='')}",
            params={"properties": ",".join(properties)},
            headers={"authorization": f"Bearer {token}", "accept": "application/json"},
        )
    except httpx.HTTPError as exc:
        raise CrmUnavailable(f"HubSpot CRM API: {type(exc).__name__}") from None
    if r.status_code == 404:
        return None
    if r.status_code != 200:
        raise CrmUnavailable(f"HubSpot CRM API answered {r.status_code} reading a contact")
    contact: dict[str, Any] = r.json()
    return contact


async def handle_events(
    rt: Runtime, client: httpx.AsyncClient, mapping: Mapping, body: bytes, *, actor: str
) -> list[ItemResult]:
    """Every event of a HubSpot webhook request, in order: each one's result."""
    settings = rt.settings
    events = _events(body)
    properties = contact_properties(mapping)
    wanted = set(properties)
    todo: list[tuple[HubSpotEvent, dict[str, Any]]] = []
    results: dict[int, ItemResult] = {}
    for i, (event, raw) in enumerate(events):
        outcome = await take_outcome(
            rt, mapping, str(event.eventId), raw, key=f"hubspot:{event.portalId}:{event.eventId}",
            actor=actor, route="hubspot",
        )  # fmt: skip
        if outcome is not None:
            results[i] = outcome
        elif event.subscriptionType not in CONTACT_EVENTS:
            results[i] = ItemResult(item=str(event.eventId), status="skipped", reason="not a contact event")
        elif event.subscriptionType == "contact.propertyChange" and event.propertyName not in wanted:
            results[i] = ItemResult(
                item=str(event.eventId), status="skipped", reason="a property the mapping does not read"
            )
        else:
            todo.append((event, raw))
    if todo and settings.hubspot_token is None:
        raise CrmUnavailable("LEADROUTE_HUBSPOT_TOKEN is not set: contacts cannot be read from HubSpot")
    token = settings.hubspot_token or ""
    base = settings.hubspot_base_url.rstrip("/")
    gate = asyncio.Semaphore(_FETCH_CONCURRENCY)

    async def fetch(object_id: str) -> tuple[str, dict[str, Any] | None]:
        async with gate:
            return object_id, await _contact(client, base, token, object_id, properties)

    contacts = dict(await asyncio.gather(*(fetch(oid) for oid in {str(e.objectId) for e, _ in todo})))
    for i, (event, raw) in enumerate(events):
        if i in results:
            continue
        contact = contacts[str(event.objectId)]
        if contact is None:
            results[i] = ItemResult(
                item=str(event.eventId), status="skipped", reason="the contact no longer exists"
            )
            continue
        key = f"hubspot:{event.portalId}:{event.objectId}:{event.occurredAt}"
        payload = {**contact, "event": raw}
        results[i] = await take(
            rt, str(event.eventId), mapping.apply(payload), key=key, actor=actor, route="hubspot"
        )
    return [results[i] for i in range(len(events))]
