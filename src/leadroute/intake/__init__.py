"""Lead intake: request body to a checked, normalized lead.

``parse_lead`` turns body bytes into a :class:`~leadroute.models.LeadIn`, and ``normalize``
turns that into the :class:`~leadroute.models.NormalizedLead` rules see. Both are pure and
raise :class:`InvalidLead` listing every bad field; ``read_lead`` does both and names the
bad fields of both steps in one error (:class:`MalformedBody` when the body is
not a JSON object).
"""

from __future__ import annotations

from leadroute.intake.errors import FieldError, InvalidLead, MalformedBody
from leadroute.intake.events import ActivityEventIn, InvalidEvent, parse_event
from leadroute.intake.normalize import (
    DEFAULT_POLICY,
    FREE_EMAIL_DOMAINS,
    FieldPolicy,
    normalize,
    normalize_checked,
    normalize_email,
)
from leadroute.intake.parse import FIELD_ORDER, ReadLead, error_order, parse_lead, read_lead

__all__ = [
    "DEFAULT_POLICY",
    "FIELD_ORDER",
    "FREE_EMAIL_DOMAINS",
    "ActivityEventIn",
    "FieldError",
    "FieldPolicy",
    "InvalidEvent",
    "InvalidLead",
    "MalformedBody",
    "ReadLead",
    "error_order",
    "normalize",
    "normalize_checked",
    "normalize_email",
    "parse_event",
    "parse_lead",
    "read_lead",
]
