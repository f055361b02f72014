"""Scoring and qualification: pure functions from a ruleset and a lead to a decision, no I/O."""

from leadroute.scoring._evaluate import (
    DEFAULT_STAGE,
    Evaluation,
    Qualification,
    RouteChoice,
    RouteTarget,
    RouteTry,
    RuleErrorInfo,
    ScoreResult,
    choose_route,
    decay_factor,
    default_now,
    destination,
    evaluate,
    qualification_facts,
    qualify,
    score,
)

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
