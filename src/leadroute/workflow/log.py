"""The lead's event log: one append-only, typed event per change, written in the changing transaction.

Every change to a lead appends events to ``lead_events`` through :func:`append`, in the same
transaction as the change, so an event exists if and only if its change committed. Each event has

- ``seq``: a global, increasing sequence number (the row id);
- ``lead_id``, ``at`` (the service clock's time) and ``actor``: ``system`` (intake's routing, the
  scheduler, the queue drain, decay), ``owner:<id>`` (an owner acting on their lead) or ``api``;
- ``type`` and a payload whose shape is the Struct registered for that type (``version`` 1 for
  all of them today: a change of shape adds a version, readers convert older ones).

History and explain read a lead's events in order (:func:`lead_events`); outbound webhooks read
everything after a sequence number (:func:`events_after`). Sequence numbers are taken before
commit, so a reader can briefly see N+2 before N+1 commits: a relay that must not skip one treats
a gap as open until ``pg_snapshot_xmin`` has passed the ``xmax`` of the snapshot that first showed
it (every transaction that could still fill it has then ended), which :func:`events_after` returns.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Final, Literal, get_args

import msgspec

from leadroute.models import FieldWarning, OwnerSkip, RuleHit
from leadroute.store.db import Connection
from leadroute.store.queries import QUERIES
from leadroute.structs import Struct

__all__ = [
    "EVENT_TYPES",
    "MOVES",
    "OUTCOMES",
    "ActivityRecorded",
    "Cause",
    "FieldChange",
    "LeadAccepted",
    "LeadClosed",
    "LeadMerged",
    "LeadOutcome",
    "LeadReceived",
    "LeadScored",
    "LeadSlaBreached",
    "LeadSlaWarning",
    "LogEvent",
    "LogPage",
    "OutcomeKind",
    "Payload",
    "Placement",
    "append",
    "events_after",
    "lead_events",
]

Cause = Literal[
    "received",
    "activity",
    "decay",
    "stage_rose",
    "sla_breach",
    "reassign",
    "escalation",
    "queue_drain",
    "merged",
]
"""Why a lead was scored or placed: posted, an activity, time (decay), its stage rose while queued,
an SLA breach, a reassignment by hand, an escalation, the queue drain offering it again, or another
lead event (or duplicate lead) of the same person merged into it."""


class Payload(Struct, omit_defaults=True):
    """Base of every event payload (its type is the event's ``type``, its shape version 1)."""


class LeadReceived(Payload):
    """``lead.received``: the lead event as posted, the idempotency key it came with, and the
    fields accepted with a warning (absent in events written before warnings existed).

    ``previous_lead_id``: the person came back after the re-engagement window (or after their
    lead was closed): this is a new lead, and that was their previous one (``matched_on`` says by
    which value it was found).
    """

    body: dict[str, Any]
    idempotency_key: str | None = None
    warnings: list[FieldWarning] = msgspec.field(default_factory=list)
    previous_lead_id: str | None = None
    matched_on: str | None = None


class ActivityRecorded(Payload):
    """``activity.recorded``: what the lead did, and the points each ``on_activity`` rule gave it
    then (before decay; later rescoring decays them by the activity's age)."""

    activity: str
    properties: dict[str, Any] = msgspec.field(default_factory=dict)
    points: list[RuleHit] = msgspec.field(default_factory=list)


class LeadScored(Payload):
    """``lead.scored``: the lead's score and stage, the ruleset and the rules behind them."""

    cause: Cause
    score: float
    stage: str
    groups: dict[str, float]
    matched: list[str]
    """The ids of the scoring rules that matched."""
    ruleset_version: int
    ruleset_sha256: str
    qualification_rule: str | None = None
    decision_id: int | None = None
    """The full decision (every hit with its points, routing tried): ``decisions.id``."""
    previous_score: float | None = None
    previous_stage: str | None = None


class Placement(Payload):
    """Where a lead went: ``lead.assigned`` (an owner, from nobody), ``lead.reassigned`` (another
    owner), ``lead.escalated`` (the escalation target) or ``lead.queued`` (no owner: a queue and why)."""

    cause: Cause
    owner: str | None = None
    pool: str | None = None
    queue: str | None = None
    reason: str | None = None
    """Why it is queued, or the reason a person gave for a reassignment."""
    previous_owner: str | None = None
    rule: str | None = None
    """The routing rule whose target placed the lead."""
    strategy: str | None = None
    """``round_robin``, ``weighted``, ``least_loaded``, ``account_owner``, ``direct`` (a person chose)."""
    skipped: list[OwnerSkip] = msgspec.field(default_factory=list)
    pools_tried: list[str] = msgspec.field(default_factory=list)
    escalate_to: str | None = None
    note: str | None = None
    sla_due_at: datetime | None = None
    ruleset_version: int | None = None


class LeadAccepted(Payload):
    """``lead.accepted``: the owner took the lead; its SLA clock stopped."""

    owner: str
    after_minutes: float
    sla_stopped: bool


class LeadSlaBreached(Payload):
    """``lead.sla_breached``: the owner did not accept in time (``breach``: the lead's n-th)."""

    owner: str
    due_at: datetime
    minutes: int
    breach: int
    on_breach: str
    business_hours: bool = False


class LeadSlaWarning(Payload):
    """``lead.sla_warning``: the owner has ``minutes_left`` minutes to accept before ``due_at``."""

    owner: str
    due_at: datetime
    minutes_left: int
    minutes: int
    pool: str | None = None
    business_hours: bool = False


class LeadClosed(Payload):
    """``lead.closed``: the lead is done; its owner's slot is freed."""

    owner: str | None = None
    from_status: str | None = None
    reason: str | None = None
    outcome: str | None = None


OutcomeKind = Literal["converted", "won", "lost", "disqualified_by_sales"]
"""What sales made of a lead: converted (to a contact or opportunity), the deal won or lost, or
rejected by sales as not a real prospect. ``won`` and ``lost`` imply the lead had converted."""
OUTCOMES: Final[tuple[OutcomeKind, ...]] = get_args(OutcomeKind)


class LeadOutcome(Payload):
    """``lead.outcome``: what sales made of the lead (posted by a person, a script or a CRM), with
    the lead's stage, score and owner when it was recorded (what the prediction was then)."""

    outcome: OutcomeKind
    at: datetime
    """When it happened (the body's ``at``, else when it was recorded); also the event's ``occurred_at``."""
    amount: float | None = None
    currency: str | None = None
    reason: str | None = None
    stage: str | None = None
    score: float | None = None
    owner: str | None = None


class FieldChange(Struct):
    """One field a merge changed: its value before and after."""

    old: Any
    new: Any


class LeadMerged(Payload):
    """``lead.merged``: another lead event of the same person was merged into this lead (intake), or
    a duplicate lead was (``leadroute leads dedupe``: ``merged_from`` is its id).

    ``filled``: fields that were empty, with their new values; ``changed``: fields whose value
    changed, with the old and the new one (``attributes.NAME`` for an extra attribute).
    ``matched_on``: ``email``, ``phone`` or ``name``; ``source``: the merged event's source.
    ``body`` and ``idempotency_key``: the lead event as posted (intake; nothing posted is lost).
    """

    matched_on: str | None = None
    source: str | None = None
    merged_from: str | None = None
    filled: dict[str, Any] = msgspec.field(default_factory=dict)
    changed: dict[str, FieldChange] = msgspec.field(default_factory=dict)
    body: dict[str, Any] | None = None
    idempotency_key: str | None = None


EVENT_TYPES: Final[dict[str, type[Payload]]] = {
    "lead.received": LeadReceived,
    "lead.merged": LeadMerged,
    "activity.recorded": ActivityRecorded,
    "lead.scored": LeadScored,
    "lead.assigned": Placement,
    "lead.reassigned": Placement,
    "lead.escalated": Placement,
    "lead.queued": Placement,
    "lead.accepted": LeadAccepted,
    "lead.sla_warning": LeadSlaWarning,
    "lead.sla_breached": LeadSlaBreached,
    "lead.closed": LeadClosed,
    "lead.outcome": LeadOutcome,
}
"""Every event type and the shape of its payload."""

MOVES: Final = frozenset({"lead.assigned", "lead.reassigned", "lead.escalated", "lead.queued"})
"""The event types that place a lead with an owner or in a queue."""


class LogEvent(Struct):
    """One event of the log, as history, explain and webhooks see it."""

    seq: int
    lead_id: uuid.UUID
    type: str
    at: datetime
    actor: str
    version: int
    data: Payload


class LogPage(Struct):
    """Events after a sequence number, and the snapshot bounds a relay needs to close gaps."""

    events: list[LogEvent]
    xmin: int
    """Every transaction older than this has ended (``pg_snapshot_xmin`` of the read)."""
    xmax: int
    """Every transaction that had started by the read is older than this (``pg_snapshot_xmax``)."""


_TO_JSON: Final = msgspec.to_builtins


async def append(
    conn: Connection,
    lead_id: uuid.UUID,
    event_type: str,
    data: Payload,
    *,
    at: datetime,
    actor: str,
    occurred_at: datetime | None = None,
    idempotency_key: str | None = None,
) -> int:
    """Append one event in the caller's transaction; returns its sequence number."""
    assert type(data) is EVENT_TYPES[event_type], f"{event_type} takes {EVENT_TYPES[event_type].__name__}"
    seq: int = await conn.fetchval(
        QUERIES["log_append"], lead_id, event_type, at, occurred_at, idempotency_key, actor, _TO_JSON(data)
    )
    return seq


def _event(row: Any) -> LogEvent:
    kind = row["kind"]
    return LogEvent(
        seq=row["id"],
        lead_id=row["lead_id"],
        type=kind,
        at=row["received_at"],
        actor=row["actor"],
        version=row["version"],
        data=msgspec.convert(row["payload"], EVENT_TYPES[kind]),
    )


async def lead_events(conn: Connection, lead_id: uuid.UUID) -> list[LogEvent]:
    """A lead's events in the order they happened (time, then sequence)."""
    return [_event(row) for row in await conn.fetch(QUERIES["log_lead"], lead_id)]


async def events_after(conn: Connection, after: int, limit: int = 500) -> LogPage:
    """Up to ``limit`` events with a sequence number above ``after``, in sequence order."""
    rows = await conn.fetch(QUERIES["log_after"], after, limit)
    bounds = await conn.fetchrow(QUERIES["log_snapshot"])
    assert bounds is not None
    return LogPage(events=[_event(r) for r in rows], xmin=int(bounds["xmin"]), xmax=int(bounds["xmax"]))
