"""Salesforce records to leads: Outbound Messages (SOAP) and Flow/Apex callouts (JSON).

**Outbound Message** (Salesforce API guide, "Outbound Messaging"): a SOAP envelope whose body is
``<notifications xmlns="http://soap.sforce.com/2005/09/outbound">`` with ``OrganizationId``,
``ActionId``, ``SessionId``, ``EnterpriseUrl``, ``PartnerUrl`` and up to 100 ``Notification``
elements, each an ``Id`` (the notification's) and an ``sObject`` (``xsi:type="sf:Lead"``) whose
children, in ``urn:sobject.enterprise.soap.sforce.com``, are the fields chosen in Setup. Parsed
with defusedxml (no entities, no DTDs: a body from the internet cannot expand or read files).
Salesforce cannot sign it: it is taken when its ``OrganizationId`` is the configured org (and,
if set, the URL carries the configured ``token``). The answer must be the SOAP ``notificationsResponse``
with ``<Ack>true</Ack>``, else Salesforce sends the message again (for up to 24 hours).
Idempotency key: ``salesforce:<OrganizationId>:<notification Id>`` (Salesforce's own advice: a
message can be delivered more than once; track notification ids).

A record the mapping's ``outcomes:`` rules name (a converted Lead, a closed Opportunity) is
recorded as an outcome of its lead under the same key (``_intake.take_outcome``), not taken as
a lead.

**Callout** (Flow HTTP Callout or Apex ``HttpRequest``): JSON, signed with the shared secret
(``X-Leadroute-Signature``, see ``_signatures``); the body is what ``JSON.serialize`` makes of a
``List<SObject>`` (``[{"attributes": {"type": "Lead", ...}, "Id": ..., ...}]``) or
``{"records": [...]}`` as the REST API returns them. Idempotency key:
``salesforce:<Id>:<LastModifiedDate or SystemModstamp>`` (a record without either is taken once).
"""

from __future__ import annotations

import hmac
from typing import Any
from xml.etree.ElementTree import Element

import msgspec
from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from leadroute.errors import MalformedBody
from leadroute.inbound._format import Mapping
from leadroute.inbound._intake import ItemResult, take, take_outcome
from leadroute.inbound._signatures import BadSignature
from leadroute.runtime import Runtime

__all__ = [
    "ACK",
    "OutboundMessage",
    "check_org",
    "handle_outbound_message",
    "handle_records",
    "parse_outbound_message",
    "same_org",
]

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND = "http://soap.sforce.com/2005/09/outbound"
SOBJECT = "urn:sobject.enterprise.soap.sforce.com"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
MAX_RECORDS = 100
SALESFORCE_ID_SHORT = 15

ACK = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
    b"<soapenv:Body>"
    b'<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack></notificationsResponse>'
    b"</soapenv:Body></soapenv:Envelope>"
)
"""The acknowledgement Salesforce requires (``notificationsResponse`` of the outbound WSDL)."""


class OutboundMessage(msgspec.Struct, frozen=True):
    organization_id: str
    notifications: list[tuple[str, dict[str, Any]]]
    """``(notification Id, record)``; a record holds its fields and ``type`` (``Lead``, ...)."""


def _text(element: Element | None) -> str | None:
    if element is None or element.get(f"{{{XSI}}}nil") == "true":
        return None
    return (element.text or "").strip() or None


def parse_outbound_message(body: bytes) -> OutboundMessage:
    """The notifications of an Outbound Message; raises MalformedBody."""
    try:
        root = ElementTree.fromstring(body, forbid_dtd=True)
    except (ElementTree.ParseError, DefusedXmlException) as exc:
        raise MalformedBody(f"not an Outbound Message: {type(exc).__name__}") from None
    found = root.find(f"{{{SOAP_ENV}}}Body/{{{OUTBOUND}}}notifications")
    if found is None:
        raise MalformedBody("not an Outbound Message: no soapenv:Body/notifications element")
    org = _text(found.find(f"{{{OUTBOUND}}}OrganizationId"))
    if org is None:
        raise MalformedBody("the Outbound Message has no OrganizationId")
    notifications = []
    for note in found.findall(f"{{{OUTBOUND}}}Notification")[:MAX_RECORDS]:
        note_id = _text(note.find(f"{{{OUTBOUND}}}Id"))
        sobject = note.find(f"{{{OUTBOUND}}}sObject")
        if note_id is None or sobject is None:
            raise MalformedBody("a Notification has no Id or no sObject")
        record: dict[str, Any] = {"type": (sobject.get(f"{{{XSI}}}type") or "").rpartition(":")[2] or None}
        for field in sobject:
            name = field.tag.rpartition("}")[2]
            if (value := _text(field)) is not None:
                record[name] = value
        notifications.append((note_id, record))
    return OutboundMessage(org, notifications)


def same_org(configured: str, sent: str) -> bool:
    """Whether two org ids name one org: an 18-character id is the 15-character one plus a
    case-checksum, and Setup shows the 15-character form."""
    return (
        configured[:SALESFORCE_ID_SHORT] == sent[:SALESFORCE_ID_SHORT]
        and len(configured) >= SALESFORCE_ID_SHORT
    )


async def handle_outbound_message(
    rt: Runtime, mapping: Mapping, message: OutboundMessage, *, actor: str
) -> list[ItemResult]:
    """Every notification of an Outbound Message whose org was checked: each one's result."""
    results = []
    for note_id, record in message.notifications:
        key = f"salesforce:{message.organization_id}:{note_id}"
        results.append(await _take_record(rt, mapping, note_id, record, key=key, actor=actor))
    return results


async def _take_record(
    rt: Runtime, mapping: Mapping, item: str, record: dict[str, Any], *, key: str, actor: str
) -> ItemResult:
    """An outcome when the mapping's ``outcomes:`` rules say the record is one, else a lead."""
    outcome = await take_outcome(rt, mapping, item, record, key=key, actor=actor, route="salesforce")
    if outcome is not None:
        return outcome
    return await take(rt, item, mapping.apply(record), key=key, actor=actor, route="salesforce")


def _records(body: bytes) -> list[dict[str, Any]]:
    try:
        raw = msgspec.json.decode(body)
    except msgspec.DecodeError:
        raise MalformedBody('body must be JSON: a list of records, or {"records": [...]}') from None
    if isinstance(raw, dict) and isinstance(raw.get("records"), list):
        raw = raw["records"]
    if not isinstance(raw, list) or not raw or len(raw) > MAX_RECORDS:
        raise MalformedBody(f"body must hold 1 to {MAX_RECORDS} records")
    records = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("Id"), str):
            raise MalformedBody(f"record {i} is not an object with an Id")
        kind = item.get("type") or (item.get("attributes") or {}).get("type")
        records.append({**item, "type": kind})
    return records


async def handle_records(rt: Runtime, mapping: Mapping, body: bytes, *, actor: str) -> list[ItemResult]:
    """Every record of a signed callout: each one's result."""
    results = []
    for record in _records(body):
        changed = record.get("LastModifiedDate") or record.get("SystemModstamp") or ""
        key = f"salesforce:{record['Id']}:{changed}" if changed else f"salesforce:{record['Id']}"
        results.append(await _take_record(rt, mapping, record["Id"], record, key=key, actor=actor))
    return results


def check_org(
    configured: str | None, token: str | None, message: OutboundMessage, sent_token: str | None
) -> None:
    """Raise BadSignature unless the message comes from the configured org (and carries the token)."""
    if configured is None:
        raise BadSignature("Outbound Messages are off: set LEADROUTE_SALESFORCE_ORG_ID")
    if not same_org(configured, message.organization_id):
        raise BadSignature("the Outbound Message's OrganizationId is not the configured org")
    if token is not None and (
        sent_token is None or not hmac.compare_digest(token.encode(), sent_token.encode())
    ):
        raise BadSignature("the Outbound Message URL does not carry the configured token")
