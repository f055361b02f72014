"""The names rule expressions can use, and their rule-engine types.

Every section sees the lead's fields after normalization, by name (:class:`NormalizedLead`):
``str`` fields are ``STRING``, ``int``/``float`` are ``FLOAT``, ``bool`` is ``BOOLEAN``,
``datetime`` is ``DATETIME``. Types are the plain (not ``NULLABLE``) rule-engine types, so the
examples in docs/rules-format.md type-check as written; a missing value is ``null`` at run
time: ``==``, ``in`` and regex matches on ``null`` are simply false, while an ordered comparison
(``employees >= 1000`` with no ``employees``) raises, which counts as "not matched" and is
recorded as a rule error. Write ``(employees ?? 0) >= 1000`` to say what a missing value means.

Extra attributes: ``attributes`` is a rule-engine ``OBJECT`` whose members are exactly the
names declared under ``fields:`` (``attributes.form: STRING`` makes ``attributes.form`` usable
as a ``STRING``). A member that is declared but absent from a lead is ``null``; a member that
is not declared is an error at load time, naming the field and how to declare it.

Qualification adds ``score`` (the total, ``FLOAT``) and ``groups``, an ``OBJECT`` with one
``FLOAT`` member per scoring group (``groups.fit >= 30``). Routing adds ``stage`` (``STRING``).

Activity rules (``on_activity``) are evaluated against one activity, not the lead: its
``properties`` by name (``url``), ``type`` (``STRING``), ``occurred_at`` (``DATETIME``) and the
lead's facts under ``lead`` (``lead.title``, ``lead.attributes.form``). Activity properties are
free-form, so a property a rule uses is declared under ``fields:`` as ``activity.NAME: TYPE``,
exactly like ``attributes.NAME``: a typo (``ulr``) or a type mismatch (``url > 5``) is then a
load-time error naming the rule, instead of a rule that silently never matches.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec
import rule_engine
from rule_engine import DataType

from leadroute.models import Activity, NormalizedLead

__all__ = [
    "ACTIVITY_BUILTINS",
    "ATTRIBUTE_TYPES",
    "Section",
    "activity_facts",
    "context_for",
    "lead_field_types",
]

Section = typing.Literal["scoring", "activity", "qualification", "routing"]

ATTRIBUTE_TYPES: Mapping[str, Any] = {
    "STRING": DataType.STRING,
    "FLOAT": DataType.FLOAT,
    "BOOLEAN": DataType.BOOLEAN,
    "DATETIME": DataType.DATETIME,
    "ARRAY": DataType.ARRAY(DataType.UNDEFINED),
}
"""The types a ``fields:`` entry may declare."""

ACTIVITY_BUILTINS = ("type", "occurred_at", "lead")
"""Names activity rules see besides the declared properties (properties cannot use them)."""

_PY_TO_RULE: Mapping[type, Any] = {
    str: DataType.STRING,
    int: DataType.FLOAT,
    float: DataType.FLOAT,
    bool: DataType.BOOLEAN,
    datetime: DataType.DATETIME,
}


def _member(mapping: Any, name: str) -> Any:
    # OBJECT accessor for plain dicts: a declared member the lead lacks is null, not an error.
    return mapping.get(name) if isinstance(mapping, Mapping) else None


def lead_field_types() -> dict[str, Any]:
    """Rule-engine types of the :class:`NormalizedLead` fields (``attributes`` excepted)."""
    hints = typing.get_type_hints(NormalizedLead)
    result: dict[str, Any] = {}
    for field in msgspec.structs.fields(NormalizedLead):
        hint = hints[field.name]
        args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
            hint = args[0] if len(args) == 1 else hint
        if hint in _PY_TO_RULE:
            result[field.name] = _PY_TO_RULE[hint]
    return result


_LEAD_TYPES = lead_field_types()


def context_for(
    section: Section,
    attributes: Mapping[str, Any],
    groups: list[str],
    activity_properties: Mapping[str, Any] | None = None,
) -> rule_engine.Context:
    """The typed context a section's expressions are parsed and evaluated with."""
    symbols: dict[str, Any] = dict(_LEAD_TYPES)
    symbols["attributes"] = DataType.OBJECT("attributes", attributes=attributes, accessor=_member)
    if section == "activity":
        lead = DataType.OBJECT("lead", attributes=symbols, accessor=_member)
        symbols = dict(activity_properties or {})
        symbols.update(type=DataType.STRING, occurred_at=DataType.DATETIME, lead=lead)
    if section in ("qualification", "routing"):
        symbols["score"] = DataType.FLOAT
        members = dict.fromkeys(groups, DataType.FLOAT)
        symbols["groups"] = DataType.OBJECT("groups", attributes=members, accessor=_member)
    if section == "routing":
        symbols["stage"] = DataType.STRING
    return rule_engine.Context(  # the same options for every section (the compiler relies on it)
        type_resolver=rule_engine.type_resolver_from_dict(symbols),
        default_value=None,
        default_timezone="utc",
        mapping_attribute_lookup=False,
    )


def activity_facts(activity: Activity, lead_facts: Mapping[str, Any]) -> dict[str, Any]:
    """What an ``on_activity`` rule sees: the properties, ``type``, ``occurred_at`` and ``lead``.

    The built-in names win over properties of the same name.
    """
    facts = dict(activity.properties)
    facts["type"] = activity.type
    facts["occurred_at"] = activity.occurred_at
    facts["lead"] = lead_facts
    return facts
