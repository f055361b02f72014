"""Merging a person's new lead event into their stored lead (pure).

Field by field (:func:`merge_into`): a value the new event does not give keeps the stored one; an
empty stored field is *filled*; a different value *changes* it, and the old value is recorded. The
stored lead's ``source`` and ``occurred_at`` stay (first touch: where and when the person first
came in; the merged event's source is on its ``lead.merged`` event). ``is_free_email`` follows the
email that wins. Extra attributes merge key by key, recorded as ``attributes.NAME``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from leadroute.models import NormalizedLead

__all__ = ["Merged", "merge_into"]

_KEPT = frozenset({"source", "occurred_at", "is_free_email", "attributes"})
"""Fields not merged value by value (see the module docstring)."""
_FIELDS = tuple(f for f in NormalizedLead.__struct_fields__ if f not in _KEPT)


class Merged(msgspec.Struct, frozen=True, kw_only=True):
    """The lead after the merge, and what the merge filled and changed (old, new)."""

    lead: NormalizedLead
    filled: dict[str, Any]
    changed: dict[str, tuple[Any, Any]]


def _json(value: Any) -> Any:
    return msgspec.to_builtins(value)


def merge_into(stored: NormalizedLead, new: NormalizedLead) -> Merged:
    """``new`` merged into ``stored`` (see the module docstring)."""
    values: dict[str, Any] = {}
    filled: dict[str, Any] = {}
    changed: dict[str, tuple[Any, Any]] = {}
    for name in _FIELDS:
        old, value = getattr(stored, name), getattr(new, name)
        if value is None or value == old:
            continue
        values[name] = value
        if old is None:
            filled[name] = _json(value)
        else:
            changed[name] = (_json(old), _json(value))
    attributes = dict(stored.attributes)
    for key, value in new.attributes.items():
        old = attributes.get(key)
        if value is None or value == old:
            continue
        attributes[key] = value
        if old is None:
            filled[f"attributes.{key}"] = value
        else:
            changed[f"attributes.{key}"] = (old, value)
    if "email" in values:
        values["is_free_email"] = new.is_free_email
    lead = msgspec.structs.replace(stored, **values, attributes=attributes)
    return Merged(lead=lead, filled=filled, changed=changed)
