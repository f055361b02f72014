"""Request body bytes to a :class:`~leadroute.models.LeadIn`, naming every bad field.

msgspec stops at the first error when it decodes straight into a Struct, and a sales-ops
person fixing a form wants to see all of them at once. So the body is decoded to a plain
object first, then each known field is converted on its own against its annotated type in
``LeadIn``, and every failure is collected before :class:`InvalidLead` is raised.

Then :func:`read_lead` normalizes what parsed (:mod:`leadroute.intake.normalize`) and raises
ONE :class:`InvalidLead` with the type errors and the normalization errors together (a body
with a bad ``employees`` and a bad ``email`` names both), sorted by :func:`error_order`.

Keys the CRM contract does not name are kept as extra attributes (merged under an explicit
``attributes`` object, which wins on a clash) and checked like them.

Before any of that (:mod:`leadroute.intake.text`): nesting is bounded, and no string holds a
control character; attribute values are free text, where tab and line breaks are allowed.
"""

from __future__ import annotations

import math
import typing
from typing import Annotated, Any

import msgspec

from leadroute.intake.errors import FieldError, InvalidLead, MalformedBody
from leadroute.intake.normalize import DEFAULT_POLICY, FieldPolicy, normalize_checked
from leadroute.intake.order import FIELD_ORDER, error_order
from leadroute.intake.text import control_problem, decode_body, printable
from leadroute.models import MAX_ATTRIBUTES, FieldWarning, LeadIn, NormalizedLead

__all__ = ["FIELD_ORDER", "ReadLead", "error_order", "parse_lead", "read_lead"]

_DECODER = msgspec.json.Decoder()

_FIELD_TYPES: dict[str, Any] = {f.name: f.type for f in msgspec.structs.fields(LeadIn)}
"""Each LeadIn field's annotated type (constraints included), resolved once at import."""

_LAX_FIELDS = frozenset({"employees", "annual_revenue"})
"""Numeric fields that also accept numeric strings: HTML forms post every value as text."""

_ATTRIBUTE_KEY_TYPE: Any = typing.get_args(_FIELD_TYPES["attributes"])[0]

_AttrText = Annotated[str, msgspec.Meta(max_length=2000)]
_AttrScalar = _AttrText | int | float | bool | None
_AttrValue = _AttrScalar | Annotated[list[_AttrScalar], msgspec.Meta(max_length=50)]
"""``models.AttributeValue`` with the size limits applied at intake."""

_MAX_KEY_IN_MESSAGE = 64


class ReadLead(msgspec.Struct, frozen=True):
    """A lead body read, checked and normalized, with the warnings about fields kept as sent."""

    lead_in: LeadIn
    lead: NormalizedLead
    warnings: list[FieldWarning]


def read_lead(body: bytes, policy: FieldPolicy = DEFAULT_POLICY) -> ReadLead:
    """Parse and normalize one lead body; raise ONE :class:`InvalidLead` naming every bad field.

    Type and shape errors (:func:`parse_lead`) and normalization errors (``normalize``: an email
    that is not an address, a phone when there is no email...) come together, ordered by
    :func:`error_order`; :class:`MalformedBody` when the body is not a JSON object.
    """
    lead_in, errors = _parse(body)
    try:
        lead, warnings = normalize_checked(lead_in, policy)
    except InvalidLead as invalid:
        errors += invalid.errors
    if errors:
        raise InvalidLead(sorted(errors, key=lambda e: error_order(e.field)))
    return ReadLead(lead_in, lead, warnings)


def parse_lead(body: bytes) -> LeadIn:
    """Decode and check one lead event body.

    Raises :class:`MalformedBody` when the body is not a JSON object, and
    :class:`InvalidLead` listing every bad field otherwise (in :func:`error_order`). Empty
    numeric fields (``""``) count as absent. A lead needs an ``email`` or a ``phone`` (reported
    on ``email``).
    """
    lead, errors = _parse(body)
    if errors:
        raise InvalidLead(sorted(errors, key=lambda e: error_order(e.field)))
    return lead


def _parse(body: bytes) -> tuple[LeadIn, list[FieldError]]:
    """The lead made of the fields that are well-formed, and an error for each one that is not."""
    raw = decode_body(_DECODER, body)
    if not isinstance(raw, dict):
        raise MalformedBody(f"body must be a JSON object, not {_json_kind(raw)}")

    errors: list[FieldError] = []
    values: dict[str, Any] = {}
    extras: dict[str, Any] = {}
    for name, value in raw.items():
        field_type = _FIELD_TYPES.get(name)
        if field_type is None:
            extras[name] = value
        elif name != "attributes" and (problem := control_problem(value, free_text=False)):
            errors.append(FieldError(name, problem))
        elif name == "attributes":
            if isinstance(value, dict):
                values[name] = value
            else:
                errors.append(FieldError(name, f"Expected `object`, got `{_json_kind(value)}`"))
        else:
            try:
                values[name] = _convert_field(name, value, field_type)
            except msgspec.ValidationError as exc:
                errors.append(FieldError(name, str(exc)))

    attributes = {**extras, **values.pop("attributes", {})}
    attribute_errors = _attribute_errors(attributes)
    errors.extend(attribute_errors)
    if attribute_errors:
        bad = {e.field for e in attribute_errors}
        attributes = (
            {}
            if "attributes" in bad
            else {
                key: value
                for key, value in attributes.items()
                if f"attributes.{printable(key, _MAX_KEY_IN_MESSAGE)}" not in bad
            }
        )

    failed = {e.field for e in errors}
    if not failed & {"email", "phone"} and not (_present(values, "email") or _present(values, "phone")):
        errors.append(FieldError("email", "a lead needs an email or a phone"))
    return LeadIn(**values, attributes=attributes), errors


def _convert_field(name: str, value: Any, field_type: Any) -> Any:
    if name not in _LAX_FIELDS:
        return msgspec.convert(value, field_type)
    if isinstance(value, str):
        value = value.strip() or None
    converted = msgspec.convert(value, field_type, strict=False)
    if isinstance(converted, float) and not math.isfinite(converted):
        raise msgspec.ValidationError("Expected a finite number")
    return converted


def _attribute_errors(attributes: dict[str, Any]) -> list[FieldError]:
    if len(attributes) > MAX_ATTRIBUTES:
        # One error, not one per key: a flood of keys should not become a flood of errors.
        return [FieldError("attributes", f"at most {MAX_ATTRIBUTES} attributes, got {len(attributes)}")]
    errors = []
    for key, value in attributes.items():
        field = f"attributes.{printable(key, _MAX_KEY_IN_MESSAGE)}"
        try:
            msgspec.convert(key, _ATTRIBUTE_KEY_TYPE)
        except msgspec.ValidationError as exc:
            errors.append(FieldError(field, f"bad attribute name: {str(exc).split(' - at ')[0]}"))
            continue
        if problem := control_problem(value, free_text=True):
            errors.append(FieldError(field, problem))
            continue
        try:
            msgspec.convert(value, _AttrValue)
        except msgspec.ValidationError as exc:
            errors.append(FieldError(field, str(exc)))
    return errors


def _present(values: dict[str, Any], name: str) -> bool:
    value = values.get(name)
    return isinstance(value, str) and bool(value.strip())


_JSON_KINDS: dict[type, str] = {
    dict: "object",
    list: "array",
    str: "str",
    bool: "bool",
    int: "number",
    float: "number",
}


def _json_kind(value: Any) -> str:
    return "null" if value is None else _JSON_KINDS.get(type(value), type(value).__name__)
