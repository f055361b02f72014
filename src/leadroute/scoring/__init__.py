"""Scoring and qualification: pure functions from a ruleset and a lead to a decision, no I/O."""

from leadroute.scoring._evaluate import (
    DEFAULT_STAGE,
    Evaluation,
    Qualification,
    RouteChoice,
    RouteTry,
    RuleErrorInfo,
    ScoreResult,
    choose_route,
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
    "RouteTry",
    "RuleErrorInfo",
    "ScoreResult",
    "choose_route",
    "evaluate",
    "qualification_facts",
    "qualify",
    "score",
]
