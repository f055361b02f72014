"""How a section of compiled rules is evaluated against facts.

The interface is deliberately small, so that a compiler from rule-engine's AST to plain Python
can replace :class:`RuleEngineEvaluator` without touching the loader or scoring:
``Evaluator.compile(rules)`` once at load, then the returned ``SectionEvaluator(facts)`` per
lead, giving one result per rule, in order.

A rule that raises while evaluating (an ordered comparison with a null value, an attribute
of the wrong type...) does not stop the others: its slot holds the exception, and callers count
it as not matched and record it.

:func:`default_evaluator` is what the loader uses when it is given none: the compiled evaluator
(:mod:`leadroute.rules.compiler`), or rule-engine's own tree walker when the environment variable
``LEADROUTE_RULES_EVALUATOR`` is ``rule-engine`` (for comparison, or should a compiled rule ever
be suspected of disagreeing with the reference).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import rule_engine

__all__ = ["EVALUATOR_ENV", "Evaluator", "RuleEngineEvaluator", "SectionEvaluator", "default_evaluator"]

EVALUATOR_ENV = "LEADROUTE_RULES_EVALUATOR"
"""``compiled`` (the default) or ``rule-engine``."""


class SectionEvaluator(Protocol):
    """Evaluates every rule of one section against ``facts``: ``True``/``False``, or what it raised."""

    def __call__(self, facts: Mapping[str, Any]) -> list[bool | BaseException]: ...


class Evaluator(Protocol):
    """Turns a section's parsed, type-checked rules into a :class:`SectionEvaluator`."""

    def compile(self, rules: Sequence[rule_engine.Rule]) -> SectionEvaluator: ...


class _RuleEngineSection:
    """A section evaluated by rule-engine's own tree walker."""

    __slots__ = ("_rules",)

    def __init__(self, rules: Sequence[rule_engine.Rule]) -> None:
        self._rules = tuple(rules)

    def __call__(self, facts: Mapping[str, Any]) -> list[bool | BaseException]:
        results: list[bool | BaseException] = []
        for rule in self._rules:
            try:
                results.append(bool(rule.matches(facts)))
            except Exception as exc:  # one failing rule must not fail the lead
                results.append(exc)
        return results


class RuleEngineEvaluator:
    """The reference evaluator: ``rule.matches(facts)`` for each rule."""

    def compile(self, rules: Sequence[rule_engine.Rule]) -> SectionEvaluator:
        """Return an evaluator for ``rules``, in order."""
        return _RuleEngineSection(rules)


def default_evaluator() -> Evaluator:
    """The evaluator ``LEADROUTE_RULES_EVALUATOR`` names: ``compiled`` (default) or ``rule-engine``."""
    choice = os.environ.get(EVALUATOR_ENV, "compiled").strip().lower() or "compiled"
    if choice == "rule-engine":
        return RuleEngineEvaluator()
    if choice != "compiled":
        raise ValueError(f"{EVALUATOR_ENV} must be 'compiled' or 'rule-engine', not {choice!r}")
    from leadroute.rules.compiler import CompiledEvaluator  # the compiler imports this module

    return CompiledEvaluator()
