"""The compiled evaluator: specific semantics, failure isolation, fallbacks, and the default choice.

Every case is checked against rule-engine itself (the reference), and most also against the
answer written down here, so a change in either shows up.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import rule_engine
from rule_engine import DataType

from leadroute.config import Settings, SettingsError
from leadroute.rules import parse_ruleset, run_ruleset_tests
from leadroute.rules._facts import _member, context_for
from leadroute.rules.compiler import CompiledEvaluator, CompiledSection, compiled_section
from leadroute.rules.evaluator import RuleEngineEvaluator, evaluator_for

ROOT = Path(__file__).resolve().parent.parent
ATTRIBUTES: Mapping[str, Any] = {
    "form": DataType.STRING,
    "size": DataType.FLOAT,
    "flag": DataType.BOOLEAN,
    "seen": DataType.DATETIME,
    "tags": DataType.ARRAY(DataType.UNDEFINED),
}
CONTEXT = context_for("routing", ATTRIBUTES, ["fit", "engagement"])

Result = bool | BaseException


def build(texts: Sequence[str], context: rule_engine.Context = CONTEXT) -> CompiledSection:
    return CompiledSection([rule_engine.Rule(text, context=context) for text in texts])


def both(
    texts: Sequence[str], facts: Mapping[str, Any], context: rule_engine.Context = CONTEXT
) -> list[Result]:
    """The compiled results, after checking they are rule-engine's (same exception type and text)."""
    rules = [rule_engine.Rule(text, context=context) for text in texts]
    compiled = CompiledEvaluator().compile(rules)(facts)
    reference = RuleEngineEvaluator().compile(rules)(facts)
    assert len(compiled) == len(reference)
    for text, got, want in zip(texts, compiled, reference, strict=True):
        if isinstance(want, BaseException):
            assert type(got) is type(want), text
            assert str(got) == str(want), text
        else:
            assert got is want, text
    return compiled


def one(text: str, **facts: Any) -> Result:
    return both([text], facts)[0]


@pytest.mark.parametrize(
    ("text", "facts", "expected"),
    [
        # numbers are one type: 1 == 1.0, but "1" is not 1 and true is not 1
        ("employees == 1000", {"employees": 1000.0}, True),
        ("employees == 1000.0", {"employees": 1000}, True),
        ("attributes.size == 1", {"attributes": {"size": "1"}}, False),
        ("attributes.size == 1", {"attributes": {"size": True}}, False),
        ("attributes.flag == employees", {"attributes": {"flag": True}, "employees": 1}, False),
        ("attributes.flag != employees", {"attributes": {"flag": True}, "employees": 1}, True),
        ("annual_revenue == 0.1", {"annual_revenue": 0.1}, True),
        ("annual_revenue < 0.1000000000000000055511151231257827", {"annual_revenue": 0.1}, True),
        ("annual_revenue > 9007199254740992", {"annual_revenue": 9007199254740993.0}, False),
        # a float is its repr: 2.0**60 is 1.152921504606847e18 to rule-engine, not 2**60
        ("annual_revenue == 1152921504606846976", {"annual_revenue": 2.0**60}, False),
        ("annual_revenue > 1152921504606846976", {"annual_revenue": 2.0**60}, True),
        ("annual_revenue == 1152921504606847000", {"annual_revenue": 2.0**60}, True),
        # regexes: =~ is anchored at the start, =~~ searches
        ('title =~ "VP"', {"title": "SVP Sales"}, False),
        # ... at the start only, as docs/rules.md says: `$` makes it match the whole text
        ('title =~ "VP"', {"title": "VP Sales"}, True),
        ('title =~ "VP$"', {"title": "VP Sales"}, False),
        ('email_domain =~ ".*\\\\.edu"', {"email_domain": "mit.edu.example"}, True),
        ('email_domain =~ ".*\\\\.edu$"', {"email_domain": "mit.edu.example"}, False),
        ('email_domain =~ ".*\\\\.edu$"', {"email_domain": "mit.edu"}, True),
        ('title =~~ "VP"', {"title": "SVP Sales"}, True),
        ('title !~ "VP"', {"title": "SVP Sales"}, True),
        ('title !~~ "VP"', {"title": "SVP Sales"}, False),
        ('title =~ "VP"', {}, False),
        ('title !~~ "VP"', {"title": None}, True),
        # nulls and missing keys
        ("employees == null", {}, True),
        ("website != null", {"website": ""}, True),
        ("(employees ?? 0) >= 10", {}, False),
        ("(employees ?? 20) >= 10", {"employees": None}, True),
        ('title&.as_lower == "vp"', {"title": None}, False),
        ('title&.as_lower == "vp"', {"title": "VP"}, True),
        ('title.as_lower == "vp"', {}, False),  # attribute of null: the default value, null
        ("occurred_at.year == null", {}, True),
        ("is_free_email", {}, False),
        ("not is_free_email", {"is_free_email": None}, True),
        # containment in arrays and strings
        ('country in ["US", "CA"]', {"country": "CA"}, True),
        ('country in ["US", "CA"]', {}, False),
        ('"ac" in title', {"title": "Acme, acorn"}, True),
        ("employees in [1, 2.0, 3]", {"employees": 2}, True),
        ('"x" in attributes.tags', {"attributes": {"tags": ["x", 1]}}, True),
        ("1 in attributes.tags", {"attributes": {"tags": ["x", 1.0]}}, True),
        # string attributes and methods
        ("title.length > 3", {"title": "abcd"}, True),
        ('title.as_upper == "CTO"', {"title": "cto"}, True),
        ("title.is_empty", {"title": ""}, True),
        ('title.starts_with("Head")', {"title": "Head of IT"}, True),
        ('title.ends_with("")', {"title": "x"}, True),
        ('(title + "!") == "a!"', {"title": "a"}, True),
        # arithmetic is Decimal arithmetic
        ("annual_revenue / 3 == 1", {"annual_revenue": 3}, True),
        ("0.1 + 0.2 == 0.3", {}, True),
        ("annual_revenue + 0.2 == 0.3", {"annual_revenue": 0.1}, True),
        ("employees // 2 == -1", {"employees": -3}, True),
        ("employees % 5 == -3", {"employees": -3}, True),
        ("-employees < 0", {"employees": 3}, True),
        ("employees ** 2 == 9", {"employees": -3}, True),
        ("annual_revenue ** 0.5 == 1.5", {"annual_revenue": 2.25}, True),
        # ordered comparisons of strings, booleans and datetimes
        ('country < "DE"', {"country": "CA"}, True),
        ('occurred_at > d"2024-01-01"', {"occurred_at": datetime(2024, 6, 1, tzinfo=UTC)}, True),
        ('occurred_at > d"2024-01-01"', {"occurred_at": datetime(2024, 6, 1)}, True),  # naive: UTC
        ("occurred_at.year == 2024", {"occurred_at": datetime(2024, 6, 1, tzinfo=UTC)}, True),
        # datetime arithmetic and the clock
        ('occurred_at - t"P1D" < d"2024-01-01"', {"occurred_at": datetime(2024, 1, 1, 12, tzinfo=UTC)}, True),
        ('(occurred_at - d"2024-01-01") > t"PT11H"', {"occurred_at": datetime(2024, 1, 1, 12)}, True),
        ('t"P1D" + occurred_at > d"2024-01-02"', {"occurred_at": datetime(2024, 1, 1, 12, tzinfo=UTC)}, True),
        ("$now > occurred_at", {"occurred_at": datetime(2024, 1, 1, tzinfo=UTC)}, True),
        ('occurred_at > $today - t"P30D"', {"occurred_at": datetime(2024, 1, 1, tzinfo=UTC)}, False),
        ("$today <= $now", {}, True),
        # scoring context extras
        ("groups.fit >= 30 and score >= 70", {"groups": {"fit": 30.0}, "score": 70.5}, True),
        ('stage in ["sql", "mql"]', {"stage": "mql"}, True),
        ("(is_free_email ? 1 : 2) == 2", {"is_free_email": False}, True),
    ],
)
def test_agrees_with_rule_engine(text: str, facts: dict[str, Any], expected: bool) -> None:
    assert one(text, **facts) is expected
    assert not build([text]).fallback_rules


@pytest.mark.parametrize(
    ("text", "facts"),
    [
        ("employees >= 1000", {}),  # ordered comparison with null
        ("employees >= 1000", {"employees": float("nan")}),  # Decimal NaN comparisons raise
        ('title.starts_with("x")', {}),  # method of null
        ("title in 'abc'", {}),  # null member of a string
        ("employees / 0 > 1", {"employees": 1}),
        ("attributes.size > 1", {"attributes": {"size": "2"}}),  # declared FLOAT, holds a string
        ('attributes.form =~ "x"', {"attributes": {"form": 3}}),
        ("employees > 1", {"employees": "many"}),  # wrong type in the lead itself
    ],
)
def test_failures_are_rule_engines_own(text: str, facts: dict[str, Any]) -> None:
    assert isinstance(one(text, **facts), BaseException)


def test_null_ordered_comparisons_follow_rule_engine_not_python() -> None:
    # rule-engine: null >= null is true and null > null false; Python would raise.
    assert one("employees >= annual_revenue") is True
    assert one("employees > annual_revenue") is False


def test_a_failing_rule_does_not_affect_the_others() -> None:
    texts = ["employees >= 10", 'country == "US"', "title.length > 2", "true"]
    results = both(texts, {"country": "US"})
    assert isinstance(results[0], rule_engine.errors.EvaluationError)
    assert results[1] is True
    assert isinstance(results[2], rule_engine.errors.EngineError)
    assert results[3] is True


def test_odd_input_is_evaluated_by_rule_engine() -> None:
    texts = ['country == "US"', "(employees ?? 0) > 5", "attributes.form == null"]
    for facts in (
        {"country": "US", "employees": True},  # bool where a number is declared
        {"country": 1, "employees": 10},
        {"attributes": "not a mapping"},
        {"attributes": {"form": ["a"]}},
        {"employees": Decimal("7")},
        {"occurred_at": "2024-01-01"},
    ):
        both(texts, facts)
    assert both(texts, {"country": "US", "employees": 10**40})[:2] == [True, True]
    assert both(texts, MappingProxyType({"country": "US", "employees": 9}))[:2] == [True, True]


def test_uncovered_nodes_fall_back_for_that_rule_only() -> None:
    texts = ['country == "US"', "occurred_at.to_epoch > 0", '["a", "b"][0] == country', "title[0] == 'V'"]
    section = build(texts)
    assert sorted(section.fallback_rules) == [1, 3]  # the item of a literal array is folded at parse time
    now = datetime.now(UTC)
    assert both(texts, {"country": "a", "occurred_at": now, "title": "VP"}) == [False, True, True, True]
    assert "rule-engine" in next(line for line in section.explain() if line.startswith("1:"))


def test_rule_text_is_data_never_code() -> None:
    text = 'title == "\\"); raise SystemExit(\\"" or country == "\\\\x00\' + __import__(\'os\')"'
    assert one(text, title='"); raise SystemExit("') is True
    section = build([text])
    assert not section.fallback_rules
    tree = ast.parse(section.source)
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    strings = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)}
    assert not names & {"SystemExit", "__import__", "os"}
    assert '"); raise SystemExit("' in strings


def test_nested_objects_read_with_the_plain_accessor() -> None:
    inner = DataType.OBJECT("attributes", attributes={"form": DataType.STRING}, accessor=_member)
    lead = DataType.OBJECT(
        "lead", attributes={"title": DataType.STRING, "attributes": inner}, accessor=_member
    )
    symbols = {"type": DataType.STRING, "url": DataType.STRING, "lead": lead}
    context = rule_engine.Context(
        type_resolver=rule_engine.type_resolver_from_dict(symbols),
        default_value=None,
        default_timezone="utc",
        mapping_attribute_lookup=False,
    )
    texts = ['lead.attributes.form == "demo"', 'url =~~ "/pricing" and lead.title != null']
    assert not build(texts, context).fallback_rules
    facts = {"url": "https://x.example/pricing", "lead": {"title": "CTO", "attributes": {"form": "demo"}}}
    assert both(texts, facts, context) == [True, True]
    assert both(texts, {"lead": None}, context) == [False, False]
    assert both(texts, {"lead": {"attributes": None}}, context) == [False, False]
    both(texts, {"lead": {"attributes": "x"}}, context)


def test_the_default_ruleset_compiles_fully_and_its_tests_pass() -> None:
    ruleset = parse_ruleset((ROOT / "rules" / "inbound.yaml").read_text(), evaluator=CompiledEvaluator())
    for evaluator in (ruleset.scoring_evaluator, ruleset.qualification_evaluator, ruleset.routing_evaluator):
        section = compiled_section(evaluator)
        assert section is not None
        assert section.fallback_rules == {}
    assert all(outcome.passed for outcome in run_ruleset_tests(ruleset))


def test_compiled_is_the_default_and_rule_engine_can_be_chosen() -> None:
    text = (ROOT / "rules" / "inbound.yaml").read_text()
    assert compiled_section(parse_ruleset(text).scoring_evaluator) is not None
    chosen = evaluator_for(Settings.from_env({"LEADROUTE_RULES_EVALUATOR": "rule-engine"}).rules_evaluator)
    assert isinstance(chosen, RuleEngineEvaluator)
    assert compiled_section(parse_ruleset(text, evaluator=chosen).scoring_evaluator) is None
    with pytest.raises(SettingsError, match="LEADROUTE_RULES_EVALUATOR"):
        Settings.from_env({"LEADROUTE_RULES_EVALUATOR": "fast"})


def test_an_empty_section() -> None:
    assert CompiledEvaluator().compile([])({}) == []
