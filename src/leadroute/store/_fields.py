"""Field rules the owners and pools repositories share: ids, skills, no NUL, one 422 per bad field.

:func:`checked` is how both turn merged admin fields into a validated ``OwnerIn`` or ``PoolIn``:
a field msgspec (or the Struct's ``__post_init__``) refuses is an :class:`InvalidField` naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

import msgspec

from leadroute.errors import ClientError
from leadroute.models import ID_MAX_LENGTH, ID_PATTERN

__all__ = ["Id", "InvalidField", "Skill", "checked", "no_nul"]

T = TypeVar("T")

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)]
"""Owner and pool ids: short, URL-safe, stable (they appear in rule files and history)."""
Skill = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class InvalidField(ClientError):
    """An owner or pool field is malformed (unknown timezone, bad working hours, ...)."""

    status = 422
    kind = "invalid-field"
    title = "Invalid field"


def no_nul(**fields: str | list[str] | None) -> None:
    """PostgreSQL text cannot hold NUL (U+0000): refuse it by field name, not as a driver error."""
    for name, value in fields.items():
        values = value if isinstance(value, list) else [value]
        if any(v is not None and "\x00" in v for v in values):
            raise ValueError(f"{name}: text may not contain the NUL character (U+0000)")


def checked(kind: type[T], data: Mapping[str, Any]) -> T:
    """Validate merged fields; a bad one is a 422 naming it (timezone, working hours, ...)."""
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as exc:
        text = str(exc)
        field = text.rpartition("$.")[2].rstrip("`").split("[")[0].split(".")[0] if "$." in text else "body"
        named = text.partition(":")[0]
        if field == "body" and named in kind.__struct_fields__:  # type: ignore[attr-defined]
            field = named
        if field == "body":
            for name in ("timezone", "working_hours", "out_of_office", "id"):
                if name in text:
                    field = name
                    break
        raise InvalidField(text, errors=[{"field": field, "message": text}]) from None
