"""Loading rule files: what a valid file gives, and how each kind of mistake is reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from leadroute.rules import (
    RuleEngineEvaluator,
    RuleProblem,
    RulesetError,
    Sla,
    check_pools,
    load_rules_path,
    load_ruleset,
    pools_referenced,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RULES = ROOT / "rules" / "inbound.yaml"

# Line numbers below are asserted by the tests: edit with care.
BASE = """\
version: 1
description: test rules
fields:
  attributes.form: STRING
scoring:
  groups:
    fit: {max: 60}
    engagement: {max: 40, min: 0}
  rules:
    - id: senior-title
      group: fit
      when: 'title =~~ "(?i)(vp|director)"'
      points: 25
    - id: big-company
      group: fit
      when: '(employees ?? 0) >= 1000'
      points: 20
    - id: demo
      group: engagement
      when: 'attributes.form == "demo"'
      points: 30
qualification:
  - {id: competitor, stage: disqualified, when: 'email_domain in ["competitor.example"]'}
  - {stage: sql, when: 'score >= 70'}
  - {stage: mql, when: 'score >= 40'}
  - {stage: lead}
routing:
  rules:
    - {id: enterprise-na, when: 'stage in ["sql", "mql"] and (employees ?? 0) >= 1000', pool: enterprise-na}
    - {id: everyone-else, when: 'true', pool: inbound}
  fallback: unassigned
"""


def write(tmp_path: Path, text: str, name: str = "rules.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def edited(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new, 1)


def problems_of(tmp_path: Path, text: str) -> list[RuleProblem]:
    path = write(tmp_path, text)
    with pytest.raises(RulesetError) as caught:
        load_ruleset(path)
    assert caught.value.problems
    assert all(p.file == str(path) for p in caught.value.problems)
    return caught.value.problems


def only(problems: list[RuleProblem]) -> RuleProblem:
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


class TestValidFile:
    """A valid file loads into a ruleset exposing its rules, lines and identity."""

    def test_base_loads_with_rules_and_lines(self, tmp_path: Path) -> None:
        ruleset = load_ruleset(write(tmp_path, BASE))
        assert ruleset.version == 1
        assert ruleset.description == "test rules"
        assert list(ruleset.groups) == ["fit", "engagement"]
        assert ruleset.groups["engagement"].min == 0
        assert [(r.id, r.line, r.points) for r in ruleset.scoring_rules] == [
            ("senior-title", 10, 25),
            ("big-company", 14, 20),
            ("demo", 18, 30),
        ]
        assert [(q.id, q.stage, q.line) for q in ruleset.qualification_rules] == [
            ("competitor", "disqualified", 23),
            ("qualification[1]", "sql", 24),
            ("qualification[2]", "mql", 25),
            ("qualification[3]", "lead", 26),
        ]
        assert ruleset.qualification_rules[3].when is None
        assert [(r.id, r.pool, r.line) for r in ruleset.routing_rules] == [
            ("enterprise-na", "enterprise-na", 29),
            ("everyone-else", "inbound", 30),
        ]
        assert ruleset.fallback == "unassigned"
        assert ruleset.fields == {"attributes.form": "STRING"}
        assert ruleset.source == BASE
        assert len(ruleset.sha256) == 64

    def test_default_ruleset_loads(self) -> None:
        ruleset = load_ruleset(DEFAULT_RULES)
        assert len(ruleset.scoring_rules) >= 20
        assert set(ruleset.groups) == {"fit", "engagement"}
        assert {q.stage for q in ruleset.qualification_rules} == {"disqualified", "lead", "mql", "sql"}
        assert pools_referenced(ruleset) == {"enterprise-na", "emea", "inbound"}
        assert len(ruleset.tests) >= 6

    def test_half_life_is_stored(self, tmp_path: Path) -> None:
        text = edited("engagement: {max: 40, min: 0}", "engagement: {max: 40, min: 0, half_life_days: 14}")
        assert load_ruleset(write(tmp_path, text)).groups["engagement"].half_life_days == 14

    def test_custom_evaluator_is_used(self, tmp_path: Path) -> None:
        compiled: list[int] = []

        class Counting(RuleEngineEvaluator):
            def compile(self, rules):  # type: ignore[no-untyped-def]
                compiled.append(len(rules))
                return super().compile(rules)

        load_ruleset(write(tmp_path, BASE), evaluator=Counting())
        assert compiled == [3, 4, 2]  # lead scoring, qualification, routing (no activity rules)


class TestIdentity:
    """The sha256 identifies content: layout and comments do not change it, rules do."""

    def test_whitespace_and_comments_keep_the_checksum(self, tmp_path: Path) -> None:
        first = load_ruleset(write(tmp_path, BASE, "a.yaml"))
        relaid = "# a comment\n" + BASE.replace("    fit: {max: 60}", "    fit:   {max: 60}   # capped\n")
        relaid = relaid.replace("description: test rules", "description:    'test rules'")
        second = load_ruleset(write(tmp_path, relaid, "b.yaml"))
        assert second.sha256 == first.sha256

    def test_flow_and_block_style_are_the_same_content(self, tmp_path: Path) -> None:
        block = edited("    fit: {max: 60}", "    fit:\n      max: 60")
        assert (
            load_ruleset(write(tmp_path, block, "a.yaml")).sha256
            == load_ruleset(write(tmp_path, BASE)).sha256
        )

    def test_changing_a_rule_changes_the_checksum(self, tmp_path: Path) -> None:
        changed = edited("points: 25", "points: 26")
        assert (
            load_ruleset(write(tmp_path, changed, "a.yaml")).sha256
            != load_ruleset(write(tmp_path, BASE)).sha256
        )


class TestYamlAndSchemaErrors:
    """YAML and schema mistakes name the file, the line and the rule."""

    def test_yaml_syntax_error(self, tmp_path: Path) -> None:
        problem = only(problems_of(tmp_path, edited("      group: fit\n", "      group: fit: x\n")))
        assert (problem.line, problem.column, problem.rule_id) == (11, 17, None)
        assert "YAML syntax error" in problem.message
        assert "check the indentation" in problem.message

    def test_wrong_type(self, tmp_path: Path) -> None:
        problem = only(problems_of(tmp_path, edited("points: 25", "points: lots")))
        assert (problem.line, problem.column, problem.rule_id) == (13, 15, "senior-title")
        assert "'points'" in problem.message
        assert "float" in problem.message
        assert "write a number" in problem.message

    def test_unknown_key_points_at_the_key(self, tmp_path: Path) -> None:
        problem = only(problems_of(tmp_path, edited("points: 25", "pionts: 25")))
        assert (problem.line, problem.column, problem.rule_id) == (13, 7, "senior-title")
        assert "unknown key 'pionts'" in problem.message
        assert "points" in problem.message  # lists the allowed keys

    def test_missing_key(self, tmp_path: Path) -> None:
        problem = only(problems_of(tmp_path, edited("      points: 20\n", "")))
        assert (problem.line, problem.rule_id) == (14, "big-company")
        assert "missing required key 'points'" in problem.message

    def test_version_beyond_what_the_database_holds(self, tmp_path: Path) -> None:
        problem = only(
            problems_of(tmp_path, BASE.replace("version: 1\n", "version: 99999999999999999999\n", 1))
        )
        assert (problem.line, problem.column) == (1, 10)
        assert "is too large (at most 2147483647)" in problem.message

    @pytest.mark.parametrize(
        ("old", "new", "where", "key"),
        [
            ("points: 25", "points: .nan", (13, 15), "'points' is nan"),
            ("points: 25", "points: .inf", (13, 15), "'points' is inf"),
            ("points: 25", "points: -.inf", (13, 15), "'points' is -inf"),
            ("fit: {max: 60}", "fit: {max: .nan}", (7, 16), "'max' is nan"),
            ("engagement: {max: 40, min: 0}", "engagement: {max: 40, min: -.inf}", (8, 32), "'min' is -inf"),
        ],
    )
    def test_nan_and_infinity_are_not_numbers_here(
        self, tmp_path: Path, old: str, new: str, where: tuple[int, int], key: str
    ) -> None:
        problem = only(problems_of(tmp_path, edited(old, new)))
        assert (problem.line, problem.column) == where
        assert key in problem.message
        assert "write an ordinary number" in problem.message

    def test_a_test_expecting_nan_is_refused_not_always_passing(self, tmp_path: Path) -> None:
        text = BASE + "tests:\n  - {name: t, lead: {email: a@b.example}, expect: {score: .nan}}\n"
        problem = only(problems_of(tmp_path, text))
        assert "test 't': expect: 'score' is nan" in problem.message

    def test_top_level_unknown_key(self, tmp_path: Path) -> None:
        problem = only(problems_of(tmp_path, BASE + "routeing: {}\n"))
        assert (problem.line, problem.column) == (32, 1)
        assert "unknown key 'routeing'" in problem.message

    def test_several_schema_problems_are_reported_together(self, tmp_path: Path) -> None:
        text = edited("points: 25", "points: lots").replace("points: 20", "pionts: 20")
        problems = problems_of(tmp_path, text)
        assert [(p.line, p.rule_id) for p in problems] == [(13, "senior-title"), (17, "big-company")]

    @pytest.mark.parametrize(
        ("old", "new", "where", "says"),
        [
            (
                "fit: {max: 60}",
                "fit: {max: 60, mn: 0}",
                (7, 20),
                "group 'fit': unknown key 'mn' (allowed: max, min, half_life_days); "
                "remove it or fix its spelling",
            ),
            ("fit: {max: 60}", "fit: {max: lots}", (7, 16), "group 'fit': 'max': Expected 'float | null'"),
            ("fit: {max: 60}", "fit: {max: .nan}", (7, 16), "group 'fit': 'max' is nan"),
            (
                "  rules:\n    - id: senior-title",
                "  rulez: []\n  rules:\n    - id: senior-title",
                (9, 3),
                "scoring: unknown key 'rulez' (allowed: groups, rules)",
            ),
            (
                "  fallback: unassigned\n",
                "  fallback: unassigned\n  fallbak: x\n",
                (32, 3),
                "routing: unknown key 'fallbak' (allowed: rules, fallback, sla, reengaged)",
            ),
            (
                "  fallback: unassigned\n",
                "  fallback: unassigned\n  sla: {accept_within_minutes: 5, on_breach: reassign, mins: 1}\n",
                (32, 56),
                "routing.sla: unknown key 'mins' (allowed: accept_within_minutes, on_breach)",
            ),
            (
                "pool: inbound}",
                "pool: inbound, sla: {accept_within_minutes: 5, on_breach: reassign, mins: 1}}",
                (30, 109),
                "sla: unknown key 'mins' (allowed: accept_within_minutes, on_breach)",
            ),
        ],
    )
    def test_a_problem_in_a_nested_mapping_names_it(
        self, tmp_path: Path, old: str, new: str, where: tuple[int, int], says: str
    ) -> None:
        problem = only(problems_of(tmp_path, edited(old, new)))
        assert (problem.line, problem.column) == where
        assert problem.message.startswith(says), problem.message

    def test_a_group_with_wrong_settings_is_one_problem_not_one_per_use(self, tmp_path: Path) -> None:
        text = edited("fit: {max: 60}", "fit: {max: 60, mn: 0}").replace(
            "{stage: sql, when: 'score >= 70'}", "{stage: sql, when: 'groups.fit >= 30'}"
        )
        assert only(problems_of(tmp_path, text)).message.startswith("group 'fit': unknown key 'mn'")

    def test_a_problem_in_a_test_names_the_mapping_in_it(self, tmp_path: Path) -> None:
        text = BASE + (
            "tests:\n"
            "  - name: t\n"
            "    lead: {email: a@b.example}\n"
            "    expect: {stage: lead, pol: inbound}\n"
            "  - name: u\n"
            "    lead: {email: a@b.example}\n"
            "    activities: [{type: page_view, age: 1}]\n"
            "    expect: {stage: lead}\n"
        )
        expect, activity = problems_of(tmp_path, text)
        assert (expect.line, expect.column) == (35, 27)
        assert expect.message == (
            "test 't': expect: unknown key 'pol' (allowed: stage, pool, score, matched, targets); "
            "remove it or fix its spelling"
        )
        assert (activity.line, activity.column) == (38, 36)
        assert activity.message.startswith(
            "test 'u': activities[0]: unknown key 'age' (allowed: type, age_days, occurred_at, properties)"
        )

    def test_qualification_stage_typo(self, tmp_path: Path) -> None:
        problem = only(problems_of(tmp_path, edited("{stage: sql,", "{stage: sqll,")))
        assert (problem.line, problem.column, problem.rule_id) == (24, 13, "qualification[1]")
        assert "'sqll'" in problem.message
        assert "disqualified, lead, mql, sql" in problem.message

    def test_duplicate_rule_id(self, tmp_path: Path) -> None:
        problem = only(problems_of(tmp_path, edited("- id: big-company", "- id: senior-title")))
        assert (problem.line, problem.column, problem.rule_id) == (14, 7, "senior-title")
        assert "duplicate rule id" in problem.message
        assert "line 10" in problem.message

    def test_group_not_declared(self, tmp_path: Path) -> None:
        problem = only(
            problems_of(
                tmp_path,
                edited("      group: fit\n      when: '(emp", "      group: fitt\n      when: '(emp"),
            )
        )
        assert (problem.line, problem.column, problem.rule_id) == (15, 14, "big-company")
        assert "group 'fitt' is not declared" in problem.message
        assert "engagement, fit" in problem.message

    def test_duplicate_yaml_key(self, tmp_path: Path) -> None:
        problem = only(
            problems_of(tmp_path, edited("      points: 25\n", "      points: 25\n      points: 5\n"))
        )
        assert problem.line == 14
        assert "'points' is written twice" in problem.message

    def test_unknown_field_type(self, tmp_path: Path) -> None:
        problem = only(problems_of(tmp_path, edited("attributes.form: STRING", "attributes.form: TEXT")))
        assert problem.line == 4
        assert "use one of STRING" in problem.message

    def test_field_must_be_an_attribute(self, tmp_path: Path) -> None:
        problem = only(
            problems_of(
                tmp_path, edited("  attributes.form: STRING", "  attributes.form: STRING\n  budget: FLOAT")
            )
        )
        assert (problem.line, problem.column) == (5, 3)
        assert "attributes.NAME" in problem.message


class TestExpressionErrors:
    """Expressions are parsed and type-checked at load, against the declared fields."""

    def test_syntax_error(self, tmp_path: Path) -> None:
        problem = only(problems_of(tmp_path, edited("""'title =~~ "(?i)(vp|director)"'""", "'title =~~ '")))
        assert (problem.line, problem.column, problem.rule_id) == (12, 13, "senior-title")
        assert "syntax error" in problem.message

    def test_syntax_error_points_at_the_token(self, tmp_path: Path) -> None:
        problem = only(problems_of(tmp_path, edited("'(employees ?? 0) >= 1000'", "'employees >= >= 1000'")))
        assert (problem.line, problem.column, problem.rule_id) == (16, 27, "big-company")
        assert "near '>='" in problem.message

    def test_unknown_field_with_suggestion(self, tmp_path: Path) -> None:
        problem = only(problems_of(tmp_path, edited('title =~~ "(?i)', 'titel =~~ "(?i)')))
        assert (problem.line, problem.rule_id) == (12, "senior-title")
        assert "unknown field 'titel'" in problem.message
        assert "did you mean 'title'" in problem.message

    def test_undeclared_attribute_names_the_field(self, tmp_path: Path) -> None:
        problem = only(problems_of(tmp_path, edited("attributes.form ==", "attributes.budget ==")))
        assert (problem.line, problem.rule_id) == (20, "demo")
        assert "unknown field 'attributes.budget'" in problem.message
        assert "fields:" in problem.message

    def test_type_mismatch_regex_on_number(self, tmp_path: Path) -> None:
        problem = only(problems_of(tmp_path, edited("'(employees ?? 0) >= 1000'", "'employees =~ \"x\"'")))
        assert (problem.line, problem.rule_id) == (16, "big-company")
        assert "type mismatch" in problem.message

    def test_type_mismatch_ordering_text_with_number(self, tmp_path: Path) -> None:
        problem = only(problems_of(tmp_path, edited("""'title =~~ "(?i)(vp|director)"'""", "'title > 5'")))
        assert (problem.line, problem.rule_id) == (12, "senior-title")
        assert "type mismatch" in problem.message

    @pytest.mark.parametrize(
        ("when", "says"),
        [
            ("title == 5", "compares STRING with FLOAT, which is never true"),
            ('employees == "1000"', "compares FLOAT with STRING, which is never true"),
            ("title != 5", "compares STRING with FLOAT, which is always true"),
            ('is_free_email == "true"', "compares BOOLEAN with STRING"),
            ("is_free_email == 1", "compares BOOLEAN with FLOAT"),
            ("country in [1, 49]", "looks for a STRING in a list of FLOAT"),
            ('(employees ?? 0) in ["1000", "5000"]', "looks for a FLOAT in a list of STRING"),
            ('attributes.form == 1 or title == "x"', "compares STRING with FLOAT"),
        ],
    )
    def test_type_mismatch_equality_that_can_never_hold(self, tmp_path: Path, when: str, says: str) -> None:
        problem = only(problems_of(tmp_path, edited("""'title =~~ "(?i)(vp|director)"'""", f"'{when}'")))
        assert (problem.line, problem.column, problem.rule_id) == (12, 13, "senior-title")
        assert f"type mismatch in 'when: {when}'" in problem.message
        assert says in problem.message
        assert "write text in quotes" in problem.message

    @pytest.mark.parametrize(
        "when",
        [
            "title == null",
            'title in ["a", 1]',  # a mixed list: members of any type
            "(employees ?? 0) == 5.0",
            'country in ["US"] and attributes.form != null',
            "$now > occurred_at",
        ],
    )
    def test_comparisons_that_can_hold_still_load(self, tmp_path: Path, when: str) -> None:
        load_ruleset(write(tmp_path, edited("""'title =~~ "(?i)(vp|director)"'""", f"'{when}'")))

    def test_invalid_regex_says_what_and_where_in_the_pattern(self, tmp_path: Path) -> None:
        when = """'title =~~ "(?i)(vp|director"'"""
        problem = only(problems_of(tmp_path, edited("""'title =~~ "(?i)(vp|director)"'""", when)))
        assert (problem.line, problem.column, problem.rule_id) == (12, 13, "senior-title")
        assert "invalid regular expression" in problem.message
        assert "missing ), unterminated subpattern at position 4 of '(?i)(vp|director'" in problem.message
        assert "close every ( and [" in problem.message

    def test_unknown_builtin(self, tmp_path: Path) -> None:
        problem = only(
            problems_of(tmp_path, edited("""'title =~~ "(?i)(vp|director)"'""", "'$len(title) > 1'"))
        )
        assert (problem.line, problem.rule_id) == (12, "senior-title")
        assert "unknown builtin '$len'" in problem.message

    def test_score_is_not_available_in_scoring(self, tmp_path: Path) -> None:
        problem = only(problems_of(tmp_path, edited("'(employees ?? 0) >= 1000'", "'score > 5'")))
        assert "only available in qualification and routing" in problem.message

    def test_stage_is_only_available_in_routing(self, tmp_path: Path) -> None:
        problem = only(
            problems_of(
                tmp_path, edited("{stage: sql, when: 'score >= 70'}", "{stage: sql, when: 'stage == \"x\"'}")
            )
        )
        assert (problem.line, problem.rule_id) == (24, "qualification[1]")
        assert "only available in routing" in problem.message

    def test_group_scores_in_qualification(self, tmp_path: Path) -> None:
        load_ruleset(write(tmp_path, edited("'score >= 70'", "'score >= 70 and groups.fit >= 30'")))
        problem = only(problems_of(tmp_path, edited("'score >= 70'", "'groups.fitt >= 30'")))
        assert "unknown group 'groups.fitt'" in problem.message

    def test_all_expression_problems_are_reported(self, tmp_path: Path) -> None:
        text = edited('title =~~ "(?i)', 'titel =~~ "(?i)').replace("attributes.form ==", "attributes.x ==")
        text = text.replace("'true'", "'nope'")
        problems = problems_of(tmp_path, text)
        assert [(p.line, p.rule_id) for p in problems] == [
            (12, "senior-title"),
            (20, "demo"),
            (30, "everyone-else"),
        ]

    def test_message_format(self, tmp_path: Path) -> None:
        path = write(tmp_path, edited('title =~~ "(?i)', 'titel =~~ "(?i)'))
        with pytest.raises(RulesetError) as caught:
            load_ruleset(path)
        assert str(caught.value).startswith(f"{path}:12:13: rule 'senior-title': unknown field 'titel'")


class TestRulesPath:
    """A rules path is a file, or a directory holding exactly one rule file."""

    def test_directory_with_one_file(self, tmp_path: Path) -> None:
        write(tmp_path, BASE, "inbound.yml")
        (tmp_path / "README.md").write_text("not a ruleset", encoding="utf-8")
        assert load_rules_path(tmp_path).path == tmp_path / "inbound.yml"

    def test_file(self, tmp_path: Path) -> None:
        assert load_rules_path(write(tmp_path, BASE)).version == 1

    def test_directory_with_several_files(self, tmp_path: Path) -> None:
        write(tmp_path, BASE, "a.yaml")
        write(tmp_path, BASE, "b.yml")
        with pytest.raises(RulesetError) as caught:
            load_rules_path(tmp_path)
        message = str(caught.value)
        assert "a.yaml, b.yml" in message
        assert "LEADROUTE_RULES_PATH" in message

    def test_empty_directory(self, tmp_path: Path) -> None:
        with pytest.raises(RulesetError, match="no rule file"):
            load_rules_path(tmp_path)

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(RulesetError, match="cannot read"):
            load_ruleset(tmp_path / "nope.yaml")


class TestPools:
    """The HTTP layer checks that every pool a routing rule names exists."""

    def test_unknown_pool_is_a_problem_at_its_rule(self, tmp_path: Path) -> None:
        path = write(tmp_path, BASE)
        ruleset = load_ruleset(path)
        assert pools_referenced(ruleset) == {"enterprise-na", "inbound"}
        problem = only(check_pools(ruleset, {"inbound", "emea"}))
        assert (problem.file, problem.line, problem.column, problem.rule_id) == (
            str(path),
            29,
            95,
            "enterprise-na",
        )
        assert "pool 'enterprise-na' does not exist" in problem.message
        assert check_pools(ruleset, {"inbound", "enterprise-na"}) == []


class TestSmallMistakes:
    """Common slips get a message that says what to do."""

    def test_unquoted_boolean_when(self, tmp_path: Path) -> None:
        problem = only(problems_of(tmp_path, edited("when: 'true'", "when: true")))
        assert (problem.line, problem.rule_id) == (30, "everyone-else")
        assert "put the value in quotes" in problem.message

    def test_empty_file(self, tmp_path: Path) -> None:
        problem = only(problems_of(tmp_path, ""))
        assert (problem.line, problem.column) == (1, 1)
        assert "must be a mapping" in problem.message


def line_of(text: str, fragment: str) -> int:
    """The 1-based line of the first line containing ``fragment``."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if fragment in line)


ACTIVITY_RULE = """\
    - id: pricing-page
      group: engagement
      on_activity: page_view
      when: 'url =~~ "/pricing"'
      points: 5
qualification:
"""


def with_activity_rule(rule: str = ACTIVITY_RULE, fields: str = "  activity.url: STRING\n") -> str:
    text = edited("qualification:\n", rule)
    return text.replace("  attributes.form: STRING\n", "  attributes.form: STRING\n" + fields, 1)


class TestActivityRules:
    """on_activity rules: loaded per activity type, typed against declared activity properties."""

    def test_loads_into_its_own_section(self, tmp_path: Path) -> None:
        text = with_activity_rule(
            ACTIVITY_RULE.replace(
                "on_activity: page_view", "on_activity: [page_view, page_view, email_click]"
            )
        )
        ruleset = load_ruleset(write(tmp_path, text))
        assert ruleset.fields == {"attributes.form": "STRING", "activity.url": "STRING"}
        rule = ruleset.scoring_rules[-1]
        assert (rule.id, rule.on_activity, rule.line) == ("pricing-page", ("page_view", "email_click"), 23)
        assert [r.id for r in ruleset.lead_scoring_rules] == ["senior-title", "big-company", "demo"]
        assert set(ruleset.activity_sections) == {"page_view", "email_click"}
        assert [r.id for r in ruleset.activity_sections["page_view"].rules] == ["pricing-page"]

    def test_each_activity_type_is_compiled_as_a_section(self, tmp_path: Path) -> None:
        compiled: list[int] = []

        class Counting(RuleEngineEvaluator):
            def compile(self, rules):  # type: ignore[no-untyped-def]
                compiled.append(len(rules))
                return super().compile(rules)

        text = with_activity_rule(ACTIVITY_RULE.replace("page_view", "[page_view, email_click]"))
        load_ruleset(write(tmp_path, text), evaluator=Counting())
        assert compiled == [3, 1, 1, 4, 2]  # lead rules, page_view, email_click, qualification, routing

    def test_a_single_type_and_a_list_of_it_are_the_same_content(self, tmp_path: Path) -> None:
        one = load_ruleset(write(tmp_path, with_activity_rule(), "a.yaml"))
        listed = with_activity_rule(ACTIVITY_RULE.replace("page_view", "[page_view]"))
        assert load_ruleset(write(tmp_path, listed, "b.yaml")).sha256 == one.sha256

    def test_undeclared_property_says_how_to_declare_it(self, tmp_path: Path) -> None:
        text = with_activity_rule(fields="")
        problem = only(problems_of(tmp_path, text))
        assert (problem.line, problem.column, problem.rule_id) == (
            line_of(text, "/pricing"),
            13,
            "pricing-page",
        )
        assert "unknown activity property 'url'" in problem.message
        assert "'activity.url: STRING'" in problem.message

    def test_property_typo_suggests_the_declared_name(self, tmp_path: Path) -> None:
        text = with_activity_rule(ACTIVITY_RULE.replace("'url =~~", "'ulr =~~"))
        problem = only(problems_of(tmp_path, text))
        assert problem.rule_id == "pricing-page"
        assert "unknown activity property 'ulr' (did you mean 'url'?)" in problem.message

    def test_property_type_mismatch(self, tmp_path: Path) -> None:
        text = with_activity_rule(ACTIVITY_RULE.replace("""'url =~~ "/pricing"'""", "'url > 5'"))
        problem = only(problems_of(tmp_path, text))
        assert (problem.line, problem.rule_id) == (line_of(text, "url > 5"), "pricing-page")
        assert "type mismatch" in problem.message

    def test_lead_fields_are_under_lead(self, tmp_path: Path) -> None:
        good = ACTIVITY_RULE.replace(
            """'url =~~ "/pricing"'""", """'lead.title =~~ "VP" and lead.attributes.form == "demo"'"""
        )
        load_ruleset(write(tmp_path, with_activity_rule(good)))
        bare = with_activity_rule(ACTIVITY_RULE.replace("""'url =~~ "/pricing"'""", """'title =~~ "VP"'"""))
        assert "lead's fields as lead.title" in only(problems_of(tmp_path, bare)).message
        typo = with_activity_rule(
            ACTIVITY_RULE.replace("""'url =~~ "/pricing"'""", """'lead.titel =~~ "VP"'""")
        )
        assert "unknown lead field 'lead.titel'" in only(problems_of(tmp_path, typo)).message

    def test_score_is_not_available_to_activity_rules(self, tmp_path: Path) -> None:
        text = with_activity_rule(ACTIVITY_RULE.replace("""'url =~~ "/pricing"'""", "'score > 5'"))
        assert "not available in on_activity rules" in only(problems_of(tmp_path, text)).message

    def test_built_in_names_cannot_be_declared(self, tmp_path: Path) -> None:
        text = with_activity_rule(fields="  activity.url: STRING\n  activity.type: STRING\n")
        problem = only(problems_of(tmp_path, text))
        assert (problem.line, problem.column) == (line_of(text, "activity.type"), 3)
        assert "built in" in problem.message

    def test_bad_activity_type(self, tmp_path: Path) -> None:
        text = with_activity_rule(ACTIVITY_RULE.replace("on_activity: page_view", "on_activity: []"))
        problem = only(problems_of(tmp_path, text))
        assert (problem.line, problem.column, problem.rule_id) == (
            line_of(text, "on_activity"),
            20,
            "pricing-page",
        )
        assert "activity type" in problem.message

    @pytest.mark.parametrize("written", ["Page_View", "[page_view, page-view]"])
    def test_activity_types_are_written_like_events(self, tmp_path: Path, written: str) -> None:
        text = with_activity_rule(ACTIVITY_RULE.replace("on_activity: page_view", f"on_activity: {written}"))
        problem = only(problems_of(tmp_path, text))
        assert (problem.line, problem.rule_id) == (line_of(text, "on_activity"), "pricing-page")
        assert "lower-case letters, digits, _ and ." in problem.message

    def test_half_life_must_be_positive(self, tmp_path: Path) -> None:
        text = edited("engagement: {max: 40, min: 0}", "engagement: {max: 40, min: 0, half_life_days: 0}")
        problem = only(problems_of(tmp_path, text))
        assert (problem.line, problem.column) == (8, 51)
        assert "'half_life_days'" in problem.message
        assert "> 0" in problem.message


class TestRoutingForms:
    """Routing rules: a pool, or route: account_owner; SLAs per rule and as a default."""

    def test_account_owner_and_slas(self, tmp_path: Path) -> None:
        text = edited(
            "  rules:\n    - {id: enterprise-na",
            "  rules:\n"
            "    - {id: existing-account, when: 'true', route: account_owner}\n"
            "    - {id: enterprise-na",
        ).replace(
            "pool: enterprise-na}",
            "pool: enterprise-na, sla: {accept_within_minutes: 10, on_breach: escalate}}",
        )
        text += "  sla: {accept_within_minutes: 30, on_breach: reassign}\n"
        ruleset = load_ruleset(write(tmp_path, text))
        default = Sla(accept_within_minutes=30, on_breach="reassign")
        assert ruleset.sla == default
        assert [(r.id, r.route, r.pool, r.sla) for r in ruleset.routing_rules] == [
            ("existing-account", "account_owner", None, default),
            ("enterprise-na", "pool", "enterprise-na", Sla(accept_within_minutes=10, on_breach="escalate")),
            ("everyone-else", "pool", "inbound", default),
        ]
        assert pools_referenced(ruleset) == {"enterprise-na", "inbound"}
        assert check_pools(ruleset, {"enterprise-na", "inbound"}) == []

    def test_explicit_route_pool_is_the_default(self, tmp_path: Path) -> None:
        text = edited(
            "{id: everyone-else, when: 'true', pool: inbound}",
            "{id: everyone-else, when: 'true', route: pool, pool: inbound}",
        )
        assert (
            load_ruleset(write(tmp_path, text, "a.yaml")).sha256 == load_ruleset(write(tmp_path, BASE)).sha256
        )

    def test_account_owner_takes_no_pool(self, tmp_path: Path) -> None:
        text = edited("pool: enterprise-na}", "route: account_owner, pool: enterprise-na}")
        problem = only(problems_of(tmp_path, text))
        assert (problem.line, problem.rule_id) == (29, "enterprise-na")
        assert "takes no 'pool'" in problem.message

    def test_pool_rule_needs_a_pool(self, tmp_path: Path) -> None:
        problem = only(problems_of(tmp_path, edited(", pool: inbound}", "}")))
        assert (problem.line, problem.rule_id) == (30, "everyone-else")
        assert "missing required key 'pool'" in problem.message
        assert "route: account_owner" in problem.message

    def test_unknown_route_lists_the_choices(self, tmp_path: Path) -> None:
        problem = only(problems_of(tmp_path, edited("pool: inbound}", "route: owner}")))
        assert (problem.line, problem.column, problem.rule_id) == (30, 48, "everyone-else")
        assert "'owner' is not one of pool, account_owner" in problem.message

    def test_sla_mistakes(self, tmp_path: Path) -> None:
        text = edited(
            "pool: inbound}", "pool: inbound, sla: {accept_within_minutes: 0, on_breach: reassign}}"
        )
        text += "  sla: {accept_within_minutes: 30, on_breach: reasign}\n"
        problems = problems_of(tmp_path, text)
        assert [(p.line, p.rule_id) for p in problems] == [(30, "everyone-else"), (32, None)]
        assert "'accept_within_minutes'" in problems[0].message
        assert ">= 1" in problems[0].message
        assert "'reasign' is not one of reassign, escalate" in problems[1].message
        assert problems[1].column == 47

    @pytest.mark.parametrize("written", ["''", "' '", "'two words'", "-first", "q" * 65])
    def test_the_fallback_queue_is_written_like_a_pool_id(self, tmp_path: Path, written: str) -> None:
        problem = only(problems_of(tmp_path, edited("fallback: unassigned", f"fallback: {written}")))
        assert (problem.line, problem.column, problem.rule_id) == (31, 13, None)
        assert problem.message.startswith("'fallback' must name a queue, written like a pool id (letters,")
        assert "e.g. unassigned" in problem.message

    @pytest.mark.parametrize("written", ["''", "'in bound'", "inbound/eu"])
    def test_a_pool_is_written_like_a_pool_id(self, tmp_path: Path, written: str) -> None:
        problem = only(problems_of(tmp_path, edited("pool: inbound}", f"pool: {written}}}")))
        assert (problem.line, problem.column, problem.rule_id) == (30, 47, "everyone-else")
        assert problem.message.startswith("'pool' must be a pool id (letters, digits and _ . @ -")

    def test_queue_and_pool_ids_like_the_database_holds_them_load(self, tmp_path: Path) -> None:
        text = edited("fallback: unassigned", "fallback: Sales.Queue_2@emea-x").replace(
            "pool: inbound}", "pool: 9inbound.eu_west@x-1}"
        )
        ruleset = load_ruleset(write(tmp_path, text))
        assert (ruleset.fallback, ruleset.routing_rules[-1].pool) == (
            "Sales.Queue_2@emea-x",
            "9inbound.eu_west@x-1",
        )

    def test_unknown_pool_for_account_owner_is_not_checked(self, tmp_path: Path) -> None:
        text = edited("pool: enterprise-na}", "route: account_owner}")
        ruleset = load_ruleset(write(tmp_path, text))
        assert [p.rule_id for p in check_pools(ruleset, set())] == ["everyone-else"]


class TestRuleFileTestsSection:
    """Mistakes in tests: are reported like any other."""

    def test_activity_with_age_and_time(self, tmp_path: Path) -> None:
        text = BASE + (
            "tests:\n"
            "  - name: t\n"
            "    lead: {email: a@b.example}\n"
            "    activities:\n"
            "      - {type: page_view, age_days: 1, occurred_at: 2025-01-01T00:00:00Z}\n"
            "    expect: {stage: lead}\n"
        )
        problem = only(problems_of(tmp_path, text))
        assert (problem.line, problem.column) == (36, 27)
        assert "not both" in problem.message

    def test_an_expected_queue_is_the_fallback_queue(self, tmp_path: Path) -> None:
        test = "tests:\n  - name: t\n    lead: {email: a@b.example}\n    expect: {pool: 'POOL'}\n"
        assert load_ruleset(write(tmp_path, BASE + test.replace("POOL", "queue:unassigned"))).tests
        problem = only(problems_of(tmp_path, BASE + test.replace("POOL", "queue:nurture")))
        assert (problem.line, problem.column) == (35, 20)
        assert problem.message == (
            "test 't': a lead no pool rule takes waits in the fallback queue 'unassigned'; "
            "expect pool: 'queue:unassigned', or the pool a rule names"
        )
        problem = only(problems_of(tmp_path, BASE + test.replace("POOL", "in bound")))
        assert problem.message.startswith("test 't': expect: 'pool' must be a pool id (letters,")
        assert problem.message.endswith("or queue:NAME for the fallback queue (queue:unassigned)")

    def test_a_test_needs_a_name(self, tmp_path: Path) -> None:
        text = BASE + "tests:\n  - name: ''\n    lead: {email: a@b.example}\n    expect: {stage: lead}\n"
        problem = only(problems_of(tmp_path, text))
        assert (problem.line, problem.column) == (33, 11)
        assert problem.message == "a test needs a 'name' (rules test reports each test by it); write one"

    def test_two_tests_with_one_name(self, tmp_path: Path) -> None:
        one = "  - name: same\n    lead: {email: a@b.example}\n    expect: {stage: lead}\n"
        problem = only(problems_of(tmp_path, BASE + "tests:\n" + one + one))
        assert (problem.line, problem.column) == (36, 11)
        assert problem.message == (
            "test 'same': another test has this name (line 33); give each test its own name"
        )

    def test_expected_rule_ids_name_rules_of_the_file(self, tmp_path: Path) -> None:
        text = BASE + (
            "tests:\n  - name: t\n    lead: {email: a@b.example}\n"
            "    expect: {matched: [senior-titel], targets: [everyone-else, nowhere]}\n"
        )
        found = sorted(str(p.message) for p in problems_of(tmp_path, text))
        assert found == [
            "test 't': expect matched names 'senior-titel', which is no scoring rule of this file "
            "(did you mean 'senior-title'?)",
            "test 't': expect targets names 'nowhere', which is no routing rule of this file",
        ]
        assert {p.line for p in problems_of(tmp_path, text)} == {35}

    def test_expected_stage_typo(self, tmp_path: Path) -> None:
        text = BASE + "tests:\n  - name: t\n    lead: {email: a@b.example}\n    expect: {stage: MQL}\n"
        problem = only(problems_of(tmp_path, text))
        assert (problem.line, problem.column) == (35, 21)
        assert "'MQL' is not one of disqualified, lead, mql, sql" in problem.message
        assert problem.message.startswith("test 't': ")

    def test_naive_activity_time(self, tmp_path: Path) -> None:
        text = BASE + (
            "tests:\n  - name: t\n    lead: {email: a@b.example}\n"
            "    activities: [{type: page_view, occurred_at: '2025-01-01T00:00:00'}]\n"
            "    expect: {stage: lead}\n"
        )
        problem = only(problems_of(tmp_path, text))
        assert problem.line == 35
        assert "timezone" in problem.message
        assert "end the time with Z" in problem.message
