"""Rule expressions: the mistakes rule-engine lets through, and its errors as sentences.

:func:`static_problems` finds what rule-engine's type checker accepts but can never be meant
(``title == 5``, ``$nosuchbuiltin``); :func:`explain_error` turns a parse or type error of a
``when:`` into a sentence that says what to change, for the section the rule is in.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from typing import Any

import rule_engine
from rule_engine import DataType

from leadroute.rules._facts import Section, lead_field_types

__all__ = ["explain_error", "expression_nodes", "static_problems"]

_CHILDREN: tuple[str, ...] = (
    *("left", "right", "container", "member", "condition", "case_true", "case_false", "object"),
    *("function", "expression", "iterable", "result", "start", "stop", "item"),
)
"""The attributes of rule-engine nodes that hold sub-expressions."""


def expression_nodes(node: Any) -> Iterator[Any]:
    """``node`` and every expression below it."""
    yield node
    for name in _CHILDREN:
        child = getattr(node, name, None)
        if isinstance(child, rule_engine.ast.ExpressionBase):
            yield from expression_nodes(child)
    for name in ("arguments", "value"):
        children = getattr(node, name, None)
        if isinstance(children, list | tuple):
            for child in children:
                for part in child if isinstance(child, tuple) else (child,):
                    if isinstance(part, rule_engine.ast.ExpressionBase):
                        yield from expression_nodes(part)


def _definite(data_type: Any) -> Any:
    """The type a value certainly has, or None when it may be anything (UNDEFINED) or is null."""
    if DataType.is_type(data_type, DataType.NULLABLE):
        data_type = DataType.NULLABLE.unwrap(data_type)
    if data_type in (DataType.UNDEFINED, DataType.NULL):
        return None
    return data_type


def _type_name(data_type: Any) -> str:
    value_type = getattr(data_type, "value_type", None)
    return f"{data_type.name} of {value_type.name}" if value_type is not None else str(data_type.name)


def static_problems(rule: rule_engine.Rule) -> list[str]:
    """What rule-engine's type checker lets through but can never be meant: ``title == 5``.

    ``==``/``!=`` between values of different types are always false/true in rule-engine (it is
    type-strict), and so is ``x in [...]`` with members of another type; a bare ``$name`` that is
    no builtin fails on every lead. Each is a load error here, like an ordered comparison of a
    text with a number.
    """
    text = rule.text
    problems = (
        _static_problem(node, text, rule.context) for node in expression_nodes(rule.statement.expression)
    )
    return [problem for problem in problems if problem is not None]


def _static_problem(node: Any, text: str, context: rule_engine.Context) -> str | None:
    kind = type(node)
    if kind is rule_engine.ast.ComparisonExpression:
        return _equality_problem(node, text)
    if kind is rule_engine.ast.ContainsExpression:
        return _contains_problem(node, text)
    if (
        kind is rule_engine.ast.SymbolExpression
        and node.scope == rule_engine.builtins.Builtins.scope_name
        and node.name not in context.builtins
    ):
        return (
            f"unknown builtin '${node.name}' in 'when: {text}'; leadroute rules use rule-engine's "
            "builtins ($now, $today, $abs, $min, $max, $sum...), or drop the '$' for a field"
        )
    return None


def _equality_problem(node: Any, text: str) -> str | None:
    left, right = _definite(node.left.result_type), _definite(node.right.result_type)
    if left is None or right is None or DataType.is_compatible(left, right):
        return None
    never = "always true" if node.type == "ne" else "never true"
    return (
        f"type mismatch in 'when: {text}': compares {_type_name(left)} with {_type_name(right)}, "
        f'which is {never} (== is type-strict: "1000" is not 1000); {_COMPARE_HINT}'
    )


def _contains_problem(node: Any, text: str) -> str | None:
    container, member = _definite(node.container.result_type), _definite(node.member.result_type)
    if container is None or member is None:
        return None
    is_list = DataType.is_type(container, DataType.ARRAY)
    if not is_list and not DataType.is_type(container, DataType.SET):
        return None
    value_type = _definite(getattr(container, "value_type", None))
    if value_type is None or DataType.is_compatible(member, value_type):
        return None
    collection = "list" if is_list else "set"
    return (
        f"type mismatch in 'when: {text}': looks for a {_type_name(member)} in a {collection} of "
        f"{_type_name(value_type)}, which is never true; {_COMPARE_HINT}"
    )


_COMPARE_HINT = (
    'write text in quotes ("US"), numbers without (1000) and flags as true/false, matching the field\'s type'
)

_SECTION_HINTS: Mapping[str, str] = {
    "score": "'score' is only available in qualification and routing",
    "groups": "'groups' is only available in qualification and routing",
    "stage": "'stage' is only available in routing",
}


_LEAD_NAMES = frozenset([*lead_field_types(), "attributes"])


def explain_error(  # noqa: PLR0911 - one return per error kind
    exc: Exception, text: str, section: Section, groups: list[str], activity: Mapping[str, Any]
) -> str:
    """Turn a rule-engine error into a sentence that says what to change."""
    errors = rule_engine.errors
    message = str(getattr(exc, "message", exc))
    if isinstance(exc, errors.RuleSyntaxError):
        token = getattr(exc, "token", None)
        near = f" near {token.value!r}" if token is not None else " (the expression ends too early)"
        return f"syntax error in 'when: {text}'{near}; check quotes, brackets and operators"
    if isinstance(exc, errors.ObjectAttributeError):
        obj = getattr(getattr(exc, "object", None), "name", "")
        name = exc.attribute_name
        if obj == "attributes":
            return (
                f"unknown field 'attributes.{name}': declare it under 'fields:' "
                f"(e.g. 'attributes.{name}: STRING')"
            )
        if obj == "groups":
            return f"unknown group 'groups.{name}'; scoring groups are: " + ", ".join(groups)
        if obj == "lead":
            return f"unknown lead field 'lead.{name}'; write a lead field, e.g. lead.title or lead.country"
    if isinstance(exc, errors.SymbolResolutionError) and section == "activity":
        return _unknown_in_activity(exc.symbol_name, activity)
    if isinstance(exc, errors.SymbolResolutionError):
        name = exc.symbol_name
        if (name in _SECTION_HINTS and section == "scoring") or (name == "stage" and section != "routing"):
            return f"unknown field {name!r}: {_SECTION_HINTS[name]}"
        suggestion = f" (did you mean {exc.suggestion!r}?)" if exc.suggestion else ""
        return f"unknown field {name!r}{suggestion}; extra lead attributes are used as attributes.NAME"
    if isinstance(exc, errors.RegexSyntaxError):
        error = getattr(exc, "error", None)
        detail = f"{error.msg} at position {error.pos} of {exc.value!r}" if error is not None else message
        return (
            f"invalid regular expression in 'when: {text}': {detail}; close every ( and [, and put a "
            "backslash before a special character meant literally (\\\\. \\\\( in YAML single quotes)"
        )
    if isinstance(exc, errors.EvaluationError) and "mismatch" in message:
        return (
            f"type mismatch in 'when: {text}': {message}; compare text with text "
            "(==, =~, in) and numbers with numbers (<, >=)"
        )
    return f"invalid expression 'when: {text}': {message}"


def _unknown_in_activity(name: str, declared: Mapping[str, Any]) -> str:
    """An unknown name in an ``on_activity`` rule: a lead field, a late fact, or an undeclared property."""
    if name in _LEAD_NAMES:
        return f"unknown activity property {name!r}: on_activity rules see the lead's fields as lead.{name}"
    if name in _SECTION_HINTS:
        return f"{name!r} is not available in on_activity rules (scoring happens before qualification)"
    known = ", ".join(sorted(declared)) or "none"
    close = difflib.get_close_matches(name, list(declared), n=1)
    maybe = f" (did you mean {close[0]!r}?)" if close else ""
    return (
        f"unknown activity property {name!r}{maybe}: declare it under 'fields:' as "
        f"'activity.{name}: STRING' (or FLOAT, BOOLEAN, DATETIME, ARRAY); declared: {known}"
    )
