"""Why a lead was refused at intake, field by field (defined in :mod:`leadroute.errors`).

The exception tree::

    InvalidLead             one or more fields are wrong (HTTP 422, one entry per field)
    └── MalformedBody       the body is not JSON, or not a JSON object (HTTP 400)

Messages name the field and the rule it broke, not the submitted value (at most the offending
character of an email), so they are safe to log and to return to the caller.
"""

from __future__ import annotations

from leadroute.errors import FieldError, InvalidLead, MalformedBody

__all__ = ["FieldError", "InvalidLead", "MalformedBody"]
