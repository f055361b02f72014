"""Rule-file validation errors as sentences: what msgspec says, turned into what to change.

:func:`validation_problem` reports a failed ``msgspec.convert`` at the key it is about, with the
allowed keys for an unknown one, the rule for a pool id or an activity type, the choices for a
word from a short list, or how to write a value of the expected type. :func:`mapping_label` names
the nested mapping (a group, an SLA, a test's ``expect``) a problem is in.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import msgspec

from leadroute.models import ID_MAX_LENGTH, QUEUE_PREFIX, Stage
from leadroute.rules._spec import Spec
from leadroute.rules._yaml import Path as YamlPath
from leadroute.rules._yaml import missing_key, unknown_key, validation_path

__all__ = ["ACTIVITY_TYPE_HINT", "Report", "mapping_label", "validation_problem"]

_ENUM_VALUE = re.compile(r"^Invalid enum value (?P<value>.*)$")
ACTIVITY_TYPE_HINT = (
    "an activity type is written like the events posted to /v1/events: lower-case letters, digits, "
    "_ and . (e.g. page_view); 'on_activity' takes one or a list of them"
)
_ID_RULE = f"letters, digits and _ . @ -, starting with a letter or digit, at most {ID_MAX_LENGTH} characters"
_ID_HINTS: Mapping[str, str] = {
    "pool": f"'pool' must be a pool id ({_ID_RULE}), e.g. enterprise-na",
    "fallback": (f"'fallback' must name a queue, written like a pool id ({_ID_RULE}), e.g. unassigned"),
}
"""Keys naming a pool or a queue: an empty or malformed name is answered with the rule for ids."""
_CHOICES: Mapping[str, tuple[str, ...]] = {
    "stage": typing.get_args(Stage),
    "route": ("pool", "account_owner"),
    "on_breach": ("reassign", "escalate"),
}
"""Keys whose value is one of a few words: an invalid value is answered with the list."""


class Report(Protocol):
    """Records a problem at ``path`` (or at ``key`` of the mapping there)."""

    def __call__(
        self, path: YamlPath, message: str, *, rule_id: str | None = None, key: str | None = None
    ) -> None: ...


def validation_problem(
    report: Report, text: str, spec: type[Spec], path: YamlPath, rule_id: str | None
) -> None:
    """Report msgspec's error ``text`` for data at ``path`` validated as ``spec``."""
    message, rel = validation_path(text)
    segments: list[str | int] = [*path, *rel]
    if (unknown := unknown_key(message)) is not None:
        holder = _struct_at(spec, segments[len(path) :])
        allowed = ""
        if holder is not None:
            allowed = " (allowed: " + ", ".join(f.name for f in msgspec.structs.fields(holder)) + ")"
        report(
            segments,
            f"unknown key {unknown!r}{allowed}; remove it or fix its spelling",
            rule_id=rule_id,
            key=unknown,
        )
    elif (missing := missing_key(message)) is not None:
        report(segments, f"missing required key {missing!r}; add it", rule_id=rule_id)
    elif "Expected `str` matching regex" in message and (
        "on_activity" in segments or (segments[-1] == "type" and "activities" in segments)
    ):
        report(segments, ACTIVITY_TYPE_HINT, rule_id=rule_id)
    elif (
        segments
        and segments[-1] in _ID_HINTS
        and message.startswith(("Expected `str` of length", "Expected `str` matching regex"))
    ):
        hint = _ID_HINTS[str(segments[-1])]
        if "expect" in segments:
            hint += f", or {QUEUE_PREFIX}NAME for the fallback queue ({QUEUE_PREFIX}unassigned)"
        report(segments, hint, rule_id=rule_id)
    elif segments[:1] == ["tests"] and segments[-1] == "name" and message.startswith("Expected `str` of"):
        report(segments, "a test needs a 'name' (rules test reports each test by it); write one")
    elif (enum := _ENUM_VALUE.match(message)) and segments and segments[-1] in _CHOICES:
        key = str(segments[-1])
        choices = ", ".join(_CHOICES[key])
        report(segments, f"{key} {enum['value']} is not one of {choices}; use one of them", rule_id=rule_id)
    else:
        what = f"{segments[-1]!r}: " if segments and isinstance(segments[-1], str) else ""
        report(segments, what + message.replace("`", "'") + _type_hint(message), rule_id=rule_id)


_TYPE_HINTS: Sequence[tuple[str, str]] = (
    ("Expected `str`,", "; put the value in quotes"),
    ("Expected `str | array", "; write one word or a list like [a, b]"),
    ("Expected `str` of length", "; write a non-empty value"),
    ("Expected `float`,", "; write a number like 10 or -2.5"),
    ("Expected `int`,", "; write a whole number"),
    ("Expected `float` >", "; write a number in that range"),
    ("Expected `int` >", "; write a whole number in that range"),
    ("Expected `datetime` with a timezone", "; end the time with Z (UTC) or an offset like +02:00"),
    ("Expected `object`", "; write a mapping (key: value, or {key: value})"),
    ("Expected `array`", "; write a list (- item lines, or [a, b])"),
)
"""What to do about a msgspec type error, by how its message starts."""


def mapping_label(path: YamlPath) -> str | None:  # noqa: PLR0911 - one return per kind of mapping
    """How a problem at ``path`` names the nested mapping it is in, when the message must say it.

    Rules are named by their id and tests by their name; what is inside them (a group's
    settings, an SLA, a test's expect or activities) and the two sections checked as a whole
    are named here. Elsewhere None: the message already says where.
    """
    match list(path):
        case ["scoring", "groups", str(group), *_]:
            return f"group {group!r}"
        case ["scoring" | "routing" as section]:
            return section
        case ["routing", "sla", *_]:
            return "routing.sla"
        case ["routing", "rules", int(), "sla", *_]:
            return "sla"
        case ["tests", int(), "expect", *_]:
            return "expect"
        case ["tests", int(), "activities", int(number), *_]:
            return f"activities[{number}]"
    return None


def _struct_at(spec: type[Spec], segments: Sequence[str | int]) -> type[msgspec.Struct] | None:
    """The Struct the mapping at ``segments`` (relative to ``spec``) is validated as, if any."""
    info: Any = msgspec.inspect.type_info(spec)
    for segment in segments:
        info = _unwrapped(info)
        if isinstance(segment, int) and isinstance(info, msgspec.inspect.ListType):
            info = info.item_type
        elif isinstance(segment, str) and isinstance(info, msgspec.inspect.StructType):
            field = next((f for f in info.fields if f.encode_name == segment), None)
            if field is None:
                return None
            info = field.type
        else:
            return None
    info = _unwrapped(info)
    return info.cls if isinstance(info, msgspec.inspect.StructType) else None


def _unwrapped(info: Any) -> Any:
    """``X`` of ``Annotated[X, ...]`` and of ``X | None`` (the first Struct or list of a union)."""
    if isinstance(info, msgspec.inspect.Metadata):
        info = info.type
    if isinstance(info, msgspec.inspect.UnionType):
        kinds = (msgspec.inspect.StructType, msgspec.inspect.ListType, msgspec.inspect.Metadata)
        info = next((t for t in info.types if isinstance(t, kinds)), info)
        if isinstance(info, msgspec.inspect.Metadata):
            info = info.type
    return info


def _type_hint(message: str) -> str:
    return next((hint for start, hint in _TYPE_HINTS if message.startswith(start)), "; fix the value's type")
