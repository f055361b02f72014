"""Rule regexes run with RE2: linear time in both evaluators, and what RE2 cannot run is a load error."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
import rule_engine

from leadroute.models import NormalizedLead
from leadroute.rules import RuleEngineEvaluator, RulesetError, parse_ruleset
from leadroute.rules._facts import context_for
from leadroute.rules._regex import RegexRefused, compile_regex, use_re2
from leadroute.rules.compiler import CompiledEvaluator, compiled_section
from leadroute.scoring import evaluate

EVALUATORS = [
    pytest.param(CompiledEvaluator(), id="compiled"),
    pytest.param(RuleEngineEvaluator(), id="rule-engine"),
]

# Line numbers below are asserted by the tests: edit with care.
TEMPLATE = """\
version: 1
fields:
  attributes.pattern: STRING
scoring:
  groups: {fit: {max: 60}}
  rules:
    - id: safe
      group: fit
      when: 'title =~~ "(?i)\\\\bvp\\\\b"'
      points: 5
    - id: evil
      group: fit
      when: 'WHEN'
      points: 10
qualification:
  - {stage: lead}
routing:
  rules: []
  fallback: unassigned
"""
EVIL_TITLE = "a" * 254 + "!"  # 255 characters, the longest title: 2**254 paths for re


def ruleset_with(when: str, evaluator: Any) -> Any:
    return parse_ruleset(TEMPLATE.replace("WHEN", when), evaluator=evaluator)


def load_problems(when: str) -> list[str]:
    with pytest.raises(RulesetError) as info:
        ruleset_with(when, CompiledEvaluator())
    return [str(problem) for problem in info.value.problems]


class TestLinearTime:
    """A pattern that makes ``re`` backtrack exponentially answers at once."""

    @pytest.mark.parametrize("evaluator", EVALUATORS)
    @pytest.mark.parametrize("when", ['title =~ "(a+)+$"', 'title =~~ "(a|aa)+$"', 'title !~ "(a*)*b"'])
    def test_load_and_evaluate_a_255_character_title_in_under_100_ms(self, evaluator: Any, when: str) -> None:
        started = time.perf_counter()
        ruleset = ruleset_with(when, evaluator)
        result = evaluate(ruleset, NormalizedLead(email="a@b.example", title=EVIL_TITLE))
        elapsed = time.perf_counter() - started
        assert elapsed < 0.1, f"{elapsed:.3f} s"
        assert ("evil" in {hit.rule for hit in result.hits}) is when.startswith("title !~")

    @pytest.mark.parametrize("evaluator", EVALUATORS)
    def test_a_pattern_read_from_the_lead_runs_with_re2_too(self, evaluator: Any) -> None:
        ruleset = ruleset_with("title =~ attributes.pattern", evaluator)
        lead = NormalizedLead(email="a@b.example", title=EVIL_TITLE, attributes={"pattern": "(a+)+$"})
        started = time.perf_counter()
        result = evaluate(ruleset, lead)
        assert time.perf_counter() - started < 0.1
        assert "evil" not in {hit.rule for hit in result.hits}

    def test_a_pattern_from_the_lead_that_re2_refuses_is_a_rule_error_not_re(self) -> None:
        ruleset = ruleset_with("title =~ attributes.pattern", CompiledEvaluator())
        lead = NormalizedLead(email="a@b.example", title="aa", attributes={"pattern": "(a)\\1"})
        result = evaluate(ruleset, lead)
        assert "evil" not in {hit.rule for hit in result.hits}
        assert "evil" in {e.rule for e in result.rule_errors}

    def test_the_compiled_section_holds_re2_patterns(self) -> None:
        ruleset = ruleset_with('title =~ "(a+)+$"', CompiledEvaluator())
        section = compiled_section(ruleset.scoring_evaluator)
        assert section is not None
        patterns = [v for v in section.function.__globals__.values() if hasattr(v, "__self__")]  # type: ignore[attr-defined]
        assert patterns
        assert all(type(p.__self__).__module__.startswith("re2") for p in patterns)


class TestRefusedAtLoad:
    """What RE2 cannot run is a problem at the rule's line and column, naming the rule and why."""

    @pytest.mark.parametrize(
        ("pattern", "why"),
        [
            ("(a)\\\\1", "backreferences"),
            ("(?P<x>a)(?P=x)", "backreferences ((?P=name))"),
            ("vp(?=\\\\s)", "lookahead or lookbehind"),
            ("(?<!s)vp", "lookahead or lookbehind"),
            ("(?>vp)", "atomic groups"),
            ("a*+", "possessive"),
            ("vp\\\\Z", "write $"),
            ("a{,3}", "write {0,n}"),
            ("a{1001}", "above 1000"),
        ],
    )
    def test_each_construct_re2_lacks(self, pattern: str, why: str) -> None:
        (problem,) = load_problems(f'title =~~ "{pattern}"')
        assert problem.startswith("<ruleset>:13:13: rule 'evil': unsupported regular expression in 'when: ")
        assert why in problem

    def test_a_posix_class_means_something_else_to_re_and_is_refused(self) -> None:
        with pytest.warns(FutureWarning, match="nested set"):  # re's reading: a set holding "[:alph"
            (problem,) = load_problems('title =~~ "[[:alpha:]]"')
        assert "POSIX classes such as [[:alpha:]] are not supported; write [a-zA-Z]" in problem

    def test_a_pattern_re_refuses_keeps_its_message(self) -> None:
        (problem,) = load_problems('title =~ "(vp"')
        assert "invalid regular expression" in problem
        assert "rule 'evil'" in problem

    def test_rules_built_outside_the_loader_are_refused_too(self) -> None:
        context = context_for("scoring", {}, [])
        rule = rule_engine.Rule('title =~ "(a)\\\\1"', context=context)
        with pytest.raises(RegexRefused):
            CompiledEvaluator().compile([rule])
        with pytest.raises(RegexRefused):
            RuleEngineEvaluator().compile([rule])


class TestSemantics:
    """``=~`` is anchored at the start, ``=~~`` searches; RE2 differs from ``re`` only where documented."""

    @pytest.mark.parametrize(
        ("pattern", "text", "match", "search"),
        [
            ("VP", "VP Sales", True, True),
            ("VP", "SVP Sales", False, True),
            ("VP$", "VP", True, True),
            ("VP$", "VP Sales", False, False),
            (".*\\.edu$", "mit.edu.example", False, False),
            ("(?i)\\bvp\\b", "mvp", False, False),
            ("(?i)\\bvp\\b", "Sales VP", False, True),
        ],
    )
    def test_documented_examples(self, pattern: str, text: str, match: bool, search: bool) -> None:
        compiled = compile_regex(pattern)
        assert (compiled.match(text) is not None) is match
        assert (compiled.search(text) is not None) is search
        assert (re.match(pattern, text) is not None) is match  # what rule-engine's re answers
        assert (re.search(pattern, text) is not None) is search

    @pytest.mark.parametrize(
        ("pattern", "text"),
        [
            ("\\bvp\\b", "évp"),  # é is a letter to re, not to RE2's ASCII \b
            ("^\\w+$", "café"),
            ("\\d", "٣"),  # an Arabic-Indic digit
            ("\\s", "\u00a0"),  # a no-break space
            ("vp$", "vp\n"),  # re's $ also matches before a final newline
        ],
    )
    def test_the_documented_differences_from_re(self, pattern: str, text: str) -> None:
        assert (compile_regex(pattern).search(text) is not None) is not (re.search(pattern, text) is not None)

    def test_use_re2_is_idempotent_and_keeps_the_answers(self) -> None:
        context = context_for("scoring", {}, [])
        rule = rule_engine.Rule('title =~~ "(?i)^vp"', context=context)
        use_re2(rule)
        use_re2(rule)
        assert rule.matches({"title": "vp sales"})
        assert not rule.matches({"title": "svp"})
