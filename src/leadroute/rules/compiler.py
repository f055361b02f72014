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
- **Nodes not covered** (builtins other than ``$now``/``$today``, comprehensions, item access and slices,
  mappings, bitwise operators, most number/date attributes, non-literal regexes) make that one
  rule use ``rule.matches``; :attr:`CompiledSection.fallback_rules` lists them.
- **Regexes** run with RE2 (:mod:`leadroute.rules._regex`) here and in ``rule.matches`` alike:
  a pattern RE2 cannot run raises ``RegexRefused`` when the section is built, never falls back
  to ``re``.

Why one module of ~470 lines: :class:`_RuleCompiler` is one method per kind of rule-engine node,
each keeping the parity rules above, and :class:`CompiledSection` is what runs its output and
falls back to rule-engine; the parts that know nothing of rule-engine nodes are in ``_codegen``.
"""

from __future__ import annotations

import ast
import decimal
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final

import rule_engine
from rule_engine import DataType

from leadroute.rules._codegen import (
    ARR,
    BOOL,
    DT,
    EQ_KINDS,
    NONE,
    NUM,
    ORDERED_KINDS,
    SET,
    STR,
    TD,
    Section,
    Unsupported,
    Value,
    build_expr,
    build_stmts,
    leaf_kind,
    literal_kinds,
    literal_value,
    load_name,
)
from leadroute.rules._facts import _member as member_accessor
from leadroute.rules._regex import compile_regex
from leadroute.rules.evaluator import RuleEngineEvaluator, SectionEvaluator

__all__ = ["CompiledEvaluator", "CompiledSection", "compiled_section"]

_rast = rule_engine.ast


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
_TEMPORAL_OPS: Final[Mapping[tuple[str, str, str], str]] = {
    ("add", DT, TD): DT,
    ("add", TD, DT): DT,
    ("add", TD, TD): TD,
    ("sub", DT, DT): TD,
    ("sub", DT, TD): DT,
    ("sub", TD, TD): TD,
}
"""Datetime arithmetic as rule-engine allows it (Python's operators give the same values)."""
_CLOCK_BUILTINS: Final[Mapping[str, str]] = {
    "now": "DATETIME.now(tz=TZ)",
    "today": "DATETIME.now(tz=TZ).replace(hour=0, minute=0, second=0, microsecond=0)",
}
_STRING_METHODS: Final[Mapping[str, str]] = {"starts_with": "T.startswith(A)", "ends_with": "T.endswith(A)"}


class _RuleCompiler:
    """Compiles one rule's expression tree into a Python expression over the section's leaves."""

    def __init__(self, section: Section) -> None:
        self.section = section
        self.handlers: dict[type, Callable[[Any], Value]] = {
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
            raise Unsupported("a rule parsed with another context")
        value = self.value(rule.statement.expression)
        if value.kinds == {BOOL}:
            return value.expr
        return build_expr("True if X else False", X=value.expr)

    def value(self, node: Any) -> Value:
        handler = self.handlers.get(type(node))
        if handler is None:
            raise Unsupported(type(node).__name__)
        return handler(node)

    def bound(self, value: Value) -> tuple[ast.expr, ast.expr]:
        """``value`` used twice: (first use, which binds a temporary if needed; later uses)."""
        if isinstance(value.expr, ast.Name | ast.Constant):
            return value.expr, value.expr
        temp = self.section.fresh("t")
        return ast.NamedExpr(target=ast.Name(id=temp, ctx=ast.Store()), value=value.expr), load_name(temp)

    # -- leaves and literals

    def literal(self, node: Any) -> Value:
        value = literal_value(node.value)
        return Value(self.section.const(value), literal_kinds(value), value)

    def array(self, node: Any) -> Value:
        if node.is_reduced:
            value = literal_value(node.evaluate(None))
            return Value(self.section.const(value), frozenset({ARR}), value)
        members = [self.value(member).expr for member in node.value]
        return Value(ast.Tuple(elts=members, ctx=ast.Load()), frozenset({ARR}))

    def set_literal(self, node: Any) -> Value:
        if not node.is_reduced:
            raise Unsupported("a set built from fields")
        value = literal_value(node.evaluate(None))
        return Value(self.section.const(value), frozenset({SET}), value)

    def symbol(self, node: Any) -> Value:
        if node.scope is None:
            return self.leaf((node.name,), node.result_type)
        if node.scope == rule_engine.builtins.Builtins.scope_name and node.name in _CLOCK_BUILTINS:
            # rule-engine reads the clock at each use, in the context's default timezone
            return Value(build_expr(_CLOCK_BUILTINS[node.name]), frozenset({DT}))
        raise Unsupported(f"builtin ${node.name}")

    def leaf(self, path: tuple[str, ...], data_type: Any) -> Value:
        kind = leaf_kind(data_type)
        if kind is None:
            raise Unsupported(f"field of type {getattr(data_type, 'name', data_type)}")
        return Value(load_name(self.section.leaf(path, kind)), frozenset({kind, NONE}))

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

    def attribute(self, node: Any) -> Value:
        if getattr(node, "_object_type", None) is not None:
            parent = self.object_path(node.object)
            if parent is None or node._object_type.accessor is not member_accessor:
                raise Unsupported("member of an OBJECT read by a custom accessor")
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
            raise Unsupported(f"attribute .{node.name}")
        template, kind = table[node.name]
        # On null: `&.` gives null; so does `.`, by way of the context's default value (when that is
        # undefined rule-engine raises, and so does the Python expression).
        null_gives_null = node.safe or node.context.default_value is None
        if NONE not in target.kinds or not null_gives_null:
            return Value(build_expr(template, T=target.expr), frozenset({kind}))
        first, again = self.bound(target)
        expr = build_expr(f"None if FIRST is None else {template}", FIRST=first, T=again)
        return Value(expr, frozenset({kind}) | (target.kinds & {NONE}))

    def call(self, node: Any) -> Value:
        function = node.function
        if type(function) is not _rast.GetAttributeExpression or function.safe:
            raise Unsupported("function call")
        template = _STRING_METHODS.get(function.name)
        target = self.value(function.object)
        if template is None or target.kinds - {NONE} != {STR} or len(node.arguments) != 1:
            raise Unsupported(f"call of .{function.name}")
        argument = self.value(node.arguments[0])
        if not argument.kinds <= {STR, NONE}:
            raise Unsupported(f"call of .{function.name}")
        return Value(build_expr(template, T=target.expr, A=argument.expr), frozenset({BOOL}))

    # -- comparisons

    def comparison(self, node: Any) -> Value:
        left, right = self.value(node.left), self.value(node.right)
        negate = node.type == "ne"
        if left.constant is None or right.constant is None:
            other = right if left.constant is None else left
            template = "X is not None" if negate else "X is None"
            return Value(build_expr(template, X=other.expr), frozenset({BOOL}))
        lk, rk = left.kinds - {NONE}, right.kinds - {NONE}
        mixes_bool_and_number = (BOOL in lk and NUM in rk) or (NUM in lk and BOOL in rk)
        if left.kinds <= EQ_KINDS and right.kinds <= EQ_KINDS and not mixes_bool_and_number:
            template = "L != R" if negate else "L == R"
        else:
            template = "NE(L, R)" if negate else "EQ(L, R)"
        return Value(build_expr(template, L=left.expr, R=right.expr), frozenset({BOOL}))

    def ordered(self, node: Any) -> Value:
        left, right = self.value(node.left), self.value(node.right)
        lk, rk = left.kinds - {NONE}, right.kinds - {NONE}
        if lk != rk or len(lk) != 1 or not lk <= ORDERED_KINDS:
            raise Unsupported("ordered comparison of mixed or compound types")
        compare = ast.Compare(left=left.expr, ops=[_ORDER_OPS[node.type]], comparators=[right.expr])
        return Value(compare, frozenset({BOOL}))

    def regex(self, node: Any) -> Value:
        if type(node.right) is not _rast.StringExpression:
            raise Unsupported("regex not written as a literal")
        left = self.value(node.left)
        if not left.kinds <= {STR, NONE}:
            raise Unsupported("regex on a non-string")
        pattern = compile_regex(node.right.value, node.context.regex_flags)  # RE2; raises if it cannot
        search = node.type.endswith("fzs")
        method = self.section.const(pattern.search if search else pattern.match)
        matches = node.type.startswith("eq")
        if NONE not in left.kinds:
            template = "M(L) is not None" if matches else "M(L) is None"
            return Value(build_expr(template, M=method, L=left.expr), frozenset({BOOL}))
        first, again = self.bound(left)
        if matches:
            expr = build_expr("FIRST is not None and M(L) is not None", FIRST=first, M=method, L=again)
        else:
            expr = build_expr("FIRST is None or M(L) is None", FIRST=first, M=method, L=again)
        return Value(expr, frozenset({BOOL}))

    def contains(self, node: Any) -> Value:
        container, member = self.value(node.container), self.value(node.member)
        kinds = container.kinds
        constant = container.constant
        if type(constant) is tuple and member.kinds <= {STR, NONE} and all(type(c) is str for c in constant):
            container = Value(self.section.const(frozenset(constant)), frozenset({SET}), frozenset(constant))
        elif not (kinds <= {ARR, NONE} or kinds <= {STR, NONE} or kinds == {SET}):
            raise Unsupported("containment in this type")
        # `x in "text"` raises for a non-string x (TypeError here, EvaluationError in rule-engine).
        expr = ast.Compare(left=member.expr, ops=[ast.In()], comparators=[container.expr])
        return Value(expr, frozenset({BOOL}))

    # -- logic and control

    def logic(self, node: Any) -> Value:
        left, right = self.value(node.left), self.value(node.right)
        op: ast.boolop = ast.And() if node.type == "and" else ast.Or()
        expr: ast.expr = ast.BoolOp(op=op, values=[left.expr, right.expr])
        if not (left.kinds == {BOOL} and right.kinds == {BOOL}):
            expr = build_expr("True if X else False", X=expr)
        return Value(expr, frozenset({BOOL}))

    def unary(self, node: Any) -> Value:
        operand = self.value(node.right)
        if node.type == "not":
            return Value(build_expr("not X", X=operand.expr), frozenset({BOOL}))
        if node.type == "uminus" and operand.kinds <= {NUM, NONE}:
            minus = self.section.const(self.decimal_context(node).minus)
            return Value(build_expr("MINUS(DEC(X))", MINUS=minus, X=operand.expr), frozenset({NUM}))
        if node.type == "uminus" and operand.kinds <= {TD, NONE}:
            return Value(build_expr("-X", X=operand.expr), frozenset({TD}))
        raise Unsupported(f"unary {node.type}")

    def coalesce(self, node: Any) -> Value:
        left, right = self.value(node.left), self.value(node.right)
        if NONE not in left.kinds:
            return left
        first, again = self.bound(left)
        # IfExp evaluates its test first, so the temporary is bound before it is read.
        expr = build_expr("L if FIRST is not None else R", FIRST=first, L=again, R=right.expr)
        return Value(expr, (left.kinds - {NONE}) | right.kinds)

    def ternary(self, node: Any) -> Value:
        condition = self.value(node.condition)
        true, false = self.value(node.case_true), self.value(node.case_false)
        expr = build_expr("T if C else F", T=true.expr, C=condition.expr, F=false.expr)
        return Value(expr, true.kinds | false.kinds)

    def arithmetic(self, node: Any) -> Value:
        left, right = self.value(node.left), self.value(node.right)
        lk, rk = left.kinds - {NONE}, right.kinds - {NONE}
        if node.type == "add" and lk == {STR} and rk == {STR}:
            return Value(build_expr("L + R", L=left.expr, R=right.expr), frozenset({STR}))
        if len(lk) == 1 and len(rk) == 1 and (node.type, *lk, *rk) in _TEMPORAL_OPS:
            template = "L + R" if node.type == "add" else "L - R"
            kind = _TEMPORAL_OPS[(node.type, *lk, *rk)]
            return Value(build_expr(template, L=left.expr, R=right.expr), frozenset({kind}))
        method = _DECIMAL_OPS.get(node.type)
        if method is None or not (left.kinds <= {NUM, NONE} and right.kinds <= {NUM, NONE}):
            raise Unsupported(f"arithmetic {node.type}")
        op = self.section.const(getattr(self.decimal_context(node), method))
        return Value(build_expr("OP(DEC(L), DEC(R))", OP=op, L=left.expr, R=right.expr), frozenset({NUM}))

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
        section = Section(self.rules[0].context if self.rules else rule_engine.Context(default_value=None))
        section.namespace["FALLBACK"] = reference
        section.namespace["SECTION"] = self  # for compiled_section(); the code never reads it
        compiler = _RuleCompiler(section)
        body: list[ast.stmt] = []
        results: list[ast.expr] = []
        for index, rule in enumerate(self.rules):
            result = load_name(f"r{index}")
            slow = section.const(_reference(rule))
            try:
                expr = compiler.rule(rule)
            except Unsupported as exc:
                self.fallback_rules[index] = str(exc)
                body += build_stmts("R = SLOW(facts)", R=result, SLOW=slow)
            else:
                body += build_stmts(
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
