"""A dry run of one lead: the full decision and its explanation, with nothing written or claimed.

The lead goes through the same parsing and normalization as ``POST /v1/leads`` and the same
``evaluate`` as intake; routing stops at the targets (which pools, or the account owner, would
be tried). Who sits in those pools, and whether routing's eligibility rules would let them take
a lead now, is read from PostgreSQL; no owner is picked: picking would advance round-robin
cursors and claim capacity in Redis, and a dry run makes no Redis call at all.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

import msgspec

from leadroute.errors import ClientError
from leadroute.intake import InvalidLead, normalize, parse_lead
from leadroute.intake.errors import FieldError, MalformedBody
from leadroute.models import Activity, NormalizedLead, RuleHit, Stage
from leadroute.replay._report import RulesetInfo
from leadroute.replay._source import chosen_ruleset, stored_lead
from leadroute.routing.assign import member_from_row
from leadroute.routing.eligibility import Member, PoolRules, skip_reason
from leadroute.routing.placement import MAX_FALLBACK_HOPS  # the answer follows as many hops as routing
from leadroute.runtime import Runtime
from leadroute.scoring import Evaluation, RouteTarget, evaluate
from leadroute.store.db import Connection
from leadroute.store.queries import QUERIES
from leadroute.structs import FrozenStruct, Struct
from leadroute.workflow.writer import explanation

__all__ = [
    "MAX_ACTIVITIES",
    "InvalidBody",
    "RoutingView",
    "SimulateIn",
    "SimulationAnswer",
    "parse_simulation",
    "routing_view",
    "simulate",
    "simulation_answer",
]

MAX_ACTIVITIES = 1000
MAX_RULESET_CHARS = 1024 * 1024

EventType = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.]*$")]


class ActivityIn(FrozenStruct, frozen=True, kw_only=True):
    """An activity to score with the lead, as ``POST /v1/events`` takes it (without the lead)."""

    type: EventType
    occurred_at: Annotated[datetime, msgspec.Meta(tz=True)]
    properties: Annotated[dict[str, Any], msgspec.Meta(max_length=50)] = msgspec.field(default_factory=dict)


class SimulateIn(FrozenStruct, frozen=True, kw_only=True):
    """The body of ``POST /v1/simulate``.

    ``lead`` (as ``POST /v1/leads`` takes it) or ``lead_id`` (a stored lead, with its stored
    activities) is the lead. ``ruleset_version`` (a stored version) or ``ruleset`` (YAML text)
    picks the ruleset; neither means the active one. ``activities`` are added to the lead's.
    ``now`` is the moment activity decay is measured to (default: now).
    """

    lead: dict[str, Any] | None = None
    lead_id: uuid.UUID | None = None
    ruleset_version: int | None = None
    ruleset: Annotated[str, msgspec.Meta(max_length=MAX_RULESET_CHARS)] | None = None
    activities: Annotated[list[ActivityIn], msgspec.Meta(max_length=MAX_ACTIVITIES)] = msgspec.field(
        default_factory=list
    )
    now: Annotated[datetime, msgspec.Meta(tz=True)] | None = None


class InvalidBody(ClientError):
    """A request body (simulate, replay) is not of the documented shape; ``errors`` names the field."""

    status = 422
    kind = "invalid-request"
    title = "Invalid request"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", errors=[{"field": field, "message": message}])

    @classmethod
    def from_validation(cls, exc: msgspec.ValidationError) -> InvalidBody:
        """msgspec's ``Expected ... - at `$.activities[0].type``` as field ``activities[0].type``."""
        message, sep, where = str(exc).rpartition(" - at `")
        if not sep:
            return cls("body", str(exc))
        return cls(where.rstrip("`").removeprefix("$.").removeprefix("$") or "body", message)


_DECODER = msgspec.json.Decoder(SimulateIn)
_ANY = msgspec.json.Decoder()


def parse_simulation(body: bytes) -> SimulateIn:
    """The checked body of ``POST /v1/simulate`` (its lead is normalized by :func:`simulate`).

    Raises :class:`MalformedBody` (not a JSON object) or :class:`InvalidBody` (a body field
    is wrong, or not exactly one of ``lead`` and ``lead_id`` is given).
    """
    try:
        raw = _ANY.decode(body)
    except msgspec.DecodeError as exc:
        raise MalformedBody(f"body is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise MalformedBody("body must be a JSON object with a lead or a lead_id")
    try:
        request = _DECODER.decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidBody.from_validation(exc) from None
    if request.ruleset is not None and request.ruleset_version is not None:
        raise InvalidBody("ruleset", "give ruleset or ruleset_version, not both")
    if (request.lead is None) == (request.lead_id is None):
        raise InvalidBody("lead", "give the lead (its fields) or lead_id (a stored lead), one of them")
    return request


def _posted_lead(request: SimulateIn) -> NormalizedLead | None:
    """The body's lead normalized like a posted lead; every bad field is named ``lead.<field>``."""
    if request.lead is None:
        return None
    try:
        return normalize(parse_lead(msgspec.json.encode(request.lead)))
    except InvalidLead as exc:
        raise InvalidLead([FieldError(f"lead.{e.field}", e.message) for e in exc.errors]) from None


async def simulate(rt: Runtime, request: SimulateIn) -> SimulationAnswer:
    """Score, qualify and choose routing targets for the body's lead (or a stored lead), under the
    active ruleset, a stored version or YAML text; writes nothing and claims no owner.

    Raises :class:`InvalidLead` (a bad ``lead.<field>``), :class:`InvalidBody` (``lead_id`` names
    no readable lead) or what :func:`chosen_ruleset` raises for the ruleset.
    """
    lead = _posted_lead(request)
    activities = [
        Activity(type=a.type, occurred_at=a.occurred_at, properties=a.properties) for a in request.activities
    ]
    as_of = request.now or rt.clock()
    active = rt.rules  # one reference for the whole request
    async with rt.db.acquire() as conn:
        if request.lead_id is not None:
            stored = await stored_lead(conn, request.lead_id)
            if stored is None:
                raise InvalidBody("lead_id", "no stored lead has this id")
            if stored.lead is None:
                raise InvalidBody("lead_id", "this lead's stored form no longer reads as a lead")
            lead, activities = stored.lead, stored.activities + activities
        assert lead is not None  # parse_simulation requires lead or lead_id
        chosen = await chosen_ruleset(
            conn, text=request.ruleset, version=request.ruleset_version, field="ruleset_version"
        )
        ruleset, source = chosen or (active.ruleset, "active")
        evaluation = evaluate(ruleset, lead, activities=activities, now=as_of)
        view = await routing_view(conn, evaluation.targets, lead, as_of)
    return simulation_answer(evaluation, lead, view=view, source=source, as_of=as_of)


class RoutingView(Struct, kw_only=True):
    """What PostgreSQL says about the places routing would try (read only, capacity aside)."""

    pools: dict[str, dict[str, Any]]
    """Pool id → settings and members, each member ``available`` now or skipped with a ``reason``."""
    account_owner: dict[str, Any] | None = None
    """The lead's company's recorded account owner and whether they could take it now."""


def _availability(member: Member, rules: PoolRules, now: datetime) -> dict[str, Any]:
    reason = skip_reason(member, rules, now)
    return {"id": member.id, "available": reason is None, "reason": reason}


async def routing_view(
    conn: Connection, targets: Sequence[RouteTarget], lead: NormalizedLead, now: datetime
) -> RoutingView:
    """Read the target pools (and the pools their fallbacks lead to) and the account owner.

    Eligibility is routing's own (:func:`leadroute.routing.eligibility.skip_reason`: active, out of
    office, working hours, required skill) at ``now``. Capacity is not checked: its counters live
    in Redis, and a dry run reads no routing state.
    """
    pools: dict[str, dict[str, Any]] = {}
    wanted = [t.pool for t in targets if t.pool is not None]
    for _ in range(MAX_FALLBACK_HOPS + 1):
        following: list[str] = []
        for pool_id in dict.fromkeys(wanted):
            row = None if pool_id in pools else await conn.fetchrow(QUERIES["routing_pool"], pool_id)
            if row is None:
                continue
            rules = PoolRules(required_skill=row["required_skill"], allow_off_hours=row["allow_off_hours"])
            members = [member_from_row(r) for r in await conn.fetch(QUERIES["routing_roster"], pool_id)]
            pools[pool_id] = {
                "id": pool_id,
                "strategy": row["strategy"],
                "required_skill": row["required_skill"],
                "fallback": row["fallback"],
                "members": [_availability(m, rules, now) for m in members],
            }
            following.append(row["fallback"])
        wanted = following
    view = RoutingView(pools=pools)
    if lead.company_domain is not None and any(t.kind == "account_owner" for t in targets):
        owner_id = await conn.fetchval(QUERIES["routing_account_owner"], lead.company_domain)
        owner = await conn.fetchrow(QUERIES["routing_owner_get"], owner_id) if owner_id else None
        view.account_owner = (
            {"id": None, "available": False, "reason": "no account owner recorded"}
            if owner is None
            else _availability(member_from_row(owner), PoolRules(), now)
        )
    return view


def _target(target: RouteTarget, view: RoutingView, lead: NormalizedLead) -> dict[str, Any]:
    entry: dict[str, Any] = {"rule": target.rule, "kind": target.kind, "sla": msgspec.to_builtins(target.sla)}
    if target.kind == "account_owner":
        entry["company_domain"] = lead.company_domain
        entry["owner"] = view.account_owner
        return entry
    chain: list[dict[str, Any]] = []
    current: str | None = target.pool
    while current is not None and len(chain) <= MAX_FALLBACK_HOPS:
        pool = view.pools.get(current)
        if pool is None:
            chain.append({"id": current, "exists": False})
            break
        chain.append({**pool, "exists": True})
        nxt = pool["fallback"]
        current = nxt if nxt in view.pools and all(p["id"] != nxt for p in chain) else None
        if current is None:
            chain.append({"queue": nxt})
    entry["pool"] = target.pool
    entry["pools"] = chain
    return entry


class SimulationAnswer(Struct, kw_only=True):
    """The answer of ``POST /v1/simulate``: the decision a lead would get, why, and where routing
    would look for an owner. Nothing was written or claimed (``dry_run`` is always true)."""

    dry_run: bool
    ruleset: RulesetInfo
    """The ruleset that decided: ``source`` is ``active``, ``stored version N`` or the upload."""
    as_of: datetime
    """The moment activity decay was measured to."""
    lead: NormalizedLead
    """What the rules saw: the lead after normalization."""
    score: float
    groups: dict[str, float]
    """Scoring group → its score after caps."""
    stage: Stage
    matched: list[RuleHit]
    routing_rule: str | None
    pool: str | None
    targets: list[dict[str, Any]]
    """Each target routing would try: its rule, kind and SLA, and for a pool its fallback chain
    (``pools``: each pool with its members, ``available`` or skipped with a ``reason``, ending at
    a ``{"queue": ...}`` or a pool that does not exist); for the account owner, ``owner``."""
    explanation: dict[str, Any]
    """The same explanation intake stores with a decision, without the assignment."""
    summary: str
    """The answer in one paragraph, for people."""


def simulation_answer(
    evaluation: Evaluation,
    lead: NormalizedLead,
    *,
    view: RoutingView,
    source: str,
    as_of: datetime,
) -> SimulationAnswer:
    """The decision a lead would get, why, and where routing would look for an owner."""
    targets = [_target(t, view, lead) for t in evaluation.targets]
    # The same explanation intake stores with a decision; routing stops before assignment.
    explained = explanation(evaluation, None)
    del explained["assignment"]
    explained["routing"]["fallback"] = evaluation.fallback
    return SimulationAnswer(
        dry_run=True,
        ruleset=RulesetInfo(
            version=evaluation.ruleset_version, sha256=evaluation.ruleset_sha256, source=source
        ),
        as_of=as_of,
        lead=lead,
        score=evaluation.score,
        groups={name: group.score for name, group in evaluation.groups.items()},
        stage=evaluation.stage,
        matched=list(evaluation.hits),
        routing_rule=evaluation.routing_rule,
        pool=evaluation.pool,
        targets=targets,
        explanation=explained,
        summary=_summary(evaluation, view),
    )


def _summary(evaluation: Evaluation, view: RoutingView) -> str:
    rule = evaluation.qualification_rule
    text = f"Would score {evaluation.score:g} and qualify as {evaluation.stage}" + (
        f" by rule {rule!r}. " if rule else " (no qualification entry matched). "
    )
    steps: list[str] = []
    for target in evaluation.targets:
        if target.kind == "account_owner":
            owner = view.account_owner
            if owner is None or owner["id"] is None:
                steps.append(f"rule {target.rule!r}: the company's account owner (none recorded)")
            else:
                state = "available" if owner["available"] else owner["reason"]
                steps.append(f"rule {target.rule!r}: account owner {owner['id']} ({state})")
            continue
        pool = view.pools.get(target.pool or "")
        if pool is None:
            steps.append(f"rule {target.rule!r}: pool {target.pool!r}, which does not exist")
            continue
        members = [m["id"] for m in pool["members"] if m["available"]]
        who = "available now: " + ", ".join(members) if members else "nobody available now"
        steps.append(f"rule {target.rule!r}: pool {target.pool!r} ({who})")
    if not steps:
        return (
            text + f"No routing rule matches: the lead would wait in queue {evaluation.fallback!r}. "
            "Nothing was written or claimed."
        )
    if evaluation.pool is None:
        steps.append(f"otherwise queue {evaluation.fallback!r}")
    return text + "Routing would try " + "; then ".join(steps) + ". Nothing was written or claimed."
