"""The shapes that cross leadroute's edges: lead input, the normalized lead, decisions.

Every Struct here is plain data. The pure core (``intake``, ``scoring``, ``routing.choose``)
takes and returns these; the edges (``api``, ``store``, ``routing.state``) move them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

__all__ = [
    "ID_MAX_LENGTH",
    "ID_PATTERN",
    "MAX_ATTRIBUTES",
    "MAX_JSON_DEPTH",
    "QUEUE_PREFIX",
    "STAGE_ORDER",
    "Activity",
    "AttributeValue",
    "Decision",
    "FieldWarning",
    "GroupScore",
    "LeadIn",
    "NormalizedLead",
    "OwnerSkip",
    "RuleHit",
    "Stage",
    "stage_rank",
]

Stage = Literal["disqualified", "lead", "mql", "sql"]
"""The four qualification stages, lowest to highest (``disqualified`` stands apart)."""

STAGE_ORDER: tuple[Stage, ...] = ("disqualified", "lead", "mql", "sql")
"""Stages from lowest to highest, for "did the stage rise?" (``disqualified`` is lowest)."""


def stage_rank(stage: str) -> int:
    """The position of ``stage`` in :data:`STAGE_ORDER` (disqualified 0 < lead 1 < mql 2 < sql 3).

    Raises ``ValueError`` for a name that is not a stage.
    """
    try:
        return STAGE_ORDER.index(stage)
    except ValueError:
        raise ValueError(f"not a stage: {stage!r}; stages are {', '.join(STAGE_ORDER)}") from None


ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$"
"""Owner, pool and queue ids: letters, digits and ``_ . @ -``, starting with a letter or digit.

Short, URL-safe and stable: they appear in rule files, in the API's paths and in history.
"""
ID_MAX_LENGTH = 64
"""The longest owner, pool or queue id."""

QUEUE_PREFIX = "queue:"
"""Where a lead goes, written as one word: a pool id, or ``queue:NAME`` when no pool rule matched.

Replay's pool column and rule-file tests' ``expect: {pool: ...}`` use it; ids cannot hold ':'.
"""

MAX_ATTRIBUTES = 50
"""At most this many extra attributes per lead: a form is not a document store."""

MAX_JSON_DEPTH = 8
"""The deepest nesting of arrays and objects in a lead or activity body (they use 3: the body,
``attributes`` or ``properties``, a list value). Deeper is a 400 before any field is read."""

Short = Annotated[str, msgspec.Meta(max_length=255)]
Text = Annotated[str, msgspec.Meta(max_length=2000)]
AttributeKey = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
AttributeScalar = str | int | float | bool | None
AttributeValue = AttributeScalar | list[AttributeScalar]


class LeadIn(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One lead event as web forms and CRMs post it (the CRM contract in DESIGN.md).

    Every field is optional except that a lead must be reachable: ``email`` or ``phone``.
    Fields the contract does not name are kept in ``attributes``, never dropped.
    """

    event_id: Short | None = None
    occurred_at: datetime | None = None
    source: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    email: Annotated[str, msgspec.Meta(max_length=320)] | None = None
    first_name: Short | None = None
    last_name: Short | None = None
    phone: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    title: Short | None = None
    company: Short | None = None
    website: Text | None = None
    country: Short | None = None
    region: Short | None = None
    city: Short | None = None
    employees: Annotated[int, msgspec.Meta(ge=0, le=10_000_000)] | None = None
    annual_revenue: Annotated[float, msgspec.Meta(ge=0)] | None = None
    industry: Short | None = None
    utm_source: Short | None = None
    utm_medium: Short | None = None
    utm_campaign: Short | None = None
    attributes: dict[AttributeKey, AttributeValue] = msgspec.field(default_factory=dict)


class NormalizedLead(msgspec.Struct, kw_only=True, frozen=True):
    """A lead after normalization: what rules see, and what is stored.

    ``email`` is lower-cased and syntax-checked, ``phone_e164`` is E.164 or None, ``country`` is
    ISO 3166-1 alpha-2 or None, ``company_domain`` comes from the website or, for a corporate
    address, the email.
    """

    source: str | None = None
    email: str | None = None
    email_domain: str | None = None
    is_free_email: bool = False
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    phone_e164: str | None = None
    title: str | None = None
    company: str | None = None
    website: str | None = None
    company_domain: str | None = None
    country: str | None = None
    region: str | None = None
    city: str | None = None
    employees: int | None = None
    annual_revenue: float | None = None
    industry: str | None = None
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    occurred_at: datetime | None = None
    attributes: dict[str, Any] = msgspec.field(default_factory=dict)

    def facts(self) -> dict[str, Any]:
        """The mapping rule expressions are evaluated against."""
        return msgspec.structs.asdict(self)


class Activity(msgspec.Struct, frozen=True, kw_only=True):
    """Something a known lead did: a page view, a form, an email click, a webinar...

    ``on_activity`` rules see ``properties`` as top-level names (``url``), plus ``type``,
    ``occurred_at`` and the lead's own facts under ``lead.`` (see ``leadroute.rules._facts``).
    """

    type: str
    """``page_view``, ``form_submit``, ``email_click``, ``webinar_attended``, ..."""
    occurred_at: datetime
    """When it happened (timezone-aware); activity points decay from this instant."""
    properties: dict[str, Any] = msgspec.field(default_factory=dict)


class RuleHit(msgspec.Struct, frozen=True, omit_defaults=True):
    """A scoring rule that matched, with the points it gave.

    For an ``on_activity`` rule there is one hit per matching activity: ``activity`` is its
    type, ``occurred_at`` its time, ``points`` the points after decay and ``decay`` the factor
    applied (``0.5 ** (age_days / half_life_days)``; 1 when the group has no half-life).
    Lead-level hits leave those three unset (and they are omitted from JSON).
    """

    rule: str
    group: str
    points: float
    activity: str | None = None
    occurred_at: datetime | None = None
    decay: float | None = None


class GroupScore(msgspec.Struct, frozen=True):
    """One scoring group's total: the raw sum of its rules, and after its caps."""

    raw: float
    score: float
    max: float | None = None
    min: float | None = None


class OwnerSkip(msgspec.Struct, frozen=True):
    """An owner passed over while routing, why, and in which pool (None: the account owner).

    Reasons: ``excluded``, ``inactive``, ``out_of_office``, ``off_hours``, ``missing_skill``,
    ``over_capacity``, ``daily_cap`` (see ``leadroute.routing.eligibility``).
    """

    owner: str
    reason: str
    pool: str | None = None


class FieldWarning(msgspec.Struct, frozen=True):
    """A field that was accepted although it is not usable, and what was done with it.

    The lead is stored and routed anyway (an invalid phone next to a valid email, a website
    that is not an address, an unknown country): the field keeps the value as sent, the value
    derived from it is empty, and the lead's ``lead.received`` event records the warning.
    ``field`` is named as in errors (``phone``, ``website``, ``country``).
    """

    field: str
    message: str


class Decision(msgspec.Struct, kw_only=True):
    """What leadroute decided for one lead event; the body of the intake response."""

    lead_id: str
    score: float
    groups: dict[str, float]
    stage: Stage
    matched: list[RuleHit]
    pool: str | None
    owner: str | None
    status: Literal["assigned", "unassigned", "pending"]
    """``pending``: routing state (Redis) was unreachable; the lead is stored and scored, and is
    routed, in arrival order, as soon as it is back."""
    reason: str | None
    routing_rule: str | None
    ruleset_version: int
    ruleset_sha256: str
    warnings: list[FieldWarning] = msgspec.field(default_factory=list)
    """Fields accepted with a problem (see :class:`FieldWarning`); empty when there are none."""
    merged: bool = False
    """True: the lead event was merged into the existing lead of the same person (``lead_id`` is
    that lead's; answered 200), which keeps its owner. See docs/intake.md."""
