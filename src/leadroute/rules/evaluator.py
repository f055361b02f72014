"""How a section of compiled rules is evaluated against facts.

The interface is deliberately small, so that a compiler from rule-engine's AST to plain Python
can replace :class:`RuleEngineEvaluator` without touching the loader or scoring:
``Evaluator.compile(rules)`` once at load, then the returned ``SectionEvaluator(facts)`` per
lead, giving one result per rule, in order.

A rule that raises while evaluating (an ordered comparison with a null value, an attribute
of the wrong type...) does not stop the others: its slot holds the exception, and callers count
it as not matched and record it.

:func:`evaluator_for` gives the evaluator a name stands for: ``compiled``
(:mod:`leadroute.rules.compiler`, what the loader uses when it is given none), or ``rule-engine``,
its own tree walker (for comparison, or should a compiled rule ever be suspected of disagreeing
with the reference). The name comes from ``Settings.rules_evaluator``; callers that load a
ruleset under the settings pass ``evaluator=evaluator_for(settings.rules_evaluator)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import rule_engine

from leadroute.config import EvaluatorName

__all__ = ["Evaluator", "RuleEngineEvaluator", "SectionEvaluator", "evaluator_for"]


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
        """Return an evaluator for ``rules``, in order; their regexes run with RE2 (``rules._regex``).

        Raises ``RegexRefused`` for a regex RE2 cannot run: never ``re``'s backtracking instead.
        """
        from leadroute.rules._regex import use_re2

        for rule in rules:
            use_re2(rule)
        return _RuleEngineSection(rules)


def evaluator_for(name: EvaluatorName = "compiled") -> Evaluator:
    """The evaluator ``name`` stands for: ``compiled`` (the default) or ``rule-engine``."""
    if name == "rule-engine":
        return RuleEngineEvaluator()
    from leadroute.rules.compiler import CompiledEvaluator  # the compiler imports this module

    return CompiledEvaluator()
