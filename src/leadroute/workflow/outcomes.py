"""What sales made of a lead: record an outcome (converted, won, lost, disqualified by sales).

An outcome is one ``lead.outcome`` event in the lead's log, written by one step of the runner:
claim the idempotency key (scope ``outcome``), lock the lead row, check the time, append the
event with the lead's stage, score and owner at that moment. It changes nothing else: the lead
keeps its owner and status (closing it is ``POST /v1/assignments/{id}/close``).

A lead may have several outcomes (``converted``, then ``won``); what they add up to is
:func:`leadroute.reports.lead_outcome` (the latest counts; ``won``/``lost`` imply converted).

:func:`record_outcome` is the one entry point: ``POST /v1/leads/{id}/outcome`` calls it after
:func:`parse_outcome`, and a CRM webhook (HubSpot deal stage, Salesforce opportunity) calls it
with an :class:`OutcomeIn` it built, its event id as the idempotency key.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final

import msgspec

from leadroute.errors import ClientError, NotFound
from leadroute.intake.text import control_problem, decode_body, printable
from leadroute.reports import lead_outcome
from leadroute.runtime import Runtime
from leadroute.store.queries import QUERIES
from leadroute.structs import Struct
from leadroute.workflow.intake import replayed
from leadroute.workflow.log import LeadOutcome, OutcomeKind
from leadroute.workflow.runner import Change, run

__all__ = [
    "FUTURE_TOLERANCE",
    "InvalidOutcome",
    "OutcomeAnswer",
    "OutcomeIn",
    "OutcomeResult",
    "parse_outcome",
    "record_outcome",
]

SCOPE = "outcome"
FUTURE_TOLERANCE: Final = timedelta(minutes=5)
"""How far ahead of the service's clock ``at`` may be (clock skew); later is refused."""

Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
DEFAULT_CURRENCY: Final = "USD"


class OutcomeIn(msgspec.Struct, kw_only=True, frozen=True):
    """The body of ``POST /v1/leads/{id}/outcome``."""

    outcome: OutcomeKind
    amount: Annotated[float, msgspec.Meta(ge=0)] | None = None
    """The deal's value (``won``), or the pipeline it opened (``converted``); in ``currency``."""
    currency: Currency | None = None
    """ISO 4217 code; ``USD`` when ``amount`` is given without it."""
    at: Annotated[datetime, msgspec.Meta(tz=True)] | None = None
    """When it happened (not in the future, not before the lead arrived); absent: now."""
    reason: Reason | None = None
    """Free text for people (why lost, why rejected); kept in the log, never in service logs."""


class InvalidOutcome(ClientError):
    """An outcome that cannot be recorded; ``errors`` names every bad field."""

    status = 422
    kind = "invalid-outcome"
    title = "Invalid outcome"

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__(
            "invalid outcome: " + "; ".join(f"{f}: {m}" for f, m in errors),
            errors=[{"field": f, "message": m} for f, m in errors],
        )


class OutcomeAnswer(Struct, kw_only=True):
    """What was recorded, and what the lead's outcomes add up to now."""

    lead_id: str
    seq: int
    """The ``lead.outcome`` event's sequence number in the lead's log."""
    outcome: OutcomeKind
    at: datetime
    amount: float | None
    currency: str | None
    reason: str | None
    recorded_at: datetime
    stage: str
    """The lead's stage when the outcome was recorded."""
    score: float
    owner: str | None
    lead_outcome: OutcomeKind
    """All the lead's outcomes taken together (reports count this one): the latest, except that
    ``converted`` after ``won`` or ``lost`` does not undo them."""


class OutcomeResult(msgspec.Struct, frozen=True):
    """The answer, and whether this call recorded it (False: a retry's stored answer)."""

    answer: OutcomeAnswer
    created: bool


_FIELDS: Final[dict[str, Any]] = {f.name: f.type for f in msgspec.structs.fields(OutcomeIn)}
_DECODER: Final = msgspec.json.Decoder()
_canonical = msgspec.json.Encoder(order="sorted").encode
_OUTCOME_HELP: Final = "one of converted, won, lost, disqualified_by_sales"


def parse_outcome(body: bytes) -> OutcomeIn:
    """Decode and check one outcome body; every bad field at once (:class:`InvalidOutcome`)."""
    raw = decode_body(_DECODER, body)
    if not isinstance(raw, dict):
        raise InvalidOutcome([("body", "must be a JSON object")])
    errors: list[tuple[str, str]] = []
    values: dict[str, Any] = {}
    for name, value in raw.items():
        field_type = _FIELDS.get(name)
        if field_type is None:
            errors.append((printable(name), "unknown field; fields are " + ", ".join(_FIELDS)))
        elif value is None:
            continue
        elif problem := control_problem(value, free_text=name == "reason"):
            errors.append((name, problem))
        elif name == "amount" and isinstance(value, float) and not math.isfinite(value):
            errors.append((name, "must be a finite number"))
        else:
            try:
                values[name] = msgspec.convert(value, field_type, strict=name != "at")
            except msgspec.ValidationError as exc:
                errors.append((name, _OUTCOME_HELP if name == "outcome" else str(exc).split(" - at `")[0]))
    if raw.get("outcome") is None:
        errors.append(("outcome", "is required: " + _OUTCOME_HELP))
    if values.get("currency") is not None and values.get("amount") is None:
        errors.append(("currency", "is given without amount"))
    if errors:
        raise InvalidOutcome(errors)
    return OutcomeIn(**values)


def _fingerprint(lead_id: uuid.UUID, outcome: OutcomeIn) -> str:
    """The request's identity for its idempotency key: the lead and the outcome as given."""
    return hashlib.sha256(str(lead_id).encode() + _canonical(outcome)).hexdigest()


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


async def record_outcome(
    rt: Runtime,
    lead_id: uuid.UUID,
    outcome: OutcomeIn,
    actor: str,
    *,
    idempotency_key: str | None = None,
) -> OutcomeResult:
    """Record ``outcome`` for the lead as a ``lead.outcome`` event (one transaction).

    A retry with the same ``idempotency_key`` gets the first answer (``created=False``) and writes
    nothing; the same key with another lead or outcome is an ``IdempotencyConflict``. Raises
    :class:`NotFound` (no such lead) or :class:`InvalidOutcome` (``at`` in the future or before
    the lead arrived); nothing is written then and the key stays unused.
    """
    body_print = _fingerprint(lead_id, outcome) if idempotency_key else ""

    async def step(ch: Change) -> OutcomeResult:
        stored = await replayed(ch.conn, SCOPE, idempotency_key, body_print)
        if stored is not None:
            return OutcomeResult(msgspec.convert(stored.response, OutcomeAnswer), created=False)
        lead = await ch.conn.fetchrow(QUERIES["outcome_lead_lock"], lead_id)
        if lead is None:
            raise NotFound("lead", str(lead_id))
        if outcome.at is not None and outcome.at.tzinfo is None:  # a caller that built OutcomeIn itself
            raise InvalidOutcome([("at", "needs a time zone (Z or an offset like +02:00)")])
        at = (outcome.at or ch.now).astimezone(UTC)
        if at > ch.now + FUTURE_TOLERANCE:
            raise InvalidOutcome([("at", f"is in the future (the service's clock is {_utc(ch.now)})")])
        if lead["arrived_at"] is not None and at < lead["arrived_at"]:
            raise InvalidOutcome([("at", f"is before the lead arrived ({_utc(lead['arrived_at'])})")])
        currency = outcome.currency or (DEFAULT_CURRENCY if outcome.amount is not None else None)
        data = LeadOutcome(
            outcome=outcome.outcome,
            at=at,
            amount=outcome.amount,
            currency=currency,
            reason=outcome.reason,
            stage=lead["stage"],
            score=lead["score"],
            owner=lead["owner_id"],
        )
        seq = await ch.emit(lead_id, "lead.outcome", data, occurred_at=at, idempotency_key=idempotency_key)
        history = [
            (r["at"], r["id"], r["outcome"]) for r in await ch.conn.fetch(QUERIES["outcome_lead"], lead_id)
        ]
        answer = OutcomeAnswer(
            lead_id=str(lead_id),
            seq=seq,
            outcome=outcome.outcome,
            at=at,
            amount=outcome.amount,
            currency=currency,
            reason=outcome.reason,
            recorded_at=ch.now,
            stage=lead["stage"],
            score=lead["score"],
            owner=lead["owner_id"],
            lead_outcome=lead_outcome(history) or outcome.outcome,
        )
        if idempotency_key is not None:
            await ch.conn.execute(
                QUERIES["idempotency_complete"],
                SCOPE,
                [idempotency_key],
                lead_id,
                msgspec.to_builtins(answer),
            )
        return OutcomeResult(answer, created=True)

    return await run(rt, step, actor=actor)
