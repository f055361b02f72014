"""A mapping's ``outcomes:`` section applied to one CRM record (pure).

A record (a Salesforce Lead or Opportunity, a HubSpot property-change event) is an outcome when
a rule's ``when`` values all match it; the first such rule decides. The outcome body it makes is
the ``POST /v1/leads/{id}/outcome`` JSON (checked later like any posted outcome); ``ignore``
means the record is neither an outcome nor a lead (an open Opportunity). The lead is named by
the record: the ``lead.attributes`` paths give values one of the lead's attributes holds (the
CRM id intake stored), then ``lead.email`` an email. docs/intake.md ("Outcomes from CRMs").
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from leadroute.inbound._format import OutcomeRule, Outcomes, _empty, _first, _get, _Rule, _rule
from leadroute.intake.normalize import normalize_email

__all__ = ["LeadKey", "OutcomeMap", "OutcomeMatch"]


class OutcomeMatch(msgspec.Struct, frozen=True):
    """The rule a record matched (its index), and the outcome body (None: ``ignore``)."""

    rule: int
    body: dict[str, Any] | None


class LeadKey(msgspec.Struct, frozen=True):
    """One way to find the record's lead: an attribute's value, or an email."""

    kind: Literal["attribute", "email"]
    value: str
    attribute: str = ""


def _text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)) and not _empty(value):
        return str(value).strip().lower()
    return None


def _paths(spec: str | list[str]) -> list[tuple[str, ...]]:
    return [tuple(p.split(".")) for p in ([spec] if isinstance(spec, str) else spec)]


class _Compiled(msgspec.Struct, frozen=True):
    when: tuple[tuple[tuple[str, ...], frozenset[str]], ...]
    outcome: str
    values: tuple[_Rule, ...]


def _compile(rule: OutcomeRule) -> _Compiled:
    when = tuple(
        (
            tuple(path.split(".")),
            frozenset(v.strip().lower() for v in ([want] if isinstance(want, str) else want)),
        )
        for path, want in rule.when.items()
    )
    values = tuple(
        _rule(name, spec)
        for name in ("amount", "currency", "at", "reason")
        if (spec := getattr(rule, name)) is not None
    )
    return _Compiled(when, rule.outcome, values)


class OutcomeMap:
    """A compiled ``outcomes:`` section."""

    __slots__ = ("_attributes", "_emails", "_rules", "section")

    def __init__(self, section: Outcomes) -> None:
        self.section = section
        self._rules = [_compile(rule) for rule in section.rules]
        self._attributes = [(name, _paths(spec)) for name, spec in section.lead.attributes.items()]
        self._emails = _paths(section.lead.email) if section.lead.email is not None else []

    def match(self, record: dict[str, Any]) -> OutcomeMatch | None:
        """The outcome ``record`` is, or None when no rule matches it (then it may be a lead)."""
        for i, rule in enumerate(self._rules):
            if all(_text(_get(record, path)) in wanted for path, wanted in rule.when):
                if rule.outcome == "ignore":
                    return OutcomeMatch(i, None)
                body: dict[str, Any] = {"outcome": rule.outcome}
                for value in rule.values:
                    if (found := _first(record, value)) is not None:
                        body[value.target] = found
                return OutcomeMatch(i, body)
        return None

    def lead_keys(self, record: dict[str, Any]) -> list[LeadKey]:
        """The ways ``record`` names its lead, in the order they are tried (duplicates dropped)."""
        keys: list[LeadKey] = []
        for attribute, paths in self._attributes:
            for path in paths:
                value = _get(record, path)
                if isinstance(value, (str, int)) and not isinstance(value, bool) and not _empty(value):
                    keys.append(LeadKey("attribute", str(value).strip(), attribute))
        for path in self._emails:
            value = _get(record, path)
            if isinstance(value, str) and not _empty(value):
                try:
                    keys.append(LeadKey("email", normalize_email(value)[0]))  # as leads store it
                except ValueError:
                    continue
        return list(dict.fromkeys(keys))
