"""Building a :class:`Ruleset`: the validated sections, their compiled expressions, and the result.

:class:`Builder` runs a :class:`SectionReader` over the whole file, parses and type-checks every
``when:`` with rule-engine (problems worded by :mod:`leadroute.rules._expressions`), and, when
nothing is wrong, assembles the :class:`Ruleset`: its canonical checksum, its rules, and one
compiled evaluator per section.
"""

from __future__ import annotations

import hashlib
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import rule_engine
import yaml

from leadroute.rules._expressions import explain_error, static_problems
from leadroute.rules._facts import Section, context_for
from leadroute.rules._problems import RuleProblem, RulesetError
from leadroute.rules._regex import RegexRefused, compile_regex, literal_regexes, use_re2
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
from leadroute.rules._sections import SectionReader
from leadroute.rules._spec import (
    MAX_VERSION,
    RoutingSpec,
    RulesetSpec,
    ScoringRuleSpec,
    ScoringSpec,
    SlaSpec,
    TopSpec,
)
from leadroute.rules._yaml import Path as YamlPath
from leadroute.rules._yaml import parse_yaml, syntax_error
from leadroute.rules.evaluator import Evaluator

__all__ = ["Builder"]


def _sla(spec: SlaSpec | None) -> Sla | None:
    if spec is None:
        return None
    return Sla(accept_within_minutes=spec.accept_within_minutes, on_breach=spec.on_breach)


class Builder(SectionReader):
    """One load, from text to :class:`Ruleset`; ``evaluator`` compiles each section's rules."""

    def __init__(self, source: str, path: Path | None, evaluator: Evaluator) -> None:
        super().__init__(source, path)
        self.evaluator = evaluator

    def build(self) -> Ruleset:
        """Run every step; raise :class:`RulesetError` if any problem was found."""
        try:
            self.doc = parse_yaml(self.source)
        except yaml.YAMLError as exc:
            where, message = syntax_error(exc)
            raise RulesetError([RuleProblem(self.file, where.line, where.column, None, message)]) from exc
        if not isinstance(self.doc.data, dict):
            self.problem([], "a rule file must be a mapping with version, scoring, qualification and routing")
            self.fail()
        for key, where in self.doc.duplicate_keys():
            self.problems.append(
                RuleProblem(
                    self.file, where.line, where.column, None, f"key {key!r} is written twice; keep one"
                )
            )
        top = self.convert(self.doc.data, TopSpec, [])
        if top is None:
            self.fail()
        if top.version < 1:
            self.problem(["version"], "'version' must be a positive integer; bump it on every change")
        elif top.version > MAX_VERSION:
            self.problem(
                ["version"],
                f"'version' {top.version} is too large (at most {MAX_VERSION}); "
                "number versions 1, 2, 3... and bump by one on every change",
            )
        fields = self.fields(top.fields)
        groups, scoring_rules = self.scoring(top.scoring)
        qualification = self.qualification(top.qualification)
        routing = self.routing(top.routing)
        tests = self.tests(top.tests, routing.fallback if routing else None)
        self.check_ids(scoring_rules, qualification, routing.rules if routing else [])
        self.check_tests(tests, scoring_rules, routing.rules if routing else None)
        # groups whose settings are wrong still count as declared: one error, not one per use
        group_names = self.declared_groups
        lead_rules = [(r, p) for r, p in scoring_rules if r.on_activity is None]
        activity_rules = [(r, p) for r, p in scoring_rules if r.on_activity is not None]
        lead_compiled = self.compile("scoring", [(r.id, r.when, p) for r, p in lead_rules], group_names)
        activity_compiled = self.compile(
            "activity", [(r.id, r.when, p) for r, p in activity_rules], group_names
        )
        qualification_compiled = self.compile(
            "qualification", [(r.id or "", r.when, p) for r, p in qualification], group_names
        )
        routing_compiled = self.compile(
            "routing", [(r.id, r.when, p) for r, p in (routing.rules if routing else [])], group_names
        )
        if self.problems or routing is None:
            self.fail()
        spec = RulesetSpec(
            version=top.version,
            description=top.description,
            fields=typing.cast(Any, fields),
            scoring=ScoringSpec(groups=dict(groups), rules=[r for r, _ in scoring_rules]),
            qualification=[q for q, _ in qualification],
            routing=RoutingSpec(
                rules=[r for r, _ in routing.rules],
                fallback=routing.fallback,
                sla=routing.sla,
                reengaged=typing.cast(Any, routing.reengaged),
            ),
            tests=[t for t, _ in tests],
        )
        rules = {r.id: self.scoring_rule(r, p) for r, p in scoring_rules}
        by_type: dict[str, list[tuple[ScoringRule, rule_engine.Rule]]] = {}
        for (spec_rule, _), engine_rule in zip(activity_rules, activity_compiled, strict=True):
            for kind in spec_rule.on_activity or ():
                by_type.setdefault(kind, []).append((rules[spec_rule.id], engine_rule))
        default_sla = _sla(routing.sla)
        return Ruleset(
            version=top.version,
            sha256=hashlib.sha256(msgspec.json.encode(spec, order="sorted")).hexdigest(),
            description=top.description,
            path=self.path,
            source=self.source,
            fields=fields,
            groups={
                name: Group(name=name, max=g.max, min=g.min, half_life_days=g.half_life_days)
                for name, g in groups
            },
            scoring_rules=tuple(rules.values()),
            qualification_rules=tuple(
                QualificationRule(
                    id=q.id or "",
                    stage=q.stage,
                    when=q.when,
                    line=self.line(p),
                    description=q.description,
                )
                for q, p in qualification
            ),
            routing_rules=tuple(
                RoutingRule(
                    id=r.id,
                    when=r.when,
                    line=self.line(p),
                    pool=r.pool,
                    route=r.route or "pool",
                    sla=_sla(r.sla) or default_sla,
                    description=r.description,
                    pool_line=self.doc.locate([*p, "pool"]).line if r.pool is not None else 0,
                    pool_column=self.doc.locate([*p, "pool"]).column if r.pool is not None else 1,
                )
                for r, p in routing.rules
            ),
            fallback=routing.fallback,
            sla=default_sla,
            reengage_previous_owner=routing.reengaged == "previous_owner",
            tests=tuple(RuleTest(spec=t, line=self.line(p)) for t, p in tests),
            lead_scoring_rules=tuple(rules[r.id] for r, _ in lead_rules),
            scoring_evaluator=self.evaluator.compile(lead_compiled),
            activity_sections={
                kind: ActivitySection(
                    rules=tuple(rule for rule, _ in entries),
                    evaluator=self.evaluator.compile([engine for _, engine in entries]),
                )
                for kind, entries in by_type.items()
            },
            qualification_evaluator=self.evaluator.compile(qualification_compiled),
            routing_evaluator=self.evaluator.compile(routing_compiled),
        )

    def scoring_rule(self, rule: ScoringRuleSpec, path: YamlPath) -> ScoringRule:
        """The loaded form of a valid scoring rule."""
        return ScoringRule(
            id=rule.id,
            group=rule.group,
            points=rule.points,
            when=rule.when,
            line=self.line(path),
            description=rule.description,
            on_activity=tuple(rule.on_activity) if rule.on_activity is not None else None,
        )

    def compile(
        self, section: Section, rules: Sequence[tuple[str, str | None, YamlPath]], groups: list[str]
    ) -> list[rule_engine.Rule]:
        """Parse and type-check each ``when`` of a section (None means always)."""
        context = context_for(section, self.attribute_types, groups, self.activity_types)
        compiled: list[rule_engine.Rule] = []
        for rule_id, when, path in rules:
            text = "true" if when is None else when
            try:
                rule = rule_engine.Rule(text, context=context)
            except rule_engine.errors.EngineError as exc:
                message = explain_error(exc, text, section, groups, self.activity_types)
                token = getattr(exc, "token", None)
                where = self.doc.locate([*path, "when"])
                column = self._token_column(where.line, where.column, text, getattr(token, "lexpos", None))
                self.problems.append(RuleProblem(self.file, where.line, column, rule_id, message))
                continue
            messages = static_problems(rule) + self._regex_problems(rule)
            for message in messages:
                where = self.doc.locate([*path, "when"])
                self.problems.append(RuleProblem(self.file, where.line, where.column, rule_id, message))
            if not messages:
                use_re2(rule)
                compiled.append(rule)
        return compiled

    @staticmethod
    def _regex_problems(rule: rule_engine.Rule) -> list[str]:
        """Each pattern ``re`` accepted (rule-engine parsed it) but RE2 will not run."""
        problems = []
        for pattern in literal_regexes(rule):
            try:
                compile_regex(pattern, rule.context.regex_flags)
            except RegexRefused as exc:
                problems.append(f"unsupported regular expression in 'when: {rule.text}': {exc}")
        return problems

    def _token_column(self, line: int, column: int, text: str, offset: int | None) -> int:
        """The column of a syntax error's token, when the expression is written on one line."""
        if offset is None:
            return column
        lines = self.source.splitlines()
        start = lines[line - 1].find(text, column - 1) if 0 < line <= len(lines) else -1
        return start + offset + 1 if start >= 0 else column
