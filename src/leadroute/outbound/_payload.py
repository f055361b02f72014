"""What a webhook says: one event of the lead's log with its reason, and the owners' CRM ids.

The body follows Standard Webhooks' recommended shape (``type``, ``timestamp``, ``data``)::

    {"type": "lead.reassigned", "timestamp": "2026-11-23T15:31:00Z",
     "data": {"sequence": 42, "lead_id": "...", "actor": "system", "version": 1,
              "event": {"cause": "sla_breach", "owner": "ben", "previous_owner": "ann",
                        "pool": "sales", "rule": "everyone", "strategy": "round_robin",
                        "skipped": [{"owner": "ann", "reason": "..."}], "ruleset_version": 3, ...},
              "owner": {"id": "ben", "name": "Ben", "crm_user_id": "0057..."},
              "previous_owner": {"id": "ann", "name": "Ann", "crm_user_id": "0058..."},
              "lead": {"source": "web_form", "hubspot_contact_id": "501", "salesforce_lead_id": null}}}

``event`` is the event's payload as the log holds it (:mod:`leadroute.workflow.log`), so a receiver
knows why without calling back; the owners are read when the webhook is sent (their CRM id as it
is then). What never leaves: the posted lead (``lead.received`` is not sent at all), activities,
and the values of a merge (``lead.merged`` says which fields changed, not to what).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Literal, get_args

import msgspec

__all__ = ["ALERT_EVENTS", "CRM_EVENTS", "EVENT_TYPES", "EventType", "webhook_body", "webhook_id"]

EVENT_TYPES: Final = (
    "lead.assigned",
    "lead.reassigned",
    "lead.escalated",
    "lead.queued",
    "lead.accepted",
    "lead.sla_breached",
    "lead.closed",
    "lead.scored",
    "lead.merged",
    "lead.sla_warning",
    "lead.outcome",
)
"""The event types an endpoint may ask for: the log's, less ``lead.received`` (the posted body,
personal data) and ``activity.recorded`` (what a person did on the website)."""

CRM_EVENTS: Final = ("lead.assigned", "lead.reassigned", "lead.escalated")
"""The events a CRM connector writes back: the ones that give a lead an owner."""

ALERT_EVENTS: Final = (*CRM_EVENTS, "lead.sla_warning", "lead.sla_breached", "lead.queued")
"""The events the Slack and email connectors tell people about (:mod:`._alerts`)."""

EventType = Literal[
    "lead.assigned",
    "lead.reassigned",
    "lead.escalated",
    "lead.queued",
    "lead.accepted",
    "lead.sla_breached",
    "lead.closed",
    "lead.scored",
    "lead.merged",
    "lead.sla_warning",
    "lead.outcome",
]
"""One of :data:`EVENT_TYPES`, as API bodies declare it."""
assert get_args(EventType) == EVENT_TYPES

_encode: Final = msgspec.json.Encoder().encode


def webhook_id(endpoint_id: str, seq: int) -> str:
    """The ``webhook-id`` of event ``seq`` for one endpoint: the same on every attempt and every
    redelivery, so a receiver that remembers ids processes each event once."""
    return f"msg_{seq}_{endpoint_id}"


def _owner(row: Any, prefix: str) -> dict[str, Any] | None:
    if row[f"{prefix}_id"] is None:
        return None
    return {
        "id": row[f"{prefix}_id"],
        "name": row[f"{prefix}_name"],
        "crm_user_id": row[f"{prefix}_crm_user_id"],
    }


def _event(event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    if event_type == "lead.merged":
        changed = payload.get("changed") or {}
        filled = payload.get("filled") or {}
        return {
            "merged_from": payload.get("merged_from"),
            "matched_on": payload.get("matched_on"),
            "changed_fields": sorted(changed),
            "filled_fields": sorted(filled),
        }
    return dict(payload)


def webhook_body(row: Any) -> bytes:
    """The JSON body of one delivery (a row of the ``outbound_jobs`` query), minified, as signed."""
    at: datetime = row["received_at"]
    body = {
        "type": row["event_type"],
        "timestamp": at,
        "data": {
            "sequence": row["event_seq"],
            "lead_id": row["lead_id"],
            "actor": row["actor"],
            "version": row["version"],
            "event": _event(row["event_type"], row["payload"]),
            "owner": _owner(row, "owner"),
            "previous_owner": _owner(row, "previous_owner"),
            "lead": {
                "source": row["lead_source"],
                "hubspot_contact_id": row["hubspot_contact_id"],
                "salesforce_lead_id": row["salesforce_lead_id"],
            },
        },
    }
    return _encode(body)
