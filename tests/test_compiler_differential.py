"""Differential tests: the compiled evaluator against rule-engine on generated rules and leads.

Rules come from a typed grammar covering what the compiler handles (and a few nodes it leaves to
rule-engine); leads are valid, null-laden, wrong-typed or missing keys. Every result must be
identical: the same boolean, or an exception of the same type with the same text, and the
scores that follow from them (``scoring.score``, ``scoring.evaluate``) must be equal.

Regexes run with RE2 in both of leadroute's evaluators (``rules._regex``), so those two must
agree everywhere. Each result is also compared with rule-engine exactly as shipped, matching
with ``re`` (:func:`python_re_rules`): they must agree for every pattern both accept, except on
the two differences docs/rules-format.md states (:func:`re_may_differ`), which
tests/test_rules_regex.py pins one by one.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import rule_engine
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from rule_engine import DataType

from leadroute.models import NormalizedLead
from leadroute.rules import parse_ruleset
from leadroute.rules._expressions import static_problems
from leadroute.rules._facts import context_for
from leadroute.rules._regex import literal_regexes
from leadroute.rules.compiler import CompiledEvaluator
from leadroute.rules.evaluator import RuleEngineEvaluator, SectionEvaluator
from leadroute.scoring import evaluate, score

ROOT = Path(__file__).resolve().parent.parent
ATTRIBUTES: Mapping[str, Any] = {
    "form": DataType.STRING,
    "size": DataType.FLOAT,
    "flag": DataType.BOOLEAN,
    "seen": DataType.DATETIME,
    "tags": DataType.ARRAY(DataType.UNDEFINED),
}
FIELDS_DECLARED = {
    "attributes.form": "STRING",
    "attributes.size": "FLOAT",
    "attributes.flag": "BOOLEAN",
    "attributes.seen": "DATETIME",
    "attributes.tags": "ARRAY",
}
ROUTING = context_for("routing", ATTRIBUTES, ["fit", "engagement"])
SCALE = float(os.environ.get("LEADROUTE_DIFFERENTIAL_SCALE", "1"))
"""Multiplies every example count: LEADROUTE_DIFFERENTIAL_SCALE=20 for a long hunt (minutes)."""
SETTINGS = settings(
    max_examples=int(120 * SCALE),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example],
)

# -- rules ------------------------------------------------------------------------------------

LEAD_STRINGS = ["title", "country", "email_domain", "first_name", "source", "utm_medium", "attributes.form"]
LEAD_NUMBERS = ["employees", "annual_revenue", "attributes.size"]
LEAD_BOOLS = ["is_free_email", "attributes.flag"]
LEAD_DATES = ["occurred_at", "attributes.seen"]
STRING_LITERALS = ['""', '"US"', '"us"', '"VP Sales"', '"Test"', '"a"', '"é"', '"web_form"', '"demo"']
NUMBER_LITERALS = [
    "0", "1", "-1", "3", "10", "1000", "0.5", "1.0", "0.1", "2.5e-1", "1e3", "-0.0",
    "9007199254740993", "0.1000000000000000055511151231257827", "1152921504606846976", "1e16",
]  # fmt: skip
REGEXES = [
    r'"(?i)^te"',
    r'"a.c"',
    r'"^[A-Z]{2}$"',
    r'"(?i)\\b(vp|director)\\b"',
    '""',
    r'"s$"',
    r'"[.](edu|ac)$"',
    r'"(?i)É"',
    r'"^\\w+$"',
    r'"\\s"',
    r'"\\d{3}"',
    r'"\\Bv"',
    r'"(?m)^s$"',
    r'"(?s)a.c"',
    r'"^(?:v|vp)+$"',
    r'"[^a-z ]"',
    r'"(?i:t)e"',
    r'"x{0,2}$"',
    r'"\\x41"',
    r'"\\Aab"',
]
DURATIONS = ['t"P1D"', 't"PT12H"', 't"-P30D"']
DATE_LITERALS = ['d"2024-01-01"', 'd"2024-06-01T12:00:00Z"', 'd"2030-01-01 00:00:00-05:00"']


def grammar(
    strings: Sequence[str], numbers: Sequence[str], bools: Sequence[str], dates: Sequence[str]
) -> Any:
    """A strategy of boolean rule texts over the given fields (each list names fields of one type)."""
    s_lit, n_lit = st.sampled_from(STRING_LITERALS), st.sampled_from(NUMBER_LITERALS)
    s_base = st.sampled_from(list(strings)) | s_lit
    n_base = st.sampled_from(list(numbers)) | n_lit
    d_field = st.sampled_from(list(dates))
    d_base = st.one_of(
        d_field,
        st.sampled_from([*DATE_LITERALS, "$today"]),
        st.builds("({} - {})".format, d_field, st.sampled_from(DURATIONS)),
        st.builds("({} + {})".format, st.sampled_from(DURATIONS), d_field),
    )
    bool_expr = st.deferred(lambda: expr)

    def s_ext(inner: Any) -> Any:
        return st.one_of(
            st.builds("{}.as_lower".format, inner),
            st.builds("{}&.as_upper".format, inner),
            st.builds("({} ?? {})".format, inner, s_lit),
            st.builds("({} + {})".format, inner, inner),
            st.builds("({} ? {} : {})".format, bool_expr, inner, inner),
        )

    def n_ext(inner: Any) -> Any:
        ops = st.sampled_from(["+", "-", "*", "/", "//", "%"])
        return st.one_of(
            st.builds("({} ?? {})".format, inner, n_lit),
            st.builds("{}.length".format, s_base),
            st.builds("({} {} {})".format, inner, ops, inner),
            st.builds("-{}".format, st.sampled_from(list(numbers))),
            st.builds("{}.year".format, d_base),
        )

    s_expr = st.recursive(s_base, s_ext, max_leaves=3)
    n_expr = st.recursive(n_base, n_ext, max_leaves=3)
    cmp_ops = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
    eq_ops = st.sampled_from(["==", "!="])
    regex_ops = st.sampled_from(["=~", "=~~", "!~", "!~~"])
    atoms = st.one_of(
        st.sampled_from([*bools, "true", "false"]),
        st.builds("{} {} {}".format, s_expr, cmp_ops, s_expr),
        st.builds("{} {} {}".format, n_expr, cmp_ops, n_expr),
        st.builds("{} {} {}".format, d_base, cmp_ops, d_base),
        st.builds("({} - {}) {} {}".format, d_field, d_base, cmp_ops, st.sampled_from(DURATIONS)),
        st.builds("{} {} {}".format, st.sampled_from(list(bools)), eq_ops, st.sampled_from(list(bools))),
        st.builds("{} {} {}".format, st.sampled_from(list(bools)), eq_ops, n_expr),  # bool vs number
        st.builds("{} {} {}".format, s_expr, eq_ops, n_expr),  # string vs number
        st.builds("{} {} null".format, s_expr | n_expr | st.sampled_from(list(bools)), eq_ops),
        st.builds("{} {} {}".format, s_expr, regex_ops, st.sampled_from(REGEXES)),
        st.builds("{} in [{}]".format, s_expr, st.lists(s_lit, max_size=3).map(", ".join)),
        st.builds("{} in [{}]".format, n_expr, st.lists(n_lit, max_size=3).map(", ".join)),
        st.builds("{} in {}".format, s_expr, s_expr),
        st.builds("{} in attributes.tags".format, s_expr | n_expr),
        st.builds("attributes.tags.length > {}".format, n_lit),
        st.builds('{}.starts_with("{}")'.format, s_expr, st.sampled_from(["", "V", "te"])),
        st.builds('{}.ends_with("{}")'.format, s_expr, st.sampled_from(["", "s", ".edu"])),
        st.builds("{}.is_empty".format, s_expr),
        st.sampled_from(
            ["$now > occurred_at", "occurred_at.to_epoch > 0", "[1, 2, 3][1] == employees", "title[0] == 'V'"]
        ),  # the clock, and nodes left to rule-engine
    )
    expr = st.recursive(
        atoms,
        lambda inner: st.one_of(
            st.builds("not ({})".format, inner),
            st.builds("({} and {})".format, inner, inner),
            st.builds("({} or {})".format, inner, inner),
            st.builds("({} ? {} : {})".format, inner, inner, inner),
        ),
        max_leaves=4,
    )
    return expr


LEAD_RULES = grammar(LEAD_STRINGS, LEAD_NUMBERS, LEAD_BOOLS, LEAD_DATES)
ROUTING_RULES = grammar(
    [*LEAD_STRINGS, "stage"],
    [*LEAD_NUMBERS, "score", "groups.fit", "groups.engagement"],
    LEAD_BOOLS,
    LEAD_DATES,
)

# -- leads ------------------------------------------------------------------------------------
# Drawn from a random.Random seeded by hypothesis: many leads per generated rule
# list cost little, and a failure still replays from hypothesis's database.

TEXT_POOL = [
    "", "US", "us", "DE", "VP Sales", "Sales VP", "vp", "Test", "testy", "atest", "abc", "a.c", "xa.c",
    "Director of IT", "é", "x.edu", "x.ac", "demo", "web_form", "s", "TE", "Head of Sales",
    "a\nc", "s\n", "vp\n", "évp", "café", "Émile", "٣٣٣", "a\u00a0b", "123", "A1", "ab",
]  # fmt: skip
INT_POOL = [0, 1, -1, 3, 10, 999, 1000, 1001, 2**53 + 1, 10**30, -(2**60)]
FLOAT_POOL = [
    0.0, -0.0, 0.5, 0.1, 0.25, 1.0, 3.0, 1000.0, 1e16, 2.0**60, 9007199254740993.0, 0.30000000000000004,
    float("nan"), float("inf"), float("-inf"), 1e-300,
]  # fmt: skip
STAGES = ["lead", "mql", "sql", "disqualified"]


def _text(rng: random.Random) -> str:
    if rng.random() < 0.8:
        return rng.choice(TEXT_POOL)
    return "".join(rng.choice("aAsSvVtT.é ") for _ in range(rng.randrange(5)))


def _integer(rng: random.Random) -> int:
    return rng.choice(INT_POOL) if rng.random() < 0.5 else rng.randrange(-2000, 2000)


def _number(rng: random.Random) -> int | float:
    roll = rng.random()
    if roll < 0.35:
        return _integer(rng)
    if roll < 0.7:
        return rng.choice(FLOAT_POOL)
    return rng.uniform(-2000, 2000) if roll < 0.85 else float(rng.randrange(-2000, 2000))


def _datetime(rng: random.Random) -> datetime:
    moment = datetime(2020, 1, 1) + timedelta(seconds=rng.randrange(20 * 365 * 86400))
    return moment.replace(tzinfo=UTC) if rng.random() < 0.5 else moment


def _tags(rng: random.Random) -> list[Any]:
    makers: list[Callable[[random.Random], Any]] = [
        _text,
        _number,
        lambda r: r.random() < 0.5,
        lambda r: None,
    ]
    return [rng.choice(makers)(rng) for _ in range(rng.randrange(4))]


def _wrong(rng: random.Random) -> Any:
    makers: list[Callable[[random.Random], Any]] = [
        _text, _integer, _number, lambda r: r.random() < 0.5, _datetime, lambda r: date(2024, 1, 1),
        lambda r: Decimal("2.5"), lambda r: [1, "a"], lambda r: {"a": 1}, lambda r: timedelta(days=1),
    ]  # fmt: skip
    return rng.choice(makers)(rng)


def _value(rng: random.Random, make: Any, odd: bool) -> Any:
    roll = rng.random()
    if roll < 0.25:
        return None
    if odd and roll < 0.4:
        return _wrong(rng)
    return make(rng)


MAKERS: Mapping[str, Any] = {
    **{name: _text for name in LEAD_STRINGS if "." not in name},
    "employees": _integer,
    "annual_revenue": _number,
    "is_free_email": lambda r: r.random() < 0.5,
    "occurred_at": _datetime,
}
MEMBER_MAKERS: Mapping[str, Any] = {
    "form": _text, "size": _number, "flag": lambda r: r.random() < 0.5, "seen": _datetime, "tags": _tags,
}  # fmt: skip


def make_facts(rng: random.Random, *, routing: bool) -> dict[str, Any]:
    """Lead facts: keys missing at random, many nulls; one lead in four has odd values."""
    odd = rng.random() < 0.25
    facts = {name: _value(rng, make, odd) for name, make in MAKERS.items() if rng.random() < 0.85}
    members = {name: _value(rng, make, odd) for name, make in MEMBER_MAKERS.items() if rng.random() < 0.8}
    facts["attributes"] = rng.choice([None, "x", members]) if odd and rng.random() < 0.2 else members
    if routing:
        facts["score"] = _value(rng, _number, odd)
        facts["stage"] = _value(rng, lambda r: r.choice(STAGES), odd)
        facts["groups"] = {name: _value(rng, _number, odd) for name in ("fit", "engagement")}
    return facts


_UNICODE_CLASSES = re.compile(r"\\[bBwWdDsS]")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def re_may_differ(rule: rule_engine.Rule, facts: Mapping[str, Any]) -> bool:
    """Whether RE2 may answer ``rule`` on ``facts`` otherwise than ``re``, as documented:
    ``\\b \\w \\d \\s`` (and negations) on non-ASCII text, ``$`` before a final newline."""
    patterns = literal_regexes(rule)
    texts = list(_strings(facts))
    if any(_UNICODE_CLASSES.search(p) for p in patterns) and not all(t.isascii() for t in texts):
        return True
    return any("$" in p for p in patterns) and any(t.endswith("\n") for t in texts)


def python_re_rules(rules: Sequence[rule_engine.Rule]) -> list[rule_engine.Rule]:
    """The same rules parsed again: rule-engine as shipped, its regexes matched by ``re``."""
    return [rule_engine.Rule(rule.text, context=rule.context) for rule in rules]


def _same(where: str, got: bool | BaseException, want: bool | BaseException) -> None:
    if isinstance(want, BaseException):
        assert isinstance(got, BaseException), f"{where}: compiled {got}, rule-engine raised {want!r}"
        assert type(got) is type(want), where
        assert str(got) == str(want), where
    else:
        assert got is want, f"{where}: compiled {got!r}, rule-engine {want!r}"


def assert_same(rules: Sequence[rule_engine.Rule], facts_list: Sequence[Mapping[str, Any]]) -> None:
    compiled = CompiledEvaluator().compile(rules)
    reference = RuleEngineEvaluator().compile(rules)  # RE2, as the service runs rule-engine
    shipped = python_re_rules(rules)
    for facts in facts_list:
        for rule, plain, got, want in zip(rules, shipped, compiled(facts), reference(facts), strict=True):
            where = f"{rule.text!r} on {facts!r}"
            _same(where, got, want)
            if not re_may_differ(rule, facts):
                _same(f"{where} (rule-engine with re)", got, _matches(plain, facts))


def _matches(rule: rule_engine.Rule, facts: Mapping[str, Any]) -> bool | BaseException:
    try:
        return bool(rule.matches(facts))
    except Exception as exc:
        return exc


def parsed(texts: Sequence[str], context: rule_engine.Context) -> list[rule_engine.Rule]:
    rules = []
    for text in texts:
        try:
            rules.append(rule_engine.Rule(text, context=context))
        except rule_engine.errors.EngineError:  # e.g. an ill-typed combination, or a literal 1/0
            continue
    assume(rules)
    return rules


@SETTINGS
@given(texts=st.lists(ROUTING_RULES, min_size=1, max_size=6), seed=st.integers(0, 2**32))
def test_generated_rules_agree_on_every_result(texts: list[str], seed: int) -> None:
    rng = random.Random(seed)
    assert_same(parsed(texts, ROUTING), [make_facts(rng, routing=True) for _ in range(40)])


def ruleset_text(whens: Sequence[str]) -> str:
    rules = [
        {"id": f"r{i}", "group": "fit" if i % 2 else "engagement", "when": when, "points": (i % 7) * 5 - 10}
        for i, when in enumerate(whens)
    ]
    document = {
        "version": 1,
        "description": "generated",
        "fields": FIELDS_DECLARED,
        "scoring": {
            "groups": {"fit": {"max": 60, "min": 0}, "engagement": {"max": 40}},
            "rules": rules,
        },
        "qualification": [{"id": "q", "stage": "mql", "when": "score >= 20"}, {"stage": "lead"}],
        "routing": {"rules": [{"id": "all", "when": "true", "pool": "inbound"}], "fallback": "unassigned"},
    }
    return yaml.safe_dump(document, sort_keys=False)


@settings(
    max_examples=int(60 * SCALE),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example],
)
@given(texts=st.lists(LEAD_RULES, min_size=1, max_size=8), seed=st.integers(0, 2**32))
def test_generated_rulesets_agree_on_totals(texts: list[str], seed: int) -> None:
    rng = random.Random(seed)
    scoring_context = context_for("scoring", ATTRIBUTES, ["fit", "engagement"])
    # the loader refuses comparisons that can never hold (title == 5); the evaluators still agree on them
    whens = [rule.text for rule in parsed(texts, scoring_context) if not static_problems(rule)]
    text = ruleset_text(whens)
    compiled = parse_ruleset(text, evaluator=CompiledEvaluator())
    reference = parse_ruleset(text, evaluator=RuleEngineEvaluator())
    for _ in range(40):
        facts = make_facts(rng, routing=False)
        assert score(compiled, facts) == score(reference, facts)


class ShippedRuleEngine:
    """rule-engine as shipped, its regexes matched by ``re``: what the RE2 evaluators are held to."""

    def compile(self, rules: Sequence[rule_engine.Rule]) -> SectionEvaluator:
        shipped = python_re_rules(rules)

        def section(facts: Mapping[str, Any]) -> list[bool | BaseException]:
            return [_matches(rule, facts) for rule in shipped]

        return section


INBOUND = (ROOT / "rules" / "inbound.yaml").read_text()
INBOUND_COMPILED = parse_ruleset(INBOUND, evaluator=CompiledEvaluator())
INBOUND_REFERENCE = parse_ruleset(INBOUND, evaluator=RuleEngineEvaluator())
INBOUND_SHIPPED = parse_ruleset(INBOUND, evaluator=ShippedRuleEngine())

REALISTIC = st.builds(
    NormalizedLead,
    source=st.sampled_from(["web_form", "crm", "import", None]),
    email_domain=st.sampled_from(
        ["acme.example", "gmail.com", "mit.edu", "competitor.example", "test.com", None]
    ),
    is_free_email=st.booleans(),
    first_name=st.sampled_from(["Jane", "Test", "asdf", "xxxx", None]),
    last_name=st.sampled_from(["Doe", "qwerty", "Tester", None]),
    phone_e164=st.sampled_from(["+14155550100", None]),
    title=st.sampled_from(
        ["VP Sales", "Chief Executive Officer", "IT Manager", "Student", "Head of Ops", None]
    ),
    website=st.sampled_from(["https://acme.example", None]),
    company_domain=st.sampled_from(["acme.example", "rivalsoft.example", None]),
    country=st.sampled_from(["US", "CA", "DE", "GB", "BR", "LU", None]),
    employees=st.none() | st.integers(0, 20_000),
    annual_revenue=st.none() | st.floats(0, 1e9, allow_nan=False) | st.integers(0, 10**9).map(float),
    industry=st.sampled_from(["Software", "SaaS", "Retail", "Financial Services", None]),
    utm_medium=st.sampled_from(["cpc", "email", "organic", "referral", "partner", None]),
    attributes=st.fixed_dictionaries(
        {}, optional={"form": st.sampled_from(["demo", "contact", "pricing", "ebook", "newsletter"])}
    ),
)


def odd_lead(rng: random.Random) -> NormalizedLead:
    """A lead whose fields hold whatever was generated (msgspec does not check on construction)."""
    facts = make_facts(rng, routing=False)
    return NormalizedLead(**facts)


@settings(max_examples=int(100 * SCALE), deadline=None)
@given(lead=REALISTIC, seed=st.integers(0, 2**32))
def test_default_ruleset_agrees_on_whole_evaluations(lead: NormalizedLead, seed: int) -> None:
    rng = random.Random(seed)
    for one in (lead, odd_lead(rng), odd_lead(rng)):
        compiled = evaluate(INBOUND_COMPILED, one)
        assert compiled == evaluate(INBOUND_REFERENCE, one)
        texts = list(_strings(msgspec.structs.asdict(one)))
        if all(t.isascii() and not t.endswith("\n") for t in texts):  # see re_may_differ
            assert compiled == evaluate(INBOUND_SHIPPED, one)
