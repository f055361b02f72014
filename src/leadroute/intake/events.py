"""Request body bytes to an :class:`ActivityEventIn`: one behavioural event for a known lead.

An activity event says what a lead did and when: a page view, a form, an email click, a webinar
attended. It names its lead by ``lead_id`` or by ``email`` (the newest lead with that address);
given both, the email must be that lead's (checked when the lead is read, ``workflow.events``).
Like lead intake, every bad field is reported at once, by name, without echoing its value;
nesting is bounded and strings hold no control characters (tab and line breaks are allowed in
property values, which are free text: :mod:`leadroute.intake.text`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import msgspec

from leadroute.intake.errors import FieldError, InvalidLead, MalformedBody
from leadroute.intake.text import control_problem, decode_body, printable

__all__ = ["FUTURE_TOLERANCE", "MAX_PROPERTIES", "ActivityEventIn", "InvalidEvent", "parse_event"]

MAX_PROPERTIES = 50
"""At most this many properties per event."""

FUTURE_TOLERANCE = timedelta(hours=24)
"""How far ahead of the service's clock an event's ``occurred_at`` may be.

Enough for clock skew and a wrongly written time zone; beyond it the event is refused. Decay
counts an activity dated after "now" in full (age 0), so an event dated 9999-12-31 would keep
its full points forever.
"""

EventType = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.]*$")]
PropertyKey = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
PropertyScalar = Annotated[str, msgspec.Meta(max_length=2000)] | int | float | bool | None
PropertyValue = PropertyScalar | Annotated[list[PropertyScalar], msgspec.Meta(max_length=50)]


class ActivityEventIn(msgspec.Struct, kw_only=True, frozen=True):
    """One activity event as a tracker or CRM posts it to ``POST /v1/events``."""

    type: EventType
    occurred_at: Annotated[datetime, msgspec.Meta(tz=True)]
    event_id: Annotated[str, msgspec.Meta(min_length=1, max_length=255)] | None = None
    lead_id: uuid.UUID | None = None
    email: Annotated[str, msgspec.Meta(max_length=320)] | None = None
    properties: Annotated[dict[PropertyKey, PropertyValue], msgspec.Meta(max_length=MAX_PROPERTIES)] = (
        msgspec.field(default_factory=dict)
    )


class InvalidEvent(InvalidLead):
    """An activity event that cannot be accepted; ``errors`` lists every bad field."""


_FIELDS: dict[str, Any] = {f.name: f.type for f in msgspec.structs.fields(ActivityEventIn)}
_REQUIRED = ("type", "occurred_at")
_DECODER = msgspec.json.Decoder()


def parse_event(body: bytes, *, now: datetime | None = None) -> ActivityEventIn:
    """Decode and check one activity event; raises :class:`InvalidEvent` or :class:`MalformedBody`.

    ``now`` is the service's clock: an ``occurred_at`` more than :data:`FUTURE_TOLERANCE` after
    it is an error (None: not checked).
    """
    raw = decode_body(_DECODER, body)
    if not isinstance(raw, dict):
        raise MalformedBody("body must be a JSON object")

    errors: list[FieldError] = []
    values: dict[str, Any] = {}
    for name, value in raw.items():
        field_type = _FIELDS.get(name)
        if field_type is None:
            errors.append(FieldError(printable(name), "unknown field; event data goes under properties"))
            continue
        if value is None:
            continue
        if name != "properties" and (problem := control_problem(value, free_text=False)):
            errors.append(FieldError(name, problem))
            continue
        if name == "properties" and isinstance(value, dict):
            errors += _property_errors(value)
        try:
            values[name] = msgspec.convert(value, field_type, strict=False)
        except msgspec.ValidationError as exc:
            if name != "properties" or not errors or not errors[-1].field.startswith("properties"):
                errors.append(FieldError(name, _message(str(exc))))
    errors += [FieldError(name, "is required") for name in _REQUIRED if raw.get(name) is None]
    if raw.get("lead_id") is None and raw.get("email") is None:
        errors.append(FieldError("lead_id", "name the lead: give lead_id or email"))
    occurred_at = values.get("occurred_at")
    if now is not None and occurred_at is not None and occurred_at > now + FUTURE_TOLERANCE:
        errors.append(FieldError("occurred_at", _future_message(now)))
    if errors:
        raise InvalidEvent(errors)
    return ActivityEventIn(**values)


def _property_errors(properties: dict[Any, Any]) -> list[FieldError]:
    """Each bad property by its key (msgspec would only say "somewhere in properties")."""
    errors: list[FieldError] = []
    if len(properties) > MAX_PROPERTIES:
        errors.append(FieldError("properties", f"at most {MAX_PROPERTIES} properties"))
    for key, value in properties.items():
        name = f"properties.{printable(str(key))}"
        try:
            msgspec.convert(key, PropertyKey)
        except msgspec.ValidationError:
            errors.append(FieldError(name, "a property name is letters, digits and _, up to 64"))
            continue
        if problem := control_problem(value, free_text=True):
            errors.append(FieldError(name, problem))
            continue
        try:
            msgspec.convert(value, PropertyValue)
        except msgspec.ValidationError as exc:
            errors.append(FieldError(name, _message(str(exc))))
    return errors


def _future_message(now: datetime) -> str:
    hours = FUTURE_TOLERANCE.total_seconds() / 3600
    return (
        f"is more than {hours:g} hours after the service's clock "
        f"({now.astimezone(UTC).isoformat(timespec='seconds').replace('+00:00', 'Z')}); "
        "send when the activity happened, with its time zone (Z or an offset like +02:00)"
    )


def _message(message: str) -> str:
    return message.split(" - at `", 1)[0]
