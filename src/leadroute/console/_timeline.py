"""A lead's timeline for people: each event of its log, and each outbound delivery, in a sentence.

Pure: it reads what :func:`leadroute.workflow.story.lead_story` and
:func:`leadroute.store.lead_search.lead_deliveries` return, and says it. Every event type of
:data:`leadroute.workflow.log.EVENT_TYPES` has its sentence (``tests/test_console.py`` checks).
"""

from __future__ import annotations

from datetime import datetime

from leadroute.store.lead_search import Delivery
from leadroute.structs import Struct
from leadroute.workflow.log import (
    ActivityRecorded,
    LeadAccepted,
    LeadClosed,
    LeadMerged,
    LeadOutcome,
    LeadReceived,
    LeadScored,
    LeadSlaBreached,
    LeadSlaWarning,
    LogEvent,
    Payload,
    Placement,
)

__all__ = ["Entry", "describe", "timeline"]


class Entry(Struct, kw_only=True):
    """One line of the timeline."""

    at: datetime
    kind: str
    """The event type (``lead.scored``...) or ``delivery``."""
    actor: str
    text: str
    details: list[str]
    """Smaller print: the rules that matched, owners skipped and why, the error of a delivery."""
    seq: int | None = None


def _placement(kind: str, data: Placement) -> tuple[str, list[str]]:
    if data.owner is None:
        text = f"Queued in {data.queue or data.pool or 'a queue'!s}"
        text += f": {data.reason}" if data.reason else ""
    else:
        verb = {"lead.escalated": "Escalated to", "lead.reassigned": "Reassigned to"}.get(kind, "Assigned to")
        text = f"{verb} {data.owner}" + (f" in pool {data.pool}" if data.pool else "")
        if data.previous_owner:
            text += f" (from {data.previous_owner})"
        if data.reason:
            text += f": {data.reason}"
    details = []
    if data.rule:
        details.append(f"routing rule {data.rule}" + (f", {data.strategy}" if data.strategy else ""))
    if data.pools_tried:
        details.append("pools tried: " + ", ".join(data.pools_tried))
    details += [f"skipped {s.owner}: {s.reason}" for s in data.skipped]
    if data.sla_due_at is not None:
        details.append(f"SLA due {data.sla_due_at:%Y-%m-%d %H:%M %Z}")
    if data.note:
        details.append(data.note)
    return text, details


def describe(kind: str, data: Payload) -> tuple[str, list[str]]:  # noqa: PLR0911, PLR0912  (one case per type)
    """The sentence and details of one event's payload."""
    match data:
        case LeadReceived():
            return "Received" + (" (with an idempotency key)" if data.idempotency_key else ""), []
        case LeadMerged():
            return _merged(data)
        case LeadSlaWarning():
            return (
                f"SLA warning: {data.owner} has {data.minutes_left} min left to accept "
                f"(due {data.due_at:%Y-%m-%d %H:%M %Z})",
                [],
            )
        case ActivityRecorded():
            points = [f"{hit.rule}: {hit.points:+g}" for hit in data.points]
            return f"Activity: {data.activity}", points
        case LeadScored():
            text = (
                f"Scored {data.score:g}, stage {data.stage} (ruleset v{data.ruleset_version}, {data.cause})"
            )
            if data.previous_stage is not None and data.previous_stage != data.stage:
                text += f"; was {data.previous_stage}"
            details = ["rules matched: " + (", ".join(data.matched) or "none")]
            if data.qualification_rule:
                details.append(f"qualified by {data.qualification_rule}")
            return text, details
        case Placement():
            return _placement(kind, data)
        case LeadAccepted():
            return f"Accepted by {data.owner} after {data.after_minutes:g} min", []
        case LeadSlaBreached():
            return (
                f"SLA breached: {data.owner} did not accept within {data.minutes} min (breach {data.breach})",
                [f"then: {data.on_breach}"],
            )
        case LeadClosed():
            text = "Closed" + (f": {data.reason}" if data.reason else "")
            return text, [f"outcome: {data.outcome}"] if data.outcome else []
        case LeadOutcome():
            text = f"Outcome: {data.outcome.replace('_', ' ')}"
            text += (
                f" ({data.amount:,.2f} {data.currency})".replace(".00 ", " ")
                if data.amount is not None
                else ""
            )
            details = [f"happened {data.at:%Y-%m-%d %H:%M %Z}"]
            if data.stage is not None and data.score is not None:
                details.append(f"the lead was {data.stage}, score {data.score:g}")
            return text, details + ([data.reason] if data.reason else [])
    return kind, []


def _merged(data: LeadMerged) -> tuple[str, list[str]]:
    origin = "a duplicate lead" if data.merged_from is not None else "another submission"
    text = f"Merged {origin} of the same person"
    text += f" (matched on {data.matched_on})" if data.matched_on else ""
    details = [f"merged from lead {data.merged_from}"] if data.merged_from is not None else []
    if data.filled:
        details.append("fields filled: " + ", ".join(sorted(data.filled)))
    changed = ", ".join(f"{k} (was {c.old!r})" for k, c in sorted(data.changed.items()))
    details.append("fields changed: " + (changed or "none"))
    return text, details


def _delivery(d: Delivery) -> Entry:
    state = {"delivered": "delivered", "dead": "failed for good", "skipped": "skipped", "pending": "pending"}
    text = f"{d.event_type} to {d.endpoint_id}: {state.get(d.status, d.status)}"
    text += f" after {d.attempts} attempt(s)" if d.attempts else ""
    details = []
    if d.last_status is not None:
        details.append(f"last answer HTTP {d.last_status}")
    if d.last_error and d.last_error != f"HTTP {d.last_status}":
        details.append(d.last_error)
    if d.status == "pending":
        details.append(f"next try {d.next_at:%Y-%m-%d %H:%M:%S %Z}")
    return Entry(at=d.done_at or d.created_at, kind="delivery", actor="system", text=text, details=details)


def timeline(events: list[LogEvent], deliveries: list[Delivery]) -> list[Entry]:
    """Every event and delivery of a lead, oldest first (a delivery after the event it carries)."""
    entries = []
    for event in events:
        text, details = describe(event.type, event.data)
        entries.append(
            Entry(at=event.at, kind=event.type, actor=event.actor, text=text, details=details, seq=event.seq)
        )
    entries += [_delivery(d) for d in deliveries]
    return sorted(entries, key=lambda e: (e.at, e.seq is None, e.seq or 0))
