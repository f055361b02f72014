"""Score, qualify and choose a route for one lead: pure functions over a loaded ruleset.

``score`` sums the points of matched scoring rules per group, then clamps each group to its
``max``/``min``; the total is the sum of the clamped groups. ``qualify`` takes the first
qualification entry that matches (no entry matching gives ``lead``, with no rule named).
``choose_route`` takes the first routing rule that matches; none matching gives no pool, and
the caller uses the ruleset's ``fallback`` queue.

A rule that raises while evaluating counts as not matched, and is recorded in ``rule_errors``
(or in its :class:`RouteTry`) so that "why" questions have an answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from leadroute.models import GroupScore, NormalizedLead, RuleHit, Stage
from leadroute.rules import Ruleset

__all__ = [
    "DEFAULT_STAGE",
    "Evaluation",
    "Qualification",
    "RouteChoice",
    "RouteTry",
    "RuleErrorInfo",
    "ScoreResult",
    "choose_route",
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


def _error(rule: str, exc: BaseException) -> RuleErrorInfo:
    # The message names the rule and the failure, never the lead's values (no PII in logs).
    return RuleErrorInfo(rule, f"{type(exc).__name__}: {getattr(exc, 'message', None) or exc}")


def score(ruleset: Ruleset, facts: Mapping[str, Any]) -> ScoreResult:
    """Sum matched scoring rules per group, clamp each group, and total them."""
    raw = dict.fromkeys(ruleset.groups, 0.0)
    hits: list[RuleHit] = []
    errors: list[RuleErrorInfo] = []
    for rule, result in zip(ruleset.scoring_rules, ruleset.scoring_evaluator(facts), strict=True):
        if result is True:
            raw[rule.group] += rule.points
            hits.append(RuleHit(rule.id, rule.group, rule.points))
        elif isinstance(result, BaseException):
            errors.append(_error(rule.id, result))
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
    for rule, result in zip(ruleset.routing_rules, ruleset.routing_evaluator(facts), strict=True):
        if result is True:
            tried.append(RouteTry(rule.id, True))
            return RouteChoice(rule=rule.id, pool=rule.pool, tried=tried)
        error = _error(rule.id, result).message if isinstance(result, BaseException) else None
        tried.append(RouteTry(rule.id, False, error))
    return RouteChoice(rule=None, pool=None, tried=tried)


def evaluate(ruleset: Ruleset, lead: NormalizedLead) -> Evaluation:
    """Score, qualify and choose a routing rule for ``lead``."""
    facts = lead.facts()
    scored = score(ruleset, facts)
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
    )
