"""Rule files: load, validate, type-check and compile a ruleset; run the tests written in it.

Public API::

    load_ruleset(path, *, evaluator=None) -> Ruleset      one file
    load_rules_path(path, *, evaluator=None) -> Ruleset   a file, or a directory with exactly one
    parse_ruleset(text, *, path=None, evaluator=None)     text already in memory (uploads)
    pools_referenced(ruleset) -> set[str]
    check_pools(ruleset, known) -> list[RuleProblem]
    run_ruleset_tests(ruleset) -> list[TestOutcome]
    rule_test_inputs(test_spec, lead_in=None) -> (activities, now)   what a rule-file test evaluates with
    check_rules(path, *, evaluator=None) -> CheckReport
    ruleset_schema_text() -> str                         the JSON Schema (``leadroute rules schema``)

Errors: :class:`RulesetError` (``.problems``: list of :class:`RuleProblem`). What expressions
can use is described in :mod:`leadroute.rules._facts`. ``evaluator``: the compiled one when None;
``rules.evaluator.evaluator_for(settings.rules_evaluator)`` is the one the settings name.
"""

from leadroute.rules._filetests import (
    CheckReport,
    TestOutcome,
    check_rules,
    rule_test_inputs,
    run_ruleset_tests,
)
from leadroute.rules._loader import (
    RULES_PATH_ENV,
    check_pools,
    load_rules_path,
    load_ruleset,
    parse_ruleset,
    pools_referenced,
)
from leadroute.rules._problems import RuleProblem, RulesetError
from leadroute.rules._ruleset import (
    ActivitySection,
    Group,
    QualificationRule,
    RoutingRule,
    Ruleset,
    RuleTest,
    ScoringRule,
    Sla,
)
from leadroute.rules._schema import SCHEMA_FILE_NAME, ruleset_json_schema, ruleset_schema_text
from leadroute.rules._spec import MAX_VERSION
from leadroute.rules.evaluator import Evaluator, RuleEngineEvaluator, SectionEvaluator

__all__ = [
    "MAX_VERSION",
    "RULES_PATH_ENV",
    "SCHEMA_FILE_NAME",
    "ActivitySection",
    "CheckReport",
    "Evaluator",
    "Group",
    "QualificationRule",
    "RoutingRule",
    "RuleEngineEvaluator",
    "RuleProblem",
    "RuleTest",
    "Ruleset",
    "RulesetError",
    "ScoringRule",
    "SectionEvaluator",
    "Sla",
    "TestOutcome",
    "check_pools",
    "check_rules",
    "load_rules_path",
    "load_ruleset",
    "parse_ruleset",
    "pools_referenced",
    "rule_test_inputs",
    "ruleset_json_schema",
    "ruleset_schema_text",
    "run_ruleset_tests",
]
