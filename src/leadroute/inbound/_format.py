"""The mapping file format, and applying a mapping to a source payload (pure).

A mapping file turns what a CRM or a form sends into a lead body (the ``POST /v1/leads`` JSON)::

    version: 1                      # a stored version never changes: bump it with every change
    description: HubSpot contacts
    source: hubspot                 # the lead's `source` (unless a field maps one)
    unmapped: drop                  # or `attributes`: the payload's other fields become attributes
    unmapped_from: properties       # where those "other fields" are (default: the top level)
    fields:                         # lead field: where its value comes from in the payload
      email: properties.email
      company: [properties.company, properties.associatedcompany]    # the first one present
      employees: {from: properties.numemployees, transform: integer}
    attributes:                     # extra attributes: name: path (same forms as fields)
      hubspot_contact_id: id
    tests:                          # sample payload in, the lead body it must become
      - name: a new contact
        input: {...}
        expect: {...}
    outcomes:                       # optional: CRM records that are outcomes, not leads
      lead:                         # how a record names its lead, tried in this order
        attributes: {hubspot_contact_id: objectId}    # a lead attribute: path(s) holding its value
        email: properties.email     # then the lead with this email
      rules:                        # the first rule whose `when` all match decides
        - when: {propertyName: lifecyclestage, propertyValue: customer}
          outcome: won              # converted, won, lost, disqualified_by_sales, or ignore
          at: {from: occurredAt, transform: epoch_ms}
          amount: ...               # also currency, reason: paths, like fields
      tests:                        # sample record in, the outcome it must be (null: none)
        - {name: ..., input: {...}, expect: {outcome: won, at: ...}}

A path is keys separated by dots (``Account.Name``). Empty values (missing, ``null``, ``""``)
count as absent. Field names starting with ``_`` (form control fields such as ``_redirect``) are
never carried over as attributes.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec

from leadroute.models import MAX_ATTRIBUTES, LeadIn

__all__ = [
    "ATTRIBUTE_NAME",
    "LEAD_FIELDS",
    "TRANSFORMS",
    "FieldSpec",
    "LeadLookup",
    "Mapping",
    "MappingFile",
    "MappingTest",
    "OutcomeRule",
    "OutcomeTest",
    "Outcomes",
    "Spec",
    "canonical_sha256",
]

LEAD_FIELDS: frozenset[str] = frozenset(f.name for f in msgspec.structs.fields(LeadIn)) - {"attributes"}
"""The lead fields a mapping may fill (``attributes`` are filled by its ``attributes:`` section)."""

ATTRIBUTE_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_ATTRIBUTE = re.compile(ATTRIBUTE_NAME)
_NOT_NAME = re.compile(r"[^A-Za-z0-9_]")

SourcePath = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^.\s][^\s]*$")]
"""Where a value is in the payload: keys separated by dots (``properties.email``)."""


def _integer(value: Any) -> Any:
    """A whole number; ``"1,200"`` is 1200, and a range (``"25-50"``, ``"1000+"``, HubSpot's
    ``numemployees`` options) is its lower bound. Anything else is passed on for the lead to refuse."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    if isinstance(value, str):
        found = re.match(r"^\s*(\d[\d,]*)(?:\.\d+)?\s*(?:[-+].*)?$", value)
        if found:
            return int(found[1].replace(",", ""))
    return value


def _number(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value.replace(",", "").strip())
        except ValueError:
            return value
    return value


def _epoch_ms(value: Any) -> Any:
    """Milliseconds since the epoch (HubSpot's ``occurredAt``) as an ISO 8601 UTC time."""
    try:
        millis = int(value)
    except (TypeError, ValueError):
        return value
    return datetime.fromtimestamp(millis / 1000, UTC).isoformat().replace("+00:00", "Z")


def _datetime(value: Any) -> Any:
    """A date or a date-time as RFC 3339 UTC: Salesforce's ``CloseDate`` (``2026-11-30``, that
    day at 00:00 UTC) and its ``+0000`` offsets (``2026-11-23T15:00:00.000+0000``)."""
    if not isinstance(value, str):
        return value
    try:
        parsed = datetime.fromisoformat(value.strip().replace("z", "Z"))
    except ValueError:
        return value
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _text(case: Callable[[str], str]) -> Callable[[Any], Any]:
    return lambda value: case(value) if isinstance(value, str) else value


TRANSFORMS: dict[str, Callable[[Any], Any]] = {
    "integer": _integer,
    "number": _number,
    "string": lambda value: str(value).lower() if isinstance(value, bool) else str(value),
    "lower": _text(str.lower),
    "upper": _text(str.upper),
    "epoch_ms": _epoch_ms,
    "datetime": _datetime,
}
"""The transforms a field may name: small on purpose (the normalizer does the real cleaning)."""

Transform = Literal["integer", "number", "string", "lower", "upper", "epoch_ms", "datetime"]


class FieldSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The long form of a field: ``{from: path or [paths], transform: name}``."""

    from_: SourcePath | list[SourcePath] = msgspec.field(name="from")
    transform: Transform | None = None


Spec = SourcePath | list[SourcePath] | FieldSpec


class MappingTest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A sample payload and the lead body the mapping must make of it (compared whole)."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    input: dict[str, Any]
    expect: dict[str, Any]


Matched = Annotated[str, msgspec.Meta(max_length=200)] | list[Annotated[str, msgspec.Meta(max_length=200)]]
"""What a ``when`` path must hold: a value or any of a list (as text, without case: ``true``
matches Salesforce's ``true`` and JSON's ``true``)."""


class OutcomeRule(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """When a record holds these values, it is this outcome (``ignore``: no outcome and no lead)."""

    when: Annotated[dict[SourcePath, Matched], msgspec.Meta(min_length=1)]
    outcome: Literal["converted", "won", "lost", "disqualified_by_sales", "ignore"]
    amount: Spec | None = None
    currency: Spec | None = None
    at: Spec | None = None
    reason: Spec | None = None


class LeadLookup(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """How a record names its lead: lead attributes holding a record id, then an email."""

    attributes: dict[str, SourcePath | list[SourcePath]] = msgspec.field(default_factory=dict)
    email: SourcePath | list[SourcePath] | None = None


class OutcomeTest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A sample record and the outcome body it must make (``null``: not an outcome)."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    input: dict[str, Any]
    expect: dict[str, Any] | None


class Outcomes(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The ``outcomes:`` section: which records are outcomes, and of which lead."""

    lead: LeadLookup
    rules: Annotated[list[OutcomeRule], msgspec.Meta(min_length=1)]
    tests: list[OutcomeTest] = msgspec.field(default_factory=list)


class MappingFile(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A mapping file as written. ``forbid_unknown_fields``: a typo (``feilds:``) is an error
    with its line, not a silently ignored section."""

    version: Annotated[int, msgspec.Meta(ge=1)]
    description: str = ""
    source: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    unmapped: Literal["drop", "attributes"] = "drop"
    unmapped_from: SourcePath | None = None
    fields: dict[str, Spec] = msgspec.field(default_factory=dict)
    attributes: dict[str, Spec] = msgspec.field(default_factory=dict)
    thank_you_url: Annotated[str, msgspec.Meta(pattern=r"^https?://\S+$", max_length=2000)] | None = None
    """Forms only: where a form that asks for it (``_redirect``) is sent after a lead is taken."""
    tests: list[MappingTest] = msgspec.field(default_factory=list)
    outcomes: Outcomes | None = None
    """CRM records that say what became of a lead (``_outcomes``): recorded, not taken as leads."""


class _Rule(msgspec.Struct, frozen=True):
    target: str
    paths: tuple[tuple[str, ...], ...]
    transform: Callable[[Any], Any] | None


def _rule(target: str, spec: Spec) -> _Rule:
    match spec:
        case str():
            paths, transform = [spec], None
        case list():
            paths, transform = spec, None
        case FieldSpec():
            paths = spec.from_ if isinstance(spec.from_, list) else [spec.from_]
            transform = TRANSFORMS[spec.transform] if spec.transform else None
    return _Rule(target, tuple(tuple(p.split(".")) for p in paths), transform)


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value == []


def _get(payload: Any, path: tuple[str, ...]) -> Any:
    for segment in path:
        if not isinstance(payload, dict):
            return None
        payload = payload.get(segment)
    return payload


def _attribute_name(key: str) -> str:
    name = _NOT_NAME.sub("_", key)[:64]
    return name if _ATTRIBUTE.match(name) else f"_{name}"[:64]


def _scalar_or_list(value: Any) -> bool:
    scalar = (str, int, float, bool)
    return isinstance(value, scalar) or (
        isinstance(value, list) and all(isinstance(v, scalar) for v in value)
    )


class Mapping:
    """A loaded mapping: its file's content, identity (name, version, sha256) and compiled rules."""

    __slots__ = (
        "_attributes",
        "_fields",
        "_rest",
        "file",
        "name",
        "outcomes",
        "path",
        "sha256",
        "source_text",
    )

    def __init__(self, name: str, file: MappingFile, *, path: str, sha256: str, source_text: str) -> None:
        self.name = name
        self.file = file
        self.path = path
        self.sha256 = sha256
        self.source_text = source_text
        self._fields = [_rule(target, spec) for target, spec in file.fields.items()]
        self._attributes = [_rule(target, spec) for target, spec in file.attributes.items()]
        self._rest = tuple(file.unmapped_from.split(".")) if file.unmapped_from else ()
        from leadroute.inbound._outcomes import OutcomeMap

        self.outcomes = OutcomeMap(file.outcomes) if file.outcomes is not None else None

    @property
    def version(self) -> int:
        return self.file.version

    def apply(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The lead body this mapping makes of ``payload`` (checked later, like any posted lead).

        Order of the body: fields as written, then ``source``, then
        ``attributes`` (mapped ones win over unmapped ones of the same name)."""
        body: dict[str, Any] = {}
        for rule in self._fields:
            if (value := _first(payload, rule)) is not None:
                body[rule.target] = value
        if self.file.source is not None and "source" not in body:
            body["source"] = self.file.source
        attributes: dict[str, Any] = {}
        if self.file.unmapped == "attributes":
            rest = _get(payload, self._rest) if self._rest else payload
            if isinstance(rest, dict):
                used = self._used()
                for key, value in rest.items():
                    if key in used or key.startswith("_") or _empty(value) or not _scalar_or_list(value):
                        continue
                    if len(attributes) >= MAX_ATTRIBUTES:
                        break  # the mapped attributes below still get their place
                    attributes[_attribute_name(key)] = value
        for rule in self._attributes:
            if (value := _first(payload, rule)) is not None:
                attributes[rule.target] = value
        if attributes:
            body["attributes"] = attributes
        return body

    def paths(self) -> list[tuple[str, ...]]:
        """Every source path this mapping reads, as segments."""
        return [path for rule in (*self._fields, *self._attributes) for path in rule.paths]

    def _used(self) -> set[str]:
        """The first segments under ``unmapped_from`` that some rule reads (not "unmapped")."""
        used: set[str] = set()
        n = len(self._rest)
        for rule in (*self._fields, *self._attributes):
            for path in rule.paths:
                if path[:n] == self._rest and len(path) > n:
                    used.add(path[n])
        return used


def _first(payload: dict[str, Any], rule: _Rule) -> Any:
    for path in rule.paths:
        value = _get(payload, path)
        if not _empty(value):
            if isinstance(value, str):
                value = value.strip()
            return rule.transform(value) if rule.transform is not None else value
    return None


_canonical = msgspec.json.Encoder(order="sorted").encode


def canonical_sha256(data: Any) -> str:
    """sha256 of the parsed file as canonical JSON: comments and formatting do not count."""
    return hashlib.sha256(_canonical(data)).hexdigest()
