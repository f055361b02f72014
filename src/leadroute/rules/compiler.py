"""Compile a section's parsed, type-checked rules into one Python function.

rule-engine stays the parser, the type checker and the reference semantics; this module walks the
tree each ``rule_engine.Rule`` already built (``rule.statement``) and emits Python ``ast`` nodes
for it, so a lead costs a few comparisons and regex calls instead of a tree walk per rule. Rule
text is never pasted into source: strings, numbers and ``None`` go in as ``ast.Constant``, every
other value (compiled regexes, Decimals, tuples, datetimes, helpers) through the function's
namespace under generated names (``k0``, ``k1``, ...).

One function per section returns one result per rule, as :class:`RuleEngineEvaluator` does.

How parity with rule-engine is kept:

- **Values.** rule-engine turns every number into a ``Decimal`` (``int`` exactly, ``float`` via
  ``repr``). Compiled code keeps ``int`` and integral floats below 2**53 as they are (Python
  compares ``int``, ``float`` and ``Decimal`` exactly, and those floats equal their ``repr``) and
  turns any other float into ``Decimal(repr(x))``. So ``==``, ``<``, ``in`` and truthiness give
  rule-engine's answers; arithmetic converts to ``Decimal`` and uses the rule's decimal context.
- **Fields are read once per call** (the prologue), and their exact Python type is checked
  against the declared type. A value of another type (a string where a number is declared, an
  ``int`` subclass, a naive ``date``...) or facts that are not a plain ``dict`` send the whole
  call to rule-engine: odd input gets the reference behaviour, not a guess.
- **Every emitted operation either returns rule-engine's result or raises.** Where rule-engine
  raises (an ordered comparison with ``null``, ``.as_lower`` of ``null``, ``null in "text"``)
  Python raises too; where their answers could differ (``null >= null`` is true in rule-engine,
  a ``TypeError`` in Python) the emitted code raises. Each rule runs in its own ``try``: on any
  exception that rule alone is evaluated again by ``rule.matches``, so a failing rule's slot
  holds exactly the exception rule-engine raises, with its message.
- **Nodes not covered** (builtins such as ``$now``, comprehensions, item access and slices,
  mappings, bitwise operators, most number/date attributes, non-literal regexes) make that one
  rule use ``rule.matches``; :attr:`CompiledSection.fallback_rules` lists them.
"""

from __future__ import annotations

import ast
import copy
import datetime
import decimal
import functools
import itertools
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import rule_engine
from rule_engine import DataType

from leadroute.rules._facts import _member as member_accessor
from leadroute.rules.evaluator import RuleEngineEvaluator, SectionEvaluator

__all__ = ["CompiledEvaluator", "CompiledSection", "compiled_section"]

_rast = rule_engine.ast

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

_EXACT_FLOAT_INT: Final = 2**53
_NUM_TYPES: Final = frozenset({int, float, decimal.Decimal})
_ORDERED_KINDS: Final = frozenset({STR, NUM, BOOL, DT, TD})
_EQ_KINDS: Final = frozenset({STR, NUM, BOOL, DT, TD, ARR, SET, NONE})


class _Unsupported(Exception):
    """The rule uses a node the compiler does not cover: evaluate it with rule-engine."""


class _Bad:
    """Marks a field value the compiled code does not handle (the call goes to rule-engine)."""

    __slots__ = ()


_BAD: Final = _Bad()


# -- runtime helpers (referenced from generated code through the namespace) --------------------


def _norm_float(value: float) -> float | decimal.Decimal:
    """A float as compiled code holds it: itself when integral and exact, else ``Decimal(repr)``."""
    if value.is_integer() and -_EXACT_FLOAT_INT < value < _EXACT_FLOAT_INT:
        return value
    return decimal.Decimal(repr(value))


def _norm_item(value: Any) -> Any:
    """An array member as compiled code holds it, or ``_BAD`` when it needs rule-engine."""
    kind = type(value)
    if kind is str or kind is bool or value is None or kind is int or kind is decimal.Decimal:
        return value
    if kind is float:
        return _norm_float(value)
    if kind is tuple or kind is list:
        items = tuple(_norm_item(item) for item in value)
        return _BAD if any(item is _BAD for item in items) else items
    return _BAD


def _norm_array(value: Any) -> Any:
    """A list/tuple field value as a tuple (rule-engine's ARRAY), or ``_BAD``."""
    if type(value) is not list and type(value) is not tuple:
        return _BAD
    return _norm_item(value)


def _eq(left: Any, right: Any) -> bool:
    """rule-engine's ``==``: values of different types are unequal (numbers are all one type)."""
    left_type, right_type = type(left), type(right)
    if left_type is right_type or (left_type in _NUM_TYPES and right_type in _NUM_TYPES):
        return bool(left == right)
    return False


def _ne(left: Any, right: Any) -> bool:
    left_type, right_type = type(left), type(right)
    if left_type is right_type or (left_type in _NUM_TYPES and right_type in _NUM_TYPES):
        return bool(left != right)
    return True


def _dec(value: Any) -> decimal.Decimal:
    """A compiled number as rule-engine's Decimal (raises on anything else, e.g. ``None``)."""
    if type(value) is decimal.Decimal:
        return value
    if type(value) is int or type(value) is float:
        return decimal.Decimal(value)
    raise TypeError("not a number")


def _literal(value: Any) -> Any:
    """A value rule-engine computed at parse time, in compiled representation."""
    if isinstance(value, decimal.Decimal):
        if value.is_finite() and value == value.to_integral_value():
            return int(value)
        as_float = float(value)
        return as_float if decimal.Decimal(as_float) == value else value
    if value is None or type(value) in (str, bool, datetime.datetime, datetime.timedelta):
        return value
    if type(value) is tuple:
        return tuple(_literal(item) for item in value)
    if type(value) is set:
        return frozenset(_literal(item) for item in value)
    raise _Unsupported(f"literal of type {type(value).__name__}")


def _kinds_of_literal(value: Any) -> Kinds:
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
        raise _Unsupported(f"literal of type {type(value).__name__}")
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


def _expr(template: str, **subs: ast.expr) -> ast.expr:
    """An expression from one of this module's fixed templates, placeholders (UPPER) replaced."""
    tree = copy.deepcopy(_parsed(template, "eval"))
    assert isinstance(tree, ast.Expression)
    result = _Fill(subs).visit(tree.body)
    assert isinstance(result, ast.expr)
    return result


def _stmts(template: str, **subs: ast.expr) -> list[ast.stmt]:
    """Statements from one of this module's fixed templates, placeholders (UPPER) replaced."""
    tree = copy.deepcopy(_parsed(template, "exec"))
    assert isinstance(tree, ast.Module)
    filler = _Fill(subs)
    return [filler.visit(stmt) for stmt in tree.body]


def _name(identifier: str) -> ast.Name:
    return ast.Name(id=identifier, ctx=ast.Load())


@dataclass(frozen=True, slots=True)
class _Value:
    """A compiled expression, the kinds of value it can produce, and its value if constant."""

    expr: ast.expr
    kinds: Kinds
    constant: Any = _BAD


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


def _leaf_kind(data_type: Any) -> str | None:
    data_type = DataType.NULLABLE.unwrap(data_type)
    if DataType.is_type(data_type, DataType.ARRAY):
        return ARR
    if data_type == DataType.TIMEDELTA:
        return TD
    return _LEAF_KINDS.get(getattr(data_type, "name", ""))


class _Section:
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
            "NORM_FLOAT": _norm_float,
            "NORM_ARRAY": _norm_array,
            "BAD": _BAD,
            "DECIMAL": decimal.Decimal,
            "DATETIME": datetime.datetime,
            "TIMEDELTA": datetime.timedelta,
            "TZ": context.default_timezone,
            "EQ": _eq,
            "NE": _ne,
            "DEC": _dec,
        }
        self.constants: dict[tuple[type, str], str] = {}
        self.leaves: dict[tuple[str, ...], tuple[str, str]] = {}  # path -> (variable, kind)
        self.objects: dict[tuple[str, ...], str] = {}  # path -> variable
        self.decimal_contexts: dict[int, decimal.Context] = {}
        self.counter = itertools.count()
        default = context.default_value
        self.default: ast.expr = self.const(_BAD if default is rule_engine.errors.UNDEFINED else default)

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
        return _name(self.constants[key])

    def object(self, path: tuple[str, ...]) -> str:
        if path not in self.objects:
            self.objects[path] = self.fresh("o")
        return self.objects[path]

    def leaf(self, path: tuple[str, ...], kind: str) -> str:
        """The local variable holding the field at ``path`` (a symbol, then OBJECT members)."""
        found = self.leaves.get(path)
        if found is not None:
            if found[1] != kind:
                raise _Unsupported("one field read with two types")
            return found[0]
        for depth in range(1, len(path)):
            self.object(path[:depth])
        variable = self.fresh("v")
        self.leaves[path] = (variable, kind)
        return variable

    def prologue(self) -> list[ast.stmt]:
        """Read every field once; send odd input (wrong types, non-dict objects) to rule-engine."""
        body = _stmts("if type(facts) is not dict:\n    return FALLBACK(facts)")
        for path, variable in sorted(self.objects.items(), key=lambda item: len(item[0])):
            source = "facts" if len(path) == 1 else self.objects[path[:-1]]
            body += _stmts(
                "O = SRC.get(NAME, DEFAULT)\n"
                "if type(O) is not dict:\n"
                "    if O is not None:\n"
                "        return FALLBACK(facts)\n"
                "    O = {}",
                O=_name(variable),
                SRC=_name(source),
                NAME=ast.Constant(path[-1]),
                DEFAULT=self.default if len(path) == 1 else ast.Constant(None),
            )
        for path, (variable, kind) in self.leaves.items():
            source = "facts" if len(path) == 1 else self.objects[path[:-1]]
            default = self.default if len(path) == 1 else ast.Constant(None)
            body += _stmts("V = SRC.get(NAME, DEFAULT)", V=_name(variable), SRC=_name(source),
                           NAME=ast.Constant(path[-1]), DEFAULT=default)  # fmt: skip
            body += _stmts(_LEAF_CHECKS[kind], V=_name(variable), EXACT=ast.Constant(float(_EXACT_FLOAT_INT)))
        return body


# -- one rule ---------------------------------------------------------------------------------

_ORDER_OPS: Final[Mapping[str, ast.cmpop]] = {
    "ge": ast.GtE(),
    "gt": ast.Gt(),
    "le": ast.LtE(),
    "lt": ast.Lt(),
}
_DECIMAL_OPS: Final[Mapping[str, str]] = {
    "add": "add",
    "sub": "subtract",
    "mul": "multiply",
    "tdiv": "divide",
    "fdiv": "divide_int",
    "mod": "remainder",
    "pow": "power",
}
_STRING_ATTRIBUTES: Final[Mapping[str, tuple[str, str]]] = {
    "as_lower": ("T.lower()", STR),
    "as_upper": ("T.upper()", STR),
    "length": ("len(T)", NUM),
    "is_empty": ("len(T) == 0", BOOL),
}
_ARRAY_ATTRIBUTES: Final[Mapping[str, tuple[str, str]]] = {
    "length": ("len(T)", NUM),
    "is_empty": ("len(T) == 0", BOOL),
}
_DATETIME_ATTRIBUTES: Final[Mapping[str, tuple[str, str]]] = {
    "year": ("T.year", NUM),
    "month": ("T.month", NUM),
    "day": ("T.day", NUM),
    "hour": ("T.hour", NUM),
    "minute": ("T.minute", NUM),
    "second": ("T.second", NUM),
    "microsecond": ("T.microsecond", NUM),
    "weekday": ("T.strftime('%A')", STR),
}
_STRING_METHODS: Final[Mapping[str, str]] = {"starts_with": "T.startswith(A)", "ends_with": "T.endswith(A)"}


class _RuleCompiler:
    """Compiles one rule's expression tree into a Python expression over the section's leaves."""

    def __init__(self, section: _Section) -> None:
        self.section = section
        self.handlers: dict[type, Callable[[Any], _Value]] = {
            _rast.BooleanExpression: self.literal,
            _rast.FloatExpression: self.literal,
            _rast.StringExpression: self.literal,
            _rast.NullExpression: self.literal,
            _rast.DatetimeExpression: self.literal,
            _rast.TimedeltaExpression: self.literal,
            _rast.ArrayExpression: self.array,
            _rast.SetExpression: self.set_literal,
            _rast.SymbolExpression: self.symbol,
            _rast.GetAttributeExpression: self.attribute,
            _rast.FunctionCallExpression: self.call,
            _rast.ComparisonExpression: self.comparison,
            _rast.ArithmeticComparisonExpression: self.ordered,
            _rast.FuzzyComparisonExpression: self.regex,
            _rast.LogicExpression: self.logic,
            _rast.UnaryExpression: self.unary,
            _rast.ContainsExpression: self.contains,
            _rast.CoalesceExpression: self.coalesce,
            _rast.TernaryExpression: self.ternary,
            _rast.AddExpression: self.arithmetic,
            _rast.SubtractExpression: self.arithmetic,
            _rast.ArithmeticExpression: self.arithmetic,
        }

    def rule(self, rule: rule_engine.Rule) -> ast.expr:
        """The rule as an expression that is exactly ``True`` or ``False`` (or raises)."""
        if rule.context is not self.section.context:
            raise _Unsupported("a rule parsed with another context")
        value = self.value(rule.statement.expression)
        if value.kinds == {BOOL}:
            return value.expr
        return _expr("True if X else False", X=value.expr)

    def value(self, node: Any) -> _Value:
        handler = self.handlers.get(type(node))
        if handler is None:
            raise _Unsupported(type(node).__name__)
        return handler(node)

    def bound(self, value: _Value) -> tuple[ast.expr, ast.expr]:
        """``value`` used twice: (first use, which binds a temporary if needed; later uses)."""
        if isinstance(value.expr, ast.Name | ast.Constant):
            return value.expr, value.expr
        temp = self.section.fresh("t")
        return ast.NamedExpr(target=ast.Name(id=temp, ctx=ast.Store()), value=value.expr), _name(temp)

    # -- leaves and literals

    def literal(self, node: Any) -> _Value:
        value = _literal(node.value)
        return _Value(self.section.const(value), _kinds_of_literal(value), value)

    def array(self, node: Any) -> _Value:
        if node.is_reduced:
            value = _literal(node.evaluate(None))
            return _Value(self.section.const(value), frozenset({ARR}), value)
        members = [self.value(member).expr for member in node.value]
        return _Value(ast.Tuple(elts=members, ctx=ast.Load()), frozenset({ARR}))

    def set_literal(self, node: Any) -> _Value:
        if not node.is_reduced:
            raise _Unsupported("a set built from fields")
        value = _literal(node.evaluate(None))
        return _Value(self.section.const(value), frozenset({SET}), value)

    def symbol(self, node: Any) -> _Value:
        if node.scope is not None:
            raise _Unsupported(f"builtin ${node.name}")
        return self.leaf((node.name,), node.result_type)

    def leaf(self, path: tuple[str, ...], data_type: Any) -> _Value:
        kind = _leaf_kind(data_type)
        if kind is None:
            raise _Unsupported(f"field of type {getattr(data_type, 'name', data_type)}")
        return _Value(_name(self.section.leaf(path, kind)), frozenset({kind, NONE}))

    def object_path(self, node: Any) -> tuple[str, ...] | None:
        """The field path of an OBJECT-typed symbol or member chain read with the plain accessor."""
        if type(node) is _rast.SymbolExpression:
            is_object = node.scope is None and DataType.is_type(node.result_type, DataType.OBJECT)
            if is_object and node.result_type.accessor is member_accessor:
                return (node.name,)
            return None
        if type(node) is _rast.GetAttributeExpression and getattr(node, "_object_type", None) is not None:
            parent = self.object_path(node.object)
            result_type = node.result_type
            is_object = parent is not None and DataType.is_type(result_type, DataType.OBJECT)
            if is_object and parent is not None and result_type.accessor is member_accessor:
                return (*parent, node.name)
        return None

    # -- attribute access, method calls

    def attribute(self, node: Any) -> _Value:
        if getattr(node, "_object_type", None) is not None:
            parent = self.object_path(node.object)
            if parent is None or node._object_type.accessor is not member_accessor:
                raise _Unsupported("member of an OBJECT read by a custom accessor")
            return self.leaf((*parent, node.name), node.result_type)
        target = self.value(node.object)
        kinds = target.kinds - {NONE}
        table: Mapping[str, tuple[str, str]] = {}
        if kinds == {STR}:
            table = _STRING_ATTRIBUTES
        elif kinds == {ARR}:
            table = _ARRAY_ATTRIBUTES
        elif kinds == {DT}:
            table = _DATETIME_ATTRIBUTES
        if node.name not in table:
            raise _Unsupported(f"attribute .{node.name}")
        template, kind = table[node.name]
        # On null: `&.` gives null; so does `.`, by way of the context's default value (when that is
        # undefined rule-engine raises, and so does the Python expression).
        null_gives_null = node.safe or node.context.default_value is None
        if NONE not in target.kinds or not null_gives_null:
            return _Value(_expr(template, T=target.expr), frozenset({kind}))
        first, again = self.bound(target)
        expr = _expr(f"None if FIRST is None else {template}", FIRST=first, T=again)
        return _Value(expr, frozenset({kind}) | (target.kinds & {NONE}))

    def call(self, node: Any) -> _Value:
        function = node.function
        if type(function) is not _rast.GetAttributeExpression or function.safe:
            raise _Unsupported("function call")
        template = _STRING_METHODS.get(function.name)
        target = self.value(function.object)
        if template is None or target.kinds - {NONE} != {STR} or len(node.arguments) != 1:
            raise _Unsupported(f"call of .{function.name}")
        argument = self.value(node.arguments[0])
        if not argument.kinds <= {STR, NONE}:
            raise _Unsupported(f"call of .{function.name}")
        return _Value(_expr(template, T=target.expr, A=argument.expr), frozenset({BOOL}))

    # -- comparisons

    def comparison(self, node: Any) -> _Value:
        left, right = self.value(node.left), self.value(node.right)
        negate = node.type == "ne"
        if left.constant is None or right.constant is None:
            other = right if left.constant is None else left
            template = "X is not None" if negate else "X is None"
            return _Value(_expr(template, X=other.expr), frozenset({BOOL}))
        lk, rk = left.kinds - {NONE}, right.kinds - {NONE}
        mixes_bool_and_number = (BOOL in lk and NUM in rk) or (NUM in lk and BOOL in rk)
        if left.kinds <= _EQ_KINDS and right.kinds <= _EQ_KINDS and not mixes_bool_and_number:
            template = "L != R" if negate else "L == R"
        else:
            template = "NE(L, R)" if negate else "EQ(L, R)"
        return _Value(_expr(template, L=left.expr, R=right.expr), frozenset({BOOL}))

    def ordered(self, node: Any) -> _Value:
        left, right = self.value(node.left), self.value(node.right)
        lk, rk = left.kinds - {NONE}, right.kinds - {NONE}
        if lk != rk or len(lk) != 1 or not lk <= _ORDERED_KINDS:
            raise _Unsupported("ordered comparison of mixed or compound types")
        compare = ast.Compare(left=left.expr, ops=[_ORDER_OPS[node.type]], comparators=[right.expr])
        return _Value(compare, frozenset({BOOL}))

    def regex(self, node: Any) -> _Value:
        if type(node.right) is not _rast.StringExpression:
            raise _Unsupported("regex not written as a literal")
        left = self.value(node.left)
        if not left.kinds <= {STR, NONE}:
            raise _Unsupported("regex on a non-string")
        pattern = re.compile(node.right.value, flags=node.context.regex_flags)
        search = node.type.endswith("fzs")
        method = self.section.const(pattern.search if search else pattern.match)
        matches = node.type.startswith("eq")
        if NONE not in left.kinds:
            template = "M(L) is not None" if matches else "M(L) is None"
            return _Value(_expr(template, M=method, L=left.expr), frozenset({BOOL}))
        first, again = self.bound(left)
        if matches:
            expr = _expr("FIRST is not None and M(L) is not None", FIRST=first, M=method, L=again)
        else:
            expr = _expr("FIRST is None or M(L) is None", FIRST=first, M=method, L=again)
        return _Value(expr, frozenset({BOOL}))

    def contains(self, node: Any) -> _Value:
        container, member = self.value(node.container), self.value(node.member)
        kinds = container.kinds
        constant = container.constant
        if type(constant) is tuple and member.kinds <= {STR, NONE} and all(type(c) is str for c in constant):
            container = _Value(self.section.const(frozenset(constant)), frozenset({SET}), frozenset(constant))
        elif not (kinds <= {ARR, NONE} or kinds <= {STR, NONE} or kinds == {SET}):
            raise _Unsupported("containment in this type")
        # `x in "text"` raises for a non-string x (TypeError here, EvaluationError in rule-engine).
        expr = ast.Compare(left=member.expr, ops=[ast.In()], comparators=[container.expr])
        return _Value(expr, frozenset({BOOL}))

    # -- logic and control

    def logic(self, node: Any) -> _Value:
        left, right = self.value(node.left), self.value(node.right)
        op: ast.boolop = ast.And() if node.type == "and" else ast.Or()
        expr: ast.expr = ast.BoolOp(op=op, values=[left.expr, right.expr])
        if not (left.kinds == {BOOL} and right.kinds == {BOOL}):
            expr = _expr("True if X else False", X=expr)
        return _Value(expr, frozenset({BOOL}))

    def unary(self, node: Any) -> _Value:
        operand = self.value(node.right)
        if node.type == "not":
            return _Value(_expr("not X", X=operand.expr), frozenset({BOOL}))
        if node.type == "uminus" and operand.kinds <= {NUM, NONE}:
            minus = self.section.const(self.decimal_context(node).minus)
            return _Value(_expr("MINUS(DEC(X))", MINUS=minus, X=operand.expr), frozenset({NUM}))
        raise _Unsupported(f"unary {node.type}")

    def coalesce(self, node: Any) -> _Value:
        left, right = self.value(node.left), self.value(node.right)
        if NONE not in left.kinds:
            return left
        first, again = self.bound(left)
        # IfExp evaluates its test first, so the temporary is bound before it is read.
        expr = _expr("L if FIRST is not None else R", FIRST=first, L=again, R=right.expr)
        return _Value(expr, (left.kinds - {NONE}) | right.kinds)

    def ternary(self, node: Any) -> _Value:
        condition = self.value(node.condition)
        true, false = self.value(node.case_true), self.value(node.case_false)
        expr = _expr("T if C else F", T=true.expr, C=condition.expr, F=false.expr)
        return _Value(expr, true.kinds | false.kinds)

    def arithmetic(self, node: Any) -> _Value:
        left, right = self.value(node.left), self.value(node.right)
        if node.type == "add" and left.kinds - {NONE} == {STR} and right.kinds - {NONE} == {STR}:
            return _Value(_expr("L + R", L=left.expr, R=right.expr), frozenset({STR}))
        method = _DECIMAL_OPS.get(node.type)
        if method is None or not (left.kinds <= {NUM, NONE} and right.kinds <= {NUM, NONE}):
            raise _Unsupported(f"arithmetic {node.type}")
        op = self.section.const(getattr(self.decimal_context(node), method))
        return _Value(_expr("OP(DEC(L), DEC(R))", OP=op, L=left.expr, R=right.expr), frozenset({NUM}))

    def decimal_context(self, node: Any) -> decimal.Context:
        """The decimal context rule-engine evaluates with (a private copy: flags stay ours)."""
        contexts = self.section.decimal_contexts
        if id(node.context) not in contexts:
            contexts[id(node.context)] = node.context.decimal_context.copy()
        return contexts[id(node.context)]


# -- the section --------------------------------------------------------------------------------


def _reference(rule: rule_engine.Rule) -> Callable[[Any], bool | BaseException]:
    """rule-engine's own evaluation of one rule, failures returned rather than raised."""

    def evaluate(facts: Any) -> bool | BaseException:
        try:
            return bool(rule.matches(facts))
        except Exception as exc:  # one failing rule must not fail the lead
            return exc

    return evaluate


class CompiledSection:
    """One section's rules as one generated function (see the module docstring)."""

    __slots__ = ("fallback_rules", "function", "rules", "source")

    def __init__(self, rules: Sequence[rule_engine.Rule]) -> None:
        self.rules: tuple[rule_engine.Rule, ...] = tuple(rules)
        self.fallback_rules: dict[int, str] = {}
        """Index of each rule evaluated by rule-engine, and the node that made it so."""
        self.function: SectionEvaluator
        """The generated function itself (what :meth:`CompiledEvaluator.compile` returns)."""
        self.function, self.source = self._build()

    def __call__(self, facts: Mapping[str, Any]) -> list[bool | BaseException]:
        return self.function(facts)

    def _build(self) -> tuple[SectionEvaluator, str]:
        reference = RuleEngineEvaluator().compile(self.rules)
        section = _Section(self.rules[0].context if self.rules else rule_engine.Context(default_value=None))
        section.namespace["FALLBACK"] = reference
        section.namespace["SECTION"] = self  # for compiled_section(); the code never reads it
        compiler = _RuleCompiler(section)
        body: list[ast.stmt] = []
        results: list[ast.expr] = []
        for index, rule in enumerate(self.rules):
            result = _name(f"r{index}")
            slow = section.const(_reference(rule))
            try:
                expr = compiler.rule(rule)
            except _Unsupported as exc:
                self.fallback_rules[index] = str(exc)
                body += _stmts("R = SLOW(facts)", R=result, SLOW=slow)
            else:
                body += _stmts(
                    "try:\n    R = X\nexcept Exception:\n    R = SLOW(facts)", R=result, X=expr, SLOW=slow
                )
            results.append(result)
        body = section.prologue() + body
        body.append(ast.Return(value=ast.List(elts=results, ctx=ast.Load())))
        function = ast.FunctionDef(
            name="section",
            args=ast.arguments(
                posonlyargs=[], args=[ast.arg(arg="facts")], kwonlyargs=[], kw_defaults=[], defaults=[]
            ),
            body=body,
            decorator_list=[],
            returns=None,
        )
        module = ast.fix_missing_locations(ast.Module(body=[function], type_ignores=[]))
        code = compile(module, filename="<leadroute compiled rules>", mode="exec")
        exec(code, section.namespace)  # noqa: S102 - code built from ast nodes; rule text is only data
        generated: SectionEvaluator = section.namespace["section"]
        return generated, ast.unparse(module)

    def explain(self) -> Iterator[str]:
        """One line per rule: compiled, or evaluated by rule-engine and why."""
        for index, rule in enumerate(self.rules):
            reason = self.fallback_rules.get(index)
            yield f"{index}: {'rule-engine (' + reason + ')' if reason else 'compiled'}: {rule.text}"


class CompiledEvaluator:
    """The default evaluator: each section compiled to one Python function."""

    def compile(self, rules: Sequence[rule_engine.Rule]) -> SectionEvaluator:
        """Return an evaluator for ``rules``, in order: the generated function itself."""
        return CompiledSection(rules).function


def compiled_section(evaluator: object) -> CompiledSection | None:
    """The :class:`CompiledSection` behind an evaluator :class:`CompiledEvaluator` returned, else None."""
    namespace = getattr(evaluator, "__globals__", None)
    found = namespace.get("SECTION") if isinstance(namespace, dict) else None
    return found if isinstance(found, CompiledSection) else None
