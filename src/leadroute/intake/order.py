"""The one order of the errors and warnings in an answer, whatever order the body was sent in.

A form developer fixing a body, and a test comparing answers, both need the same list for the
same mistakes: fields in the order the schema lists them (:data:`FIELD_ORDER`, the OpenAPI
document's order), nested names after their parent by key (docs/intake.md, "Errors and warnings").
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from leadroute.models import LeadIn

__all__ = ["FIELD_ORDER", "error_order"]

FIELD_ORDER: tuple[str, ...] = tuple(f.name for f in msgspec.structs.fields(LeadIn))
"""The lead contract's fields in the order the schema (and the OpenAPI document) lists them."""
_RANK = {name: rank for rank, name in enumerate(FIELD_ORDER)}


def error_order(field: str, rank: Mapping[str, int] = _RANK) -> tuple[int, str, int, str]:
    """The stable order of errors and warnings in one answer: by the schema's field order
    (``rank``, :data:`FIELD_ORDER` for leads); names the schema does not list (``body``, an
    unknown event field) after those, by name; a nested name (``attributes.plan``) right after
    its parent (``attributes``), nested names by key. Several problems of one field keep the order
    they were found in (sort with this key: Python's sort is stable).
    """
    top, dot, rest = field.partition(".")
    known = rank.get(top)
    return (len(rank), top, 1 if dot else 0, rest) if known is None else (known, "", 1 if dot else 0, rest)
