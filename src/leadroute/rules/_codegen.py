"""The runtime side of compiled rules, and the tools that build their code.

:mod:`leadroute.rules.compiler` decides what to emit for each rule-engine node; this module holds
what that code runs with and how it is built:

- the **representation of values** (kinds such as ``STR``/``NUM``; numbers are ``int``, integral
  floats below 2**53, or ``Decimal``) and the helpers generated code calls (``norm_float``,
  ``rule_eq``, ``to_decimal``...);
- **code building** from fixed templates written in this package (``expr``/``stmts``: parse a
  template once, replace its UPPER placeholders with ast nodes). Rule text never becomes source:
  it reaches the code only as ``ast.Constant`` values or namespace names;
- :class:`Section`: one generated function's namespace, constants, and the prologue that reads
  each field once and sends input of an unexpected type to rule-engine.
"""

from __future__ import annotations

import ast
import copy
import datetime
import decimal
import functools
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import rule_engine
from rule_engine import DataType

__all__ = [
    "ARR",
    "BAD",
    "BOOL",
    "DT",
    "EQ_KINDS",
    "EXACT_FLOAT_INT",
    "NONE",
    "NUM",
    "ORDERED_KINDS",
    "SET",
    "STR",
    "TD",
    "Kinds",
    "Section",
    "Unsupported",
    "Value",
    "build_expr",
    "build_stmts",
    "leaf_kind",
    "literal_kinds",
    "literal_value",
    "load_name",
    "norm_array",
    "norm_float",
    "norm_item",
    "rule_eq",
    "rule_ne",
    "to_decimal",
]

# Kinds of runtime values a compiled expression can produce (its Python representation).
STR: Final = "str"
NUM: Final = "num"  # int | float (integral, |x| < 2**53) | Decimal
BOOL: Final = "bool"
NONE: Final = "none"
DT: Final = "datetime"
TD: Final = "timedelta"
ARR: Final = "array"  # tuple
SET: Final = "set"  # frozenset (literals only)
Kinds = frozenset[str]

EXACT_FLOAT_INT: Final = 2**53
_NUM_TYPES: Final = frozenset({int, float, decimal.Decimal})
ORDERED_KINDS: Final = frozenset({STR, NUM, BOOL, DT, TD})
EQ_KINDS: Final = frozenset({STR, NUM, BOOL, DT, TD, ARR, SET, NONE})


class Unsupported(Exception):
    """The rule uses a node the compiler does not cover: evaluate it with rule-engine."""


class Bad:
    """Marks a field value the compiled code does not handle (the call goes to rule-engine)."""

    __slots__ = ()


BAD: Final = Bad()


# -- runtime helpers (referenced from generated code through the namespace) --------------------


def norm_float(value: float) -> float | decimal.Decimal:
    """A float as compiled code holds it: itself when integral and exact, else ``Decimal(repr)``."""
    if value.is_integer() and -EXACT_FLOAT_INT < value < EXACT_FLOAT_INT:
        return value
    return decimal.Decimal(repr(value))


def norm_item(value: Any) -> Any:
    """An array member as compiled code holds it, or ``BAD`` when it needs rule-engine."""
    kind = type(value)
    if kind is str or kind is bool or value is None or kind is int or kind is decimal.Decimal:
        return value
    if kind is float:
        return norm_float(value)
    if kind is tuple or kind is list:
        items = tuple(norm_item(item) for item in value)
        return BAD if any(item is BAD for item in items) else items
    return BAD


def norm_array(value: Any) -> Any:
    """A list/tuple field value as a tuple (rule-engine's ARRAY), or ``BAD``."""
    if type(value) is not list and type(value) is not tuple:
        return BAD
    return norm_item(value)


def rule_eq(left: Any, right: Any) -> bool:
    """rule-engine's ``==``: values of different types are unequal (numbers are all one type)."""
    left_type, right_type = type(left), type(right)
    if left_type is right_type or (left_type in _NUM_TYPES and right_type in _NUM_TYPES):
        return bool(left == right)
    return False


def rule_ne(left: Any, right: Any) -> bool:
    left_type, right_type = type(left), type(right)
    if left_type is right_type or (left_type in _NUM_TYPES and right_type in _NUM_TYPES):
        return bool(left != right)
    return True


def to_decimal(value: Any) -> decimal.Decimal:
    """A compiled number as rule-engine's Decimal (raises on anything else, e.g. ``None``)."""
    if type(value) is decimal.Decimal:
        return value
    if type(value) is int or type(value) is float:
        return decimal.Decimal(value)
    raise TypeError("not a number")


def literal_value(value: Any) -> Any:
    """A value rule-engine computed at parse time, in compiled representation."""
    if isinstance(value, decimal.Decimal):
        if value.is_finite() and value == value.to_integral_value():
            return int(value)
        as_float = float(value)
        return as_float if decimal.Decimal(as_float) == value else value
    if value is None or type(value) in (str, bool, datetime.datetime, datetime.timedelta):
        return value
    if type(value) is tuple:
        return tuple(literal_value(item) for item in value)
    if type(value) is set:
        return frozenset(literal_value(item) for item in value)
    raise Unsupported(f"literal of type {type(value).__name__}")


def literal_kinds(value: Any) -> Kinds:
    if value is None:
        return frozenset({NONE})
    kind = {
        str: STR,
        bool: BOOL,
        int: NUM,
        float: NUM,
        decimal.Decimal: NUM,
        datetime.datetime: DT,
        datetime.timedelta: TD,
        tuple: ARR,
        frozenset: SET,
    }.get(type(value))
    if kind is None:
        raise Unsupported(f"literal of type {type(value).__name__}")
    return frozenset({kind})


# -- ast construction -------------------------------------------------------------------------


@functools.cache
def _parsed(template: str, mode: str) -> ast.AST:
    return ast.parse(template, mode=mode)


class _Fill(ast.NodeTransformer):
    def __init__(self, subs: Mapping[str, ast.expr]) -> None:
        self.subs = subs

    def visit_Name(self, node: ast.Name) -> ast.expr:
        sub = self.subs.get(node.id)
        if sub is None:
            return node
        if isinstance(sub, ast.Name):
            return ast.Name(id=sub.id, ctx=node.ctx)
        return copy.deepcopy(sub)


def build_expr(template: str, **subs: ast.expr) -> ast.expr:
    """An expression from one of this module's fixed templates, placeholders (UPPER) replaced."""
    tree = copy.deepcopy(_parsed(template, "eval"))
    assert isinstance(tree, ast.Expression)
    result = _Fill(subs).visit(tree.body)
    assert isinstance(result, ast.expr)
    return result


def build_stmts(template: str, **subs: ast.expr) -> list[ast.stmt]:
    """Statements from one of this module's fixed templates, placeholders (UPPER) replaced."""
    tree = copy.deepcopy(_parsed(template, "exec"))
    assert isinstance(tree, ast.Module)
    filler = _Fill(subs)
    return [filler.visit(stmt) for stmt in tree.body]


def load_name(identifier: str) -> ast.Name:
    return ast.Name(id=identifier, ctx=ast.Load())


@dataclass(frozen=True, slots=True)
class Value:
    """A compiled expression, the kinds of value it can produce, and its value if constant."""

    expr: ast.expr
    kinds: Kinds
    constant: Any = BAD


_LEAF_KINDS: Final[Mapping[str, str]] = {"STRING": STR, "FLOAT": NUM, "BOOLEAN": BOOL, "DATETIME": DT}

_LEAF_CHECKS: Final[Mapping[str, str]] = {
    STR: "if V is not None and type(V) is not str:\n    return FALLBACK(facts)",
    BOOL: "if V is not None and type(V) is not bool:\n    return FALLBACK(facts)",
    NUM: (
        "if type(V) is not int and V is not None:\n"
        "    if type(V) is float:\n"
        "        if not (-EXACT < V < EXACT and V % 1.0 == 0.0):\n"
        "            V = NORM_FLOAT(V)\n"
        "    elif type(V) is not DECIMAL:\n"
        "        return FALLBACK(facts)"
    ),
    DT: (
        "if V is not None:\n"
        "    if type(V) is not DATETIME:\n"
        "        return FALLBACK(facts)\n"
        "    if V.tzinfo is None:\n"
        "        V = V.replace(tzinfo=TZ)"
    ),
    TD: "if V is not None and type(V) is not TIMEDELTA:\n    return FALLBACK(facts)",
    ARR: "if V is not None:\n    V = NORM_ARRAY(V)\n    if V is BAD:\n        return FALLBACK(facts)",
}


def leaf_kind(data_type: Any) -> str | None:
    data_type = DataType.NULLABLE.unwrap(data_type)
    if DataType.is_type(data_type, DataType.ARRAY):
        return ARR
    if data_type == DataType.TIMEDELTA:
        return TD
    return _LEAF_KINDS.get(getattr(data_type, "name", ""))


class Section:
    """The generated function being built: its namespace, field reads (leaves) and names."""

    def __init__(self, context: Any) -> None:
        self.context = context
        self.namespace: dict[str, Any] = {
            "__builtins__": {
                "type": type,
                "len": len,
                "str": str,
                "int": int,
                "float": float,
                "bool": bool,
                "dict": dict,
                "Exception": Exception,
            },
            "FALLBACK": None,  # set once the rules are known
            "NORM_FLOAT": norm_float,
            "NORM_ARRAY": norm_array,
            "BAD": BAD,
            "DECIMAL": decimal.Decimal,
            "DATETIME": datetime.datetime,
            "TIMEDELTA": datetime.timedelta,
            "TZ": context.default_timezone,
            "EQ": rule_eq,
            "NE": rule_ne,
            "DEC": to_decimal,
        }
        self.constants: dict[tuple[type, str], str] = {}
        self.leaves: dict[tuple[str, ...], tuple[str, str]] = {}  # path -> (variable, kind)
        self.objects: dict[tuple[str, ...], str] = {}  # path -> variable
        self.decimal_contexts: dict[int, decimal.Context] = {}
        self.counter = itertools.count()
        default = context.default_value
        self.default: ast.expr = self.const(BAD if default is rule_engine.errors.UNDEFINED else default)

    def fresh(self, prefix: str) -> str:
        return f"{prefix}{next(self.counter)}"

    def const(self, value: Any) -> ast.expr:
        """``value`` in generated code: a literal constant, or a namespace name."""
        if value is None or type(value) in (str, int, float, bool):
            return ast.Constant(value)
        # Shared by repr, not equality: (1, True) == (1, 1), but they are different literals.
        key = (type(value), repr(value))
        if key not in self.constants:
            identifier = self.fresh("k")
            self.constants[key] = identifier
            self.namespace[identifier] = value
        return load_name(self.constants[key])

    def object(self, path: tuple[str, ...]) -> str:
        if path not in self.objects:
            self.objects[path] = self.fresh("o")
        return self.objects[path]

    def leaf(self, path: tuple[str, ...], kind: str) -> str:
        """The local variable holding the field at ``path`` (a symbol, then OBJECT members)."""
        found = self.leaves.get(path)
        if found is not None:
            if found[1] != kind:
                raise Unsupported("one field read with two types")
            return found[0]
        for depth in range(1, len(path)):
            self.object(path[:depth])
        variable = self.fresh("v")
        self.leaves[path] = (variable, kind)
        return variable

    def prologue(self) -> list[ast.stmt]:
        """Read every field once; send odd input (wrong types, non-dict objects) to rule-engine."""
        body = build_stmts("if type(facts) is not dict:\n    return FALLBACK(facts)")
        for path, variable in sorted(self.objects.items(), key=lambda item: len(item[0])):
            source = "facts" if len(path) == 1 else self.objects[path[:-1]]
            body += build_stmts(
                "O = SRC.get(NAME, DEFAULT)\n"
                "if type(O) is not dict:\n"
                "    if O is not None:\n"
                "        return FALLBACK(facts)\n"
                "    O = {}",
                O=load_name(variable),
                SRC=load_name(source),
                NAME=ast.Constant(path[-1]),
                DEFAULT=self.default if len(path) == 1 else ast.Constant(None),
            )
        for path, (variable, kind) in self.leaves.items():
            source = "facts" if len(path) == 1 else self.objects[path[:-1]]
            default = self.default if len(path) == 1 else ast.Constant(None)
            value = load_name(variable)
            body += build_stmts(
                "V = SRC.get(NAME, DEFAULT)",
                V=value,
                SRC=load_name(source),
                NAME=ast.Constant(path[-1]),
                DEFAULT=default,
            )
            body += build_stmts(_LEAF_CHECKS[kind], V=value, EXACT=ast.Constant(float(EXACT_FLOAT_INT)))
        return body
