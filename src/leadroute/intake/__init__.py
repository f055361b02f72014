"""Lead intake: request body to a checked, normalized lead.

``parse_lead`` turns body bytes into a :class:`~leadroute.models.LeadIn`, and ``normalize``
turns that into the :class:`~leadroute.models.NormalizedLead` rules see. Both are pure and
raise :class:`InvalidLead` listing every bad field (:class:`MalformedBody` when the body is
not a JSON object).
"""

from __future__ import annotations

from leadroute.intake.errors import FieldError, InvalidLead, MalformedBody
from leadroute.intake.events import ActivityEventIn, InvalidEvent, parse_event
from leadroute.intake.normalize import FREE_EMAIL_DOMAINS, normalize, normalize_email
from leadroute.intake.parse import parse_lead

__all__ = [
    "FREE_EMAIL_DOMAINS",
    "ActivityEventIn",
    "FieldError",
    "InvalidEvent",
    "InvalidLead",
    "MalformedBody",
    "normalize",
    "normalize_email",
    "parse_event",
    "parse_lead",
]
