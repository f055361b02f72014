"""Score, qualify and choose a route for one lead: pure functions over a loaded ruleset.

``score`` sums the points of matched scoring rules per group, then clamps each group to its
``max``/``min``; the total is the sum of the clamped groups. Lead-level rules are evaluated once
against the lead. ``on_activity`` rules are evaluated once per activity of their type, against
that activity (:func:`leadroute.rules._facts.activity_facts`); each match gives its points times
the group's decay factor ``0.5 ** (age_days / half_life_days)``, age measured from the
activity's ``occurred_at`` to ``now`` (an activity after ``now`` counts as age 0; a group
without ``half_life_days`` does not decay). Lead-level points never decay: they describe the
lead, not a moment. Caps apply after decay.

``qualify`` takes the first qualification entry that matches (no entry matching gives
``lead``, with no rule named). ``choose_route`` walks the routing rules in order: every matching
``route: account_owner`` rule becomes a target, and the first matching ``pool`` rule ends the
walk as the last target (it is also ``pool``/``routing_rule``). No pool rule matching gives no
pool, and the caller uses the ruleset's ``fallback`` queue (so does a ruleset with no routing
rules: every lead waits there). :func:`destination` says which, as one word.

A rule that raises while evaluating counts as not matched, and is recorded in ``rule_errors``
(or in its :class:`RouteTry`) so that "why" questions have an answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

from leadroute.models import QUEUE_PREFIX, Activity, GroupScore, NormalizedLead, RuleHit, Stage
from leadroute.rules import Ruleset, Sla
from leadroute.rules._facts import activity_facts

__all__ = [
    "DEFAULT_STAGE",
    "Evaluation",
    "Qualification",
    "RouteChoice",
    "RouteTarget",
    "RouteTry",
    "RuleErrorInfo",
    "ScoreResult",
    "choose_route",
    "decay_factor",
    "default_now",
    "destination",
    "evaluate",
    "qualification_facts",
    "qualify",
    "score",
]

DEFAULT_STAGE: Stage = "lead"
"""The stage of a lead no qualification entry matched."""


class RuleErrorInfo(msgspec.Struct, frozen=True):
    """A rule that raised while evaluating (counted as not matched), and what it raised."""

    rule: str
    message: str


class RouteTry(msgspec.Struct, frozen=True):
    """A routing rule tried, in order: whether it matched, or the error it raised."""

    rule: str
    matched: bool
    error: str | None = None


class RouteTarget(msgspec.Struct, frozen=True, kw_only=True):
    """A place the lead may go, in the order routing tries them."""

    rule: str
    """The routing rule that matched."""
    kind: Literal["pool", "account_owner"]
    pool: str | None
    """The pool (None for ``account_owner``)."""
    sla: Sla | None


class ScoreResult(msgspec.Struct, frozen=True, kw_only=True):
    """The scoring step's result."""

    score: float
    groups: dict[str, GroupScore]
    hits: list[RuleHit]
    rule_errors: list[RuleErrorInfo]


class Qualification(msgspec.Struct, frozen=True, kw_only=True):
    """The qualification step's result."""

    stage: Stage
    rule: str | None
    rule_errors: list[RuleErrorInfo]


class RouteChoice(msgspec.Struct, frozen=True, kw_only=True):
    """The routing-rule step's result: the pool, or None to use the fallback queue."""

    rule: str | None
    pool: str | None
    tried: list[RouteTry]
    targets: list[RouteTarget]


class Evaluation(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the ruleset decided for one lead, and why."""

    score: float
    groups: dict[str, GroupScore]
    hits: list[RuleHit]
    rule_errors: list[RuleErrorInfo]
    stage: Stage
    qualification_rule: str | None
    routes_tried: list[RouteTry]
    routing_rule: str | None
    pool: str | None
    fallback: str
    ruleset_version: int
    ruleset_sha256: str
    targets: list[RouteTarget] = msgspec.field(default_factory=list)
    """Matched routing rules in order: ``account_owner`` ones, up to and including the first
    ``pool`` one (the same as ``routing_rule``/``pool``)."""
    as_of: datetime | None = None
    """The instant activity points were decayed to (None when there were no activities)."""


def destination(evaluation: Evaluation) -> str:
    """Where the rules send the lead: the first matching pool rule's pool, else ``queue:<fallback>``.

    What replay reports as a lead's pool and what a rule-file test's ``expect: {pool: ...}`` is
    compared with. Pool ids cannot contain ':', so a pool and a queue never look alike.
    """
    return evaluation.pool if evaluation.pool is not None else f"{QUEUE_PREFIX}{evaluation.fallback}"


def _error(rule: str, exc: BaseException) -> RuleErrorInfo:
    # The message names the rule and the failure, never the lead's values (no PII in logs).
    return RuleErrorInfo(rule, f"{type(exc).__name__}: {getattr(exc, 'message', None) or exc}")


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _activity_error(rule: str, failures: list[tuple[Activity, BaseException]]) -> RuleErrorInfo:
    # One entry per rule, naming the first failing activity: a property of the wrong type in
    # every event of a long history must not bury the explanation under copies.
    activity, exc = failures[0]
    more = f" (and {len(failures) - 1} more activities)" if len(failures) > 1 else ""
    message = f"{activity.type} at {activity.occurred_at.isoformat()}{more}: {_error(rule, exc).message}"
    return RuleErrorInfo(rule, message)


def decay_factor(half_life_days: float | None, occurred_at: datetime, now: datetime) -> float:
    """``0.5 ** (age_days / half_life_days)``; 1 without a half-life or for an age <= 0."""
    if half_life_days is None:
        return 1.0
    age_days = (_aware(now) - _aware(occurred_at)).total_seconds() / 86400
    return 0.5 ** (age_days / half_life_days) if age_days > 0 else 1.0


def default_now(lead: NormalizedLead, activities: Sequence[Activity]) -> datetime | None:
    """The instant to decay to when none is given: the latest activity or lead time."""
    moments = [_aware(a.occurred_at) for a in activities]
    if lead.occurred_at is not None:
        moments.append(_aware(lead.occurred_at))
    return max(moments, default=None)


def score(
    ruleset: Ruleset,
    facts: Mapping[str, Any],
    *,
    activities: Sequence[Activity] = (),
    now: datetime | None = None,
) -> ScoreResult:
    """Sum matched scoring rules per group (activity points decayed to ``now``), clamp, total.

    ``now`` matters only when there are activities; None means the latest activity time.
    """
    raw = dict.fromkeys(ruleset.groups, 0.0)
    hits: list[RuleHit] = []
    errors: list[RuleErrorInfo] = []
    for rule, result in zip(ruleset.lead_scoring_rules, ruleset.scoring_evaluator(facts), strict=True):
        if result is True:
            raw[rule.group] += rule.points
            hits.append(RuleHit(rule.id, rule.group, rule.points))
        elif isinstance(result, BaseException):
            errors.append(_error(rule.id, result))
    if activities and ruleset.activity_sections:
        moment = now if now is not None else max(_aware(a.occurred_at) for a in activities)
        points, activity_hits, activity_errors = _score_activities(ruleset, facts, activities, moment)
        for name, value in points.items():
            raw[name] += value
        hits.extend(activity_hits)
        errors.extend(activity_errors)
    groups: dict[str, GroupScore] = {}
    for name, group in ruleset.groups.items():
        capped = raw[name]
        if group.max is not None:
            capped = min(capped, group.max)
        if group.min is not None:
            capped = max(capped, group.min)
        groups[name] = GroupScore(raw=raw[name], score=capped, max=group.max, min=group.min)
    total = sum(g.score for g in groups.values())
    return ScoreResult(score=total, groups=groups, hits=hits, rule_errors=errors)


def _score_activities(
    ruleset: Ruleset, facts: Mapping[str, Any], activities: Sequence[Activity], moment: datetime
) -> tuple[dict[str, float], list[RuleHit], list[RuleErrorInfo]]:
    """Decayed points per group, one hit per matching activity, and one error entry per failing rule."""
    raw: dict[str, float] = dict.fromkeys(ruleset.groups, 0.0)
    hits: list[RuleHit] = []
    failed: dict[str, list[tuple[Activity, BaseException]]] = {}
    for activity in sorted(activities, key=lambda a: _aware(a.occurred_at)):
        section = ruleset.activity_sections.get(activity.type)
        if section is None:
            continue
        results = section.evaluator(activity_facts(activity, facts))
        for rule, result in zip(section.rules, results, strict=True):
            if result is True:
                group = ruleset.groups[rule.group]
                factor = decay_factor(group.half_life_days, activity.occurred_at, moment)
                points = rule.points * factor
                raw[rule.group] += points
                hits.append(RuleHit(rule.id, rule.group, points, activity.type, activity.occurred_at, factor))
            elif isinstance(result, BaseException):
                failed.setdefault(rule.id, []).append((activity, result))
    return raw, hits, [_activity_error(rule_id, failures) for rule_id, failures in failed.items()]


def qualification_facts(facts: Mapping[str, Any], scored: ScoreResult) -> dict[str, Any]:
    """Lead facts plus ``score`` and ``groups`` (each group's clamped score)."""
    return {**facts, "score": scored.score, "groups": {n: g.score for n, g in scored.groups.items()}}


def qualify(ruleset: Ruleset, facts: Mapping[str, Any]) -> Qualification:
    """The first qualification entry that matches ``facts`` (which include ``score`` and ``groups``)."""
    errors: list[RuleErrorInfo] = []
    for rule, result in zip(ruleset.qualification_rules, ruleset.qualification_evaluator(facts), strict=True):
        if result is True:
            return Qualification(stage=rule.stage, rule=rule.id, rule_errors=errors)
        if isinstance(result, BaseException):
            errors.append(_error(rule.id, result))
    return Qualification(stage=DEFAULT_STAGE, rule=None, rule_errors=errors)


def choose_route(ruleset: Ruleset, facts: Mapping[str, Any]) -> RouteChoice:
    """The first routing rule that matches ``facts`` (which include ``stage``), and those tried before it."""
    tried: list[RouteTry] = []
    targets: list[RouteTarget] = []
    for rule, result in zip(ruleset.routing_rules, ruleset.routing_evaluator(facts), strict=True):
        if result is True:
            tried.append(RouteTry(rule.id, True))
            targets.append(RouteTarget(rule=rule.id, kind=rule.route, pool=rule.pool, sla=rule.sla))
            if rule.route == "pool":
                return RouteChoice(rule=rule.id, pool=rule.pool, tried=tried, targets=targets)
            continue
        error = _error(rule.id, result).message if isinstance(result, BaseException) else None
        tried.append(RouteTry(rule.id, False, error))
    return RouteChoice(rule=None, pool=None, tried=tried, targets=targets)


def evaluate(
    ruleset: Ruleset,
    lead: NormalizedLead,
    *,
    activities: Sequence[Activity] = (),
    now: datetime | None = None,
) -> Evaluation:
    """Score (with ``activities``, decayed to ``now``), qualify and choose routing targets.

    ``now`` defaults to the latest of the activities' and the lead's times (:func:`default_now`).
    """
    facts = lead.facts()
    as_of = (now if now is not None else default_now(lead, activities)) if activities else None
    scored = score(ruleset, facts, activities=activities, now=as_of)
    facts = qualification_facts(facts, scored)
    qualified = qualify(ruleset, facts)
    facts["stage"] = qualified.stage
    route = choose_route(ruleset, facts)
    return Evaluation(
        score=scored.score,
        groups=scored.groups,
        hits=scored.hits,
        rule_errors=scored.rule_errors + qualified.rule_errors,
        stage=qualified.stage,
        qualification_rule=qualified.rule,
        routes_tried=route.tried,
        routing_rule=route.rule,
        pool=route.pool,
        fallback=ruleset.fallback,
        ruleset_version=ruleset.version,
        ruleset_sha256=ruleset.sha256,
        targets=route.targets,
        as_of=as_of,
    )
