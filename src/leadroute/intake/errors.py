"""Why a lead was refused at intake, field by field.

The exception tree::

    InvalidLead             one or more fields are wrong (HTTP 422, one entry per field)
    └── MalformedBody       the body is not JSON, or not a JSON object (HTTP 400)

Messages name the field and the rule it broke, not the submitted value (at most the offending
character of an email), so they are safe to log and to return to the caller.
"""

from __future__ import annotations

import msgspec

__all__ = ["FieldError", "InvalidLead", "MalformedBody"]


class FieldError(msgspec.Struct, frozen=True):
    """One problem with one field.

    ``field`` is the lead field's name; extra attributes are named ``attributes.<key>`` and a
    problem with the body as a whole is named ``body``.
    """

    field: str
    message: str


class InvalidLead(ValueError):
    """A lead that cannot be accepted; ``errors`` lists every bad field, in input order."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("invalid lead: " + ", ".join(e.field for e in errors))


class MalformedBody(InvalidLead):
    """The body is not JSON, or its top level is not an object; ``message`` says which."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__([FieldError("body", message)])

    def __str__(self) -> str:
        return self.message
