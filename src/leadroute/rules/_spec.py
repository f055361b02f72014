"""The rule-file format (documented in docs/rules-format.md) as msgspec Structs.

``routing:`` is a mapping with ``rules:`` (a list, first match wins), ``fallback:`` and an
optional default ``sla:``, not a list mixing rules and keys, which would not be valid YAML.

Two uses, one source of truth:

* The loader validates the file piece by piece (each scoring rule, each qualification entry...)
  with these Structs, so that one file can report several problems at once. :class:`TopSpec`
  and the ``*SectionSpec`` Structs are the not-yet-validated outlines it starts from.
* :class:`RulesetSpec` is the whole file, typed precisely. It is what the JSON Schema for
  editors is generated from (``leadroute rules schema``), and its canonical JSON encoding is
  what the ruleset's sha256 is taken over.

Docstrings and ``Meta(description=...)`` texts are shown by editors (VS Code YAML) as help, so
they are written for the people who edit rule files. ``omit_defaults``: an optional key left
out does not appear in the canonical form, so adding a new optional key to the format does not
change the checksum of files that do not use it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

import msgspec

from leadroute.models import ID_MAX_LENGTH, ID_PATTERN, QUEUE_PREFIX, Stage

__all__ = [
    "MAX_VERSION",
    "ActivitySpec",
    "ExpectSpec",
    "FieldType",
    "GroupSpec",
    "QualificationSpec",
    "RoutingRuleSpec",
    "RoutingSectionSpec",
    "RoutingSpec",
    "RulesetSpec",
    "ScoringRuleSpec",
    "ScoringSectionSpec",
    "ScoringSpec",
    "SlaSpec",
    "Spec",
    "TestSpec",
    "TopSpec",
]

FieldType = Literal["STRING", "FLOAT", "BOOLEAN", "DATETIME", "ARRAY"]
"""The types a ``fields:`` entry may declare (rule-engine type names)."""

MAX_VERSION = 2**31 - 1
"""The highest ``version:`` (versions are stored as PostgreSQL ``integer``)."""

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
FIELD_PATTERN = r"^(attributes|activity)\.[A-Za-z_][A-Za-z0-9_]*$"

Expression = Annotated[
    str,
    msgspec.Meta(
        description=(
            "A rule-engine expression over the lead's fields, e.g. 'title =~~ \"(?i)director\"'. "
            "Quote it in YAML. Missing values are null: write '(employees ?? 0) >= 1000'."
        ),
        examples=["(employees ?? 0) >= 1000", 'country in ["US", "CA"]', "is_free_email"],
    ),
]
RuleId = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        description="Unique across the file; decisions and explanations name rules by id.",
        examples=["senior-title"],
    ),
]
Description = Annotated[str, msgspec.Meta(description="Free text for people reading the rules.")]
Points = Annotated[
    float,
    msgspec.Meta(
        description="Points added to the group when the rule matches; negative points lower it.",
        examples=[10, -20],
    ),
]
Cap = Annotated[float, msgspec.Meta(description="The group's score is clamped to this (after decay).")]
HalfLife = Annotated[
    float,
    msgspec.Meta(
        gt=0,
        description=(
            "Points of on_activity rules in this group halve every this many days: "
            "points x 0.5 ** (age_days / half_life_days). Lead-level rules do not decay."
        ),
        examples=[14],
    ),
]
ACTIVITY_TYPE_PATTERN = r"^[a-z][a-z0-9_.]*$"
"""Activity event types, as ``POST /v1/events`` accepts them: ``page_view``, ``webinar.attended``."""
ActivityType = Annotated[str, msgspec.Meta(pattern=ACTIVITY_TYPE_PATTERN)]
ActivityTypes = Annotated[
    ActivityType | list[ActivityType],
    msgspec.Meta(
        description=(
            "Score this rule once per activity of this type (or of any of these types) instead "
            "of once per lead. Its 'when' sees the activity's properties (e.g. url), type, "
            "occurred_at, and the lead's fields as lead.NAME."
        ),
        examples=["page_view", ["webinar_attended", "webinar_registered"]],
    ),
]
PoolName = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=ID_MAX_LENGTH,
        pattern=ID_PATTERN,
        description="A routing pool (pools live in the database); a pool id like enterprise-na.",
    ),
]
QueueName = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=ID_MAX_LENGTH,
        pattern=ID_PATTERN,
        description=(
            "The queue a lead waits in when no rule or owner can take it; never a drop. "
            "Written like a pool id: letters, digits and _ . @ -, e.g. unassigned."
        ),
    ),
]
TestName = Annotated[
    str,
    msgspec.Meta(min_length=1, description="Shown by 'leadroute rules test' for each test; not empty."),
]
Minutes = Annotated[
    int, msgspec.Meta(ge=1, description="The owner must accept the lead within this many minutes.")
]


class Spec(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True, omit_defaults=True):
    """Base of every rule-file Struct."""

    # forbid_unknown_fields: a typo in a hand-edited file ("pionts: 10") must be an error naming
    # the key, never a silently ignored setting. frozen: parsed rules are shared by concurrent
    # evaluations. kw_only: field order carries no meaning in YAML. omit_defaults: see module.


class GroupSpec(Spec, frozen=True, kw_only=True):
    """A scoring group: its rules' points add up, then the total is clamped to min/max."""

    max: Cap | None = None
    min: Cap | None = None
    half_life_days: HalfLife | None = None


class ScoringRuleSpec(Spec, frozen=True, kw_only=True):
    """Adds 'points' to 'group' when 'when' matches the lead (or, with on_activity, each activity)."""

    id: RuleId
    group: Annotated[str, msgspec.Meta(description="A group declared under scoring.groups.")]
    when: Expression
    points: Points
    on_activity: ActivityTypes | None = None
    description: Description | None = None


class QualificationSpec(Spec, frozen=True, kw_only=True):
    """The lead reaches 'stage' when 'when' matches (no 'when': always). First match wins."""

    stage: Annotated[Stage, msgspec.Meta(description="disqualified, lead, mql or sql.")]
    id: RuleId | None = None
    when: Expression | None = None
    description: Description | None = None


class SlaSpec(Spec, frozen=True, kw_only=True):
    """How fast an owner must accept a routed lead, and what happens when they do not."""

    accept_within_minutes: Minutes
    on_breach: Annotated[
        Literal["reassign", "escalate"],
        msgspec.Meta(
            description="reassign: route the lead to someone else; escalate: notify the pool's escalate_to."
        ),
    ]


class RoutingRuleSpec(Spec, frozen=True, kw_only=True):
    """Where a lead goes when 'when' matches: a 'pool', or 'route: account_owner'. First pool match wins."""

    id: RuleId
    when: Expression
    pool: PoolName | None = None
    route: (
        Annotated[
            Literal["pool", "account_owner"],
            msgspec.Meta(
                description=(
                    "account_owner: the owner of the lead's company domain, when there is one and "
                    "they can take it; otherwise the next matching rule is tried. "
                    "pool (the default): the rule's 'pool'."
                )
            ),
        ]
        | None
    ) = None
    sla: SlaSpec | None = None
    description: Description | None = None


class ExpectSpec(Spec, frozen=True, kw_only=True):
    """What a test expects; only the keys given are checked."""

    stage: Stage | None = None
    pool: (
        Annotated[
            str,
            msgspec.Meta(
                pattern=f"^({QUEUE_PREFIX})?" + ID_PATTERN.removeprefix("^"),
                description=(
                    "The pool of the first matching pool rule, or 'queue:' and the fallback queue "
                    "(queue:unassigned) when no pool rule matches."
                ),
                examples=["enterprise-na", "queue:unassigned"],
            ),
        ]
        | None
    ) = None
    score: Annotated[float, msgspec.Meta(description="The total score (after caps and decay).")] | None = None
    matched: (
        Annotated[
            list[str], msgspec.Meta(description="Scoring rule ids that must all match (others may too).")
        ]
        | None
    ) = None
    targets: (
        Annotated[
            list[str],
            msgspec.Meta(
                description=(
                    "Ids of the routing rules that would place the lead, in order: "
                    "account_owner rules, then the first pool rule."
                )
            ),
        ]
        | None
    ) = None


class ActivitySpec(Spec, frozen=True, kw_only=True):
    """An activity of a test lead. Give 'age_days' (relative to the test's now) or 'occurred_at'."""

    type: Annotated[str, msgspec.Meta(pattern=ACTIVITY_TYPE_PATTERN, examples=["page_view"])]
    age_days: Annotated[float, msgspec.Meta(ge=0, description="How long before the test's now.")] | None = (
        None
    )
    occurred_at: Annotated[datetime, msgspec.Meta(tz=True)] | None = None
    properties: dict[str, Any] = msgspec.field(default_factory=dict)


class TestSpec(Spec, frozen=True, kw_only=True):
    """One test: a lead as a form would post it, optionally its activities, and what should happen."""

    __test__: ClassVar[bool] = False  # not a pytest test class

    name: TestName
    lead: Annotated[
        dict[str, Any],
        msgspec.Meta(
            description="Lead fields as posted (email, title, employees...); others become attributes."
        ),
    ]
    activities: list[ActivitySpec] = msgspec.field(default_factory=list)
    now: (
        Annotated[
            datetime,
            msgspec.Meta(tz=True, description="When the test is evaluated (decay is measured to it)."),
        ]
        | None
    ) = None
    expect: ExpectSpec


class TopSpec(Spec, frozen=True, kw_only=True):
    """The top level of a rule file, sections still unvalidated (they are checked one by one)."""

    version: int
    description: str = ""
    fields: dict[str, Any] = msgspec.field(default_factory=dict)
    scoring: dict[str, Any]
    qualification: list[Any]
    routing: dict[str, Any]
    tests: list[Any] = msgspec.field(default_factory=list)


class ScoringSectionSpec(Spec, frozen=True, kw_only=True):
    """``scoring:`` before its groups and rules are validated one by one."""

    groups: dict[str, Any]
    rules: list[Any] = msgspec.field(default_factory=list)


Reengaged = Annotated[
    Literal["route", "previous_owner"],
    msgspec.Meta(
        description=(
            "A person who comes back after the re-engagement window (LEADROUTE_REENGAGE_AFTER_DAYS) "
            "or after their lead was closed becomes a new lead. route (default): routed like any "
            "new lead; previous_owner: to the owner of their previous lead when that owner can take "
            "it (active, in hours, below capacity), else routed as usual."
        )
    ),
]


class RoutingSectionSpec(Spec, frozen=True, kw_only=True):
    """``routing:`` before its rules are validated one by one."""

    rules: list[Any]
    fallback: QueueName
    sla: Any = None
    reengaged: Reengaged = "route"


class ScoringSpec(Spec, frozen=True, kw_only=True):
    """Scoring: groups with caps, and rules adding points to them."""

    groups: dict[
        Annotated[str, msgspec.Meta(pattern=NAME_PATTERN)],
        Annotated[GroupSpec, msgspec.Meta(description="Group name: usable as groups.NAME in qualification.")],
    ]
    rules: list[ScoringRuleSpec] = msgspec.field(default_factory=list)


class RoutingSpec(Spec, frozen=True, kw_only=True):
    """Routing: rules in order, the queue used when no owner can be chosen, and a default SLA."""

    rules: list[RoutingRuleSpec]
    fallback: QueueName
    sla: (
        Annotated[SlaSpec, msgspec.Meta(description="The SLA of routing rules that do not set their own.")]
        | None
    ) = None
    reengaged: Reengaged = "route"


class RulesetSpec(Spec, frozen=True, kw_only=True):
    """A leadroute rule file: scoring, qualification, routing, and tests."""

    version: Annotated[
        int,
        msgspec.Meta(
            ge=1,
            le=MAX_VERSION,
            description="Bump on every change; each decision records version and checksum.",
        ),
    ]
    description: str = ""
    fields: Annotated[
        dict[Annotated[str, msgspec.Meta(pattern=FIELD_PATTERN)], FieldType],
        msgspec.Meta(
            description=(
                "Declared types of extra lead attributes (attributes.NAME) and of activity "
                "properties used by on_activity rules (activity.NAME)."
            ),
            examples=[{"attributes.form": "STRING", "activity.url": "STRING"}],
        ),
    ] = msgspec.field(default_factory=dict)
    scoring: ScoringSpec
    qualification: Annotated[
        list[QualificationSpec],
        msgspec.Meta(min_length=1, description="First match wins; end with {stage: lead}."),
    ]
    routing: RoutingSpec
    tests: Annotated[
        list[TestSpec], msgspec.Meta(description="Run by 'leadroute rules test' and before activation.")
    ] = msgspec.field(default_factory=list)
