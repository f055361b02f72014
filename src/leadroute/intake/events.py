"""Request body bytes to an :class:`ActivityEventIn`: one behavioural event for a known lead.

An activity event says what a lead did and when: a page view, a form, an email click, a webinar
attended. It names its lead by ``lead_id`` or by ``email`` (the newest lead with that address);
given both, the email must be that lead's (checked when the lead is read, ``workflow.events``).
Like lead intake, every bad field is reported at once, by name, without echoing its value, in
one stable order (:func:`~leadroute.intake.order.error_order` over :data:`EVENT_FIELD_ORDER`;
``properties.<key>`` by key); nesting is bounded and strings hold no control characters (tab
and line breaks are allowed in property values, which are free text: :mod:`leadroute.intake.text`).

Properties the active ruleset declares (``fields: {activity.url: STRING}``) must have that type
(:func:`property_problem`; null is always allowed: the property is absent), so a value rules
cannot read never reaches storage. Properties it does not declare are kept as sent: no rule can
read them (a rule naming one fails to load), and the next ruleset may declare them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import msgspec

from leadroute.intake.errors import FieldError, InvalidLead, MalformedBody
from leadroute.intake.normalize import normalize_email
from leadroute.intake.order import error_order
from leadroute.intake.text import control_problem, decode_body, printable

__all__ = [
    "EVENT_FIELD_ORDER",
    "FUTURE_TOLERANCE",
    "MAX_PROPERTIES",
    "ActivityEventIn",
    "InvalidEvent",
    "declared_properties",
    "parse_event",
    "property_problem",
    "typed_properties",
]

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
EVENT_FIELD_ORDER: tuple[str, ...] = tuple(_FIELDS)
"""An event's fields in the order the schema lists them: the order of its errors."""
_RANK = {name: rank for rank, name in enumerate(EVENT_FIELD_ORDER)}
_REQUIRED = ("type", "occurred_at")
_DECODER = msgspec.json.Decoder()

_AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
_TYPE_NAMES = {"STRING": "a string", "FLOAT": "a number", "BOOLEAN": "true or false", "ARRAY": "an array"}


def declared_properties(fields: Mapping[str, str]) -> dict[str, str]:
    """The activity properties a ruleset's ``fields:`` declares: name → type (``url`` → ``STRING``)."""
    return {name[9:]: kind for name, kind in fields.items() if name.startswith("activity.")}


def property_problem(value: Any, declared: str) -> str | None:
    """Why ``value`` is not of the ``declared`` rule type, or None (null is always fine).

    ``FLOAT`` takes any JSON number (an integer too, never true/false); ``DATETIME`` an RFC 3339
    string with a time zone (rules see it as a date-time).
    """
    if value is None:
        return None
    match declared:
        case "STRING":
            ok = isinstance(value, str)
        case "FLOAT":
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        case "BOOLEAN":
            ok = isinstance(value, bool)
        case "ARRAY":
            ok = isinstance(value, list)
        case "DATETIME":
            ok = _datetime(value) is not None
            if not ok:
                return "must be an RFC 3339 date-time with a time zone (declared DATETIME in the ruleset)"
        case _:
            return None
    return None if ok else f"must be {_TYPE_NAMES[declared]} (declared {declared} in the ruleset)"


def typed_properties(properties: Mapping[str, Any], declared: Mapping[str, str]) -> dict[str, Any]:
    """The properties as rules see them: a declared one whose value does not have its type (stored
    before types were checked, or under a ruleset that declared another type) is left out, so
    rules see it as null; ``DATETIME`` strings become date-times. Undeclared ones are kept."""
    result: dict[str, Any] = {}
    for name, value in properties.items():
        kind = declared.get(name)
        if kind is not None and property_problem(value, kind) is not None:
            continue
        result[name] = _datetime(value) if kind == "DATETIME" and value is not None else value
    return result


def _datetime(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment: datetime = msgspec.convert(value, _AwareDatetime)
    except msgspec.ValidationError:
        return None
    return moment


def parse_event(
    body: bytes, *, now: datetime | None = None, declared: Mapping[str, str] | None = None
) -> ActivityEventIn:
    """Decode and check one activity event; raises :class:`InvalidEvent` or :class:`MalformedBody`.

    ``now`` is the service's clock: an ``occurred_at`` more than :data:`FUTURE_TOLERANCE` after
    it is an error (None: not checked). ``declared``: the active ruleset's activity property
    types (:func:`declared_properties`); a property of another type is an error on
    ``properties.<name>``. ``email`` must be a valid address.
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
            errors += _property_errors(value, declared or {})
        try:
            values[name] = msgspec.convert(value, field_type, strict=False)
        except msgspec.ValidationError as exc:
            if name != "properties" or not errors or not errors[-1].field.startswith("properties"):
                errors.append(FieldError(name, _message(str(exc))))
    errors += _whole_event_errors(raw, values, now)
    if errors:
        raise InvalidEvent(sorted(errors, key=lambda e: error_order(e.field, _RANK)))
    return ActivityEventIn(**values)


def _whole_event_errors(
    raw: dict[str, Any], values: dict[str, Any], now: datetime | None
) -> list[FieldError]:
    """What the fields say together: required ones, the lead named, the time, the email."""
    errors = [FieldError(name, "is required") for name in _REQUIRED if raw.get(name) is None]
    if raw.get("lead_id") is None and raw.get("email") is None:
        errors.append(FieldError("lead_id", "name the lead: give lead_id or email"))
    occurred_at = values.get("occurred_at")
    if now is not None and occurred_at is not None and occurred_at > now + FUTURE_TOLERANCE:
        errors.append(FieldError("occurred_at", _future_message(now)))
    if values.get("email") is not None:
        try:
            normalize_email(values["email"])
        except ValueError as exc:
            errors.append(FieldError("email", str(exc)))
    return errors


def _property_errors(properties: dict[Any, Any], declared: Mapping[str, str]) -> list[FieldError]:
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
            continue
        kind = declared.get(key)
        if kind is not None and (problem := property_problem(value, kind)):
            errors.append(FieldError(name, problem))
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
