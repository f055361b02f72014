"""Load a rule file: YAML → validated Structs → type-checked expressions → :class:`Ruleset`.

Each step collects problems instead of stopping at the first, so a file with a typo in one
rule and an undeclared group in another reports both. Only a YAML syntax error or a broken top
level stops early, because nothing after it can be trusted.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import re
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import rule_engine
import yaml
from rule_engine import DataType

from leadroute.models import ID_MAX_LENGTH, QUEUE_PREFIX, Stage
from leadroute.rules._facts import ACTIVITY_BUILTINS, ATTRIBUTE_TYPES, Section, context_for, lead_field_types
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
from leadroute.rules._spec import (
    MAX_VERSION,
    ExpectSpec,
    GroupSpec,
    QualificationSpec,
    RoutingRuleSpec,
    RoutingSectionSpec,
    RoutingSpec,
    RulesetSpec,
    ScoringRuleSpec,
    ScoringSectionSpec,
    ScoringSpec,
    SlaSpec,
    Spec,
    TestSpec,
    TopSpec,
)
from leadroute.rules._yaml import Path as YamlPath
from leadroute.rules._yaml import (
    YamlDocument,
    missing_key,
    parse_yaml,
    syntax_error,
    unknown_key,
    validation_path,
)
from leadroute.rules.evaluator import Evaluator, default_evaluator

__all__ = [
    "RULES_PATH_ENV",
    "check_pools",
    "load_rules_path",
    "load_ruleset",
    "parse_ruleset",
    "pools_referenced",
]

RULES_PATH_ENV = "LEADROUTE_RULES_PATH"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DECLARED_FIELD = re.compile(r"^(attributes|activity)\.([A-Za-z_][A-Za-z0-9_]*)$")
_ENUM_VALUE = re.compile(r"^Invalid enum value (?P<value>.*)$")
_ACTIVITY_TYPE_HINT = (
    "an activity type is written like the events posted to /v1/events: lower-case letters, digits, "
    "_ and . (e.g. page_view); 'on_activity' takes one or a list of them"
)
_ID_RULE = f"letters, digits and _ . @ -, starting with a letter or digit, at most {ID_MAX_LENGTH} characters"
_ID_HINTS: Mapping[str, str] = {
    "pool": f"'pool' must be a pool id ({_ID_RULE}), e.g. enterprise-na",
    "fallback": (f"'fallback' must name a queue, written like a pool id ({_ID_RULE}), e.g. unassigned"),
}
"""Keys naming a pool or a queue: an empty or malformed name is answered with the rule for ids."""
_CHOICES: Mapping[str, tuple[str, ...]] = {
    "stage": typing.get_args(Stage),
    "route": ("pool", "account_owner"),
    "on_breach": ("reassign", "escalate"),
}
"""Keys whose value is one of a few words: an invalid value is answered with the list."""

S = TypeVar("S", bound=Spec)


def load_ruleset(path: Path, *, evaluator: Evaluator | None = None) -> Ruleset:
    """Load, validate and compile one rule file. Raises :class:`RulesetError` listing every problem."""
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesetError([RuleProblem(str(path), 1, 1, None, f"cannot read the rule file: {exc}")]) from exc
    return parse_ruleset(source, path=path, evaluator=evaluator)


def load_rules_path(path: Path) -> Ruleset:
    """Load the ruleset at ``path``: a file, or a directory holding exactly one ``*.yaml``/``*.yml``."""
    if not path.is_dir():
        return load_ruleset(path)
    candidates = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    if len(candidates) == 1:
        return load_ruleset(candidates[0])
    if not candidates:
        message = f"no rule file (*.yaml or *.yml) in directory {path}; add one or set {RULES_PATH_ENV}"
    else:
        names = ", ".join(p.name for p in candidates)
        message = (
            f"directory {path} holds several rule files ({names}); "
            f"set {RULES_PATH_ENV} to the one file to use"
        )
    raise RulesetError([RuleProblem(str(path), 1, 1, None, message)])


def parse_ruleset(source: str, *, path: Path | None = None, evaluator: Evaluator | None = None) -> Ruleset:
    """Build a :class:`Ruleset` from rule-file text (``path`` only names it in messages)."""
    return _Builder(source, path, evaluator or default_evaluator()).build()


def pools_referenced(ruleset: Ruleset) -> set[str]:
    """Every pool a routing rule can send leads to (``account_owner`` rules name none)."""
    return {rule.pool for rule in ruleset.routing_rules if rule.pool is not None}


def check_pools(ruleset: Ruleset, known: set[str]) -> list[RuleProblem]:
    """A problem for each routing rule whose pool is not in ``known`` (at the rule's line)."""
    names = ", ".join(sorted(known)) or "none"
    return [
        RuleProblem(
            ruleset.display_path,
            rule.pool_line or rule.line,
            rule.pool_column,
            rule.id,
            f"pool {rule.pool!r} does not exist (known pools: {names}); create it or fix the name",
        )
        for rule in ruleset.routing_rules
        if rule.pool is not None and rule.pool not in known
    ]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Routing:
    """The ``routing:`` section once validated: its valid rules, ``fallback`` and default ``sla``."""

    fallback: str
    sla: SlaSpec | None
    rules: list[tuple[RoutingRuleSpec, YamlPath]]


def _sla(spec: SlaSpec | None) -> Sla | None:
    if spec is None:
        return None
    return Sla(accept_within_minutes=spec.accept_within_minutes, on_breach=spec.on_breach)


class _Builder:
    """One load: the document, the problems found so far, and the steps that find them."""

    def __init__(self, source: str, path: Path | None, evaluator: Evaluator) -> None:
        self.source = source
        self.path = path
        self.file = str(path) if path is not None else "<ruleset>"
        self.evaluator = evaluator
        self.doc = YamlDocument(None, None)
        self.problems: list[RuleProblem] = []
        self.attribute_types: dict[str, Any] = {}
        """Declared ``attributes.NAME`` fields and their rule-engine types."""
        self.activity_types: dict[str, Any] = {}
        """Declared ``activity.NAME`` properties and their rule-engine types."""
        self.declared_groups: list[str] = []
        """Group names under ``scoring.groups``, in order, valid settings or not."""

    # -- problems ---------------------------------------------------------------------------

    def problem(
        self, path: YamlPath, message: str, *, rule_id: str | None = None, key: str | None = None
    ) -> None:
        """Record a problem at ``path`` (or at ``key`` of the mapping there).

        A problem inside ``tests:`` names its test (tests have names, not rule ids), and one
        inside a nested mapping names that mapping (``group 'fit': ...``, ``expect: ...``): the
        rule id or test name alone does not say where in it the key is.
        """
        where = self.doc.locate(path, key=key)
        label = _mapping_label(path)
        if label is not None and not message.startswith(("test ", label)):
            message = f"{label}: {message}"
        name = self._test_name(path)
        if name is not None and not message.startswith("test "):
            message = f"test {name!r}: {message}"
        self.problems.append(RuleProblem(self.file, where.line, where.column, rule_id, message))

    def _test_name(self, path: YamlPath) -> str | None:
        if len(path) < 2 or path[0] != "tests" or not isinstance(path[1], int):
            return None
        tests = self.doc.data.get("tests") if isinstance(self.doc.data, dict) else None
        test = tests[path[1]] if isinstance(tests, list) and path[1] < len(tests) else None
        name = test.get("name") if isinstance(test, dict) else None
        return name if isinstance(name, str) and name else None

    def fail(self) -> typing.NoReturn:
        """Raise everything found, in file order."""
        raise RulesetError(sorted(self.problems, key=lambda p: (p.line, p.column)))

    def convert(self, data: Any, spec: type[S], path: YamlPath, rule_id: str | None = None) -> S | None:
        """Validate ``data`` as ``spec``; on failure record a problem at the offending key."""
        try:
            return msgspec.convert(data, spec)
        except msgspec.ValidationError as exc:
            self._validation_problem(str(exc), spec, path, rule_id)
            return None

    def finite(self, path: YamlPath, values: Mapping[str, float | None], rule_id: str | None = None) -> bool:
        """False (and a problem per key) when a number is .nan or .inf: YAML allows them, sums do not."""
        ok = True
        for key, value in values.items():
            if value is not None and not math.isfinite(value):
                self.problem(
                    [*path, key],
                    f"{key!r} is {value}; write an ordinary number like 10 or -2.5",
                    rule_id=rule_id,
                )
                ok = False
        return ok

    def _validation_problem(self, text: str, spec: type[Spec], path: YamlPath, rule_id: str | None) -> None:
        message, rel = validation_path(text)
        segments: list[str | int] = [*path, *rel]
        if (unknown := unknown_key(message)) is not None:
            holder = _struct_at(spec, segments[len(path) :])
            allowed = ""
            if holder is not None:
                allowed = " (allowed: " + ", ".join(f.name for f in msgspec.structs.fields(holder)) + ")"
            self.problem(
                segments,
                f"unknown key {unknown!r}{allowed}; remove it or fix its spelling",
                rule_id=rule_id,
                key=unknown,
            )
        elif (missing := missing_key(message)) is not None:
            self.problem(segments, f"missing required key {missing!r}; add it", rule_id=rule_id)
        elif "Expected `str` matching regex" in message and (
            "on_activity" in segments or (segments[-1] == "type" and "activities" in segments)
        ):
            self.problem(segments, _ACTIVITY_TYPE_HINT, rule_id=rule_id)
        elif (
            segments
            and segments[-1] in _ID_HINTS
            and message.startswith(("Expected `str` of length", "Expected `str` matching regex"))
        ):
            hint = _ID_HINTS[str(segments[-1])]
            if "expect" in segments:
                hint += f", or {QUEUE_PREFIX}NAME for the fallback queue ({QUEUE_PREFIX}unassigned)"
            self.problem(segments, hint, rule_id=rule_id)
        elif segments[:1] == ["tests"] and segments[-1] == "name" and message.startswith("Expected `str` of"):
            self.problem(segments, "a test needs a 'name' (rules test reports each test by it); write one")
        elif (enum := _ENUM_VALUE.match(message)) and segments and segments[-1] in _CHOICES:
            key = str(segments[-1])
            choices = ", ".join(_CHOICES[key])
            self.problem(
                segments, f"{key} {enum['value']} is not one of {choices}; use one of them", rule_id=rule_id
            )
        else:
            what = f"{segments[-1]!r}: " if segments and isinstance(segments[-1], str) else ""
            self.problem(segments, what + message.replace("`", "'") + _type_hint(message), rule_id=rule_id)

    # -- the steps ----------------------------------------------------------------------------

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
                rules=[r for r, _ in routing.rules], fallback=routing.fallback, sla=routing.sla
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

    def line(self, path: YamlPath) -> int:
        """The line ``path`` was written on."""
        return self.doc.locate(path).line

    def fields(self, raw: Mapping[str, Any]) -> dict[str, str]:
        """``fields:``: ``attributes.NAME`` or ``activity.NAME``, each a rule-engine type name."""
        result: dict[str, str] = {}
        allowed = ", ".join(ATTRIBUTE_TYPES)
        for name, kind in raw.items():
            found = _DECLARED_FIELD.match(name) if isinstance(name, str) else None
            if found is None:
                self.problem(
                    ["fields"],
                    f"field {name!r} must be written 'attributes.NAME' (an extra lead attribute) or "
                    "'activity.NAME' (an activity property used by on_activity rules), NAME being "
                    "letters, digits and _; built-in lead fields need no declaration",
                    key=str(name),
                )
                continue
            scope, short = found.groups()
            if scope == "activity" and short in ACTIVITY_BUILTINS:
                self.problem(
                    ["fields"],
                    f"'activity.{short}' is built in (on_activity rules always see "
                    + ", ".join(ACTIVITY_BUILTINS)
                    + "); remove this line",
                    key=name,
                )
                continue
            declared = self.attribute_types if scope == "attributes" else self.activity_types
            if kind not in ATTRIBUTE_TYPES:
                declared[short] = DataType.UNDEFINED  # still declared: no second error where it is used
                self.problem(["fields", name], f"field {name!r} has type {kind!r}; use one of {allowed}")
            else:
                declared[short] = ATTRIBUTE_TYPES[kind]
                result[name] = kind
        return result

    def scoring(
        self, raw: Mapping[str, Any]
    ) -> tuple[list[tuple[str, GroupSpec]], list[tuple[ScoringRuleSpec, YamlPath]]]:
        """``scoring:``: groups (names usable as ``groups.NAME``) and rules in a declared group."""
        section = self.convert(raw, ScoringSectionSpec, ["scoring"])
        if section is None:
            return [], []
        groups: list[tuple[str, GroupSpec]] = []
        declared = self.declared_groups  # with groups whose settings are wrong: no second error per rule
        for name, value in section.groups.items():
            path: YamlPath = ["scoring", "groups", name]
            if not isinstance(name, str) or not _NAME.match(name):
                self.problem(
                    ["scoring", "groups"],
                    f"group name {name!r} must be letters, digits and _ "
                    "(it is used as groups.NAME in expressions)",
                    key=str(name),
                )
                continue
            declared.append(name)
            group = self.convert(value if value is not None else {}, GroupSpec, path)
            if group is None:
                continue
            limits = {"max": group.max, "min": group.min, "half_life_days": group.half_life_days}
            if not self.finite(path, limits):
                continue
            if group.max is not None and group.min is not None and group.min > group.max:
                self.problem(
                    path, f"group {name!r} has min {group.min:g} above max {group.max:g}; swap or fix them"
                )
            groups.append((name, group))
        rules: list[tuple[ScoringRuleSpec, YamlPath]] = []
        for index, value in enumerate(section.rules):
            path = ["scoring", "rules", index]
            rule = self.convert(value, ScoringRuleSpec, path, _raw_id(value))
            if rule is None or not self.finite(path, {"points": rule.points}, rule.id):
                continue
            if rule.on_activity is not None:
                kinds = [rule.on_activity] if isinstance(rule.on_activity, str) else rule.on_activity
                kinds = list(dict.fromkeys(kinds))  # canonical: a list, each type once
                if not kinds:
                    self.problem([*path, "on_activity"], _ACTIVITY_TYPE_HINT, rule_id=rule.id)
                    continue
                rule = msgspec.structs.replace(rule, on_activity=kinds)
            if rule.group not in declared and _NAME.match(rule.group):
                known = ", ".join(sorted(declared)) or "none"
                self.problem(
                    [*path, "group"],
                    f"group {rule.group!r} is not declared under scoring.groups "
                    f"(declared: {known}); declare it or fix the name",
                    rule_id=rule.id,
                )
            rules.append((rule, path))
        return groups, rules

    def qualification(self, raw: Sequence[Any]) -> list[tuple[QualificationSpec, YamlPath]]:
        """``qualification:``: entries in order; unnamed ones are called ``qualification[i]``."""
        entries: list[tuple[QualificationSpec, YamlPath]] = []
        if not raw:
            self.problem(["qualification"], "'qualification' needs at least one entry, e.g. {stage: lead}")
        for index, value in enumerate(raw):
            path: YamlPath = ["qualification", index]
            rule_id = _raw_id(value) or f"qualification[{index}]"
            entry = self.convert(value, QualificationSpec, path, rule_id)
            if entry is None:
                continue
            entries.append((msgspec.structs.replace(entry, id=rule_id), path))
        return entries

    def routing(self, raw: Mapping[str, Any]) -> _Routing | None:
        """``routing:``: rules in order (``pool`` or ``route: account_owner``), ``fallback``, ``sla``."""
        section = self.convert(raw, RoutingSectionSpec, ["routing"])
        if section is None:
            return None
        sla = None if section.sla is None else self.convert(section.sla, SlaSpec, ["routing", "sla"])
        rules: list[tuple[RoutingRuleSpec, YamlPath]] = []
        for index, value in enumerate(section.rules):
            path: YamlPath = ["routing", "rules", index]
            rule = self.convert(value, RoutingRuleSpec, path, _raw_id(value))
            if rule is None:
                continue
            if rule.route == "account_owner" and rule.pool is not None:
                self.problem(
                    path,
                    "a 'route: account_owner' rule sends the lead to its account's owner and takes no "
                    "'pool'; remove 'pool' (a pool rule after it catches leads without an owner)",
                    rule_id=rule.id,
                    key="pool",
                )
                continue
            if rule.route != "account_owner" and rule.pool is None:
                self.problem(
                    path,
                    "missing required key 'pool'; name the pool to route to, or write 'route: account_owner'",
                    rule_id=rule.id,
                )
                continue
            if rule.route == "pool":
                rule = msgspec.structs.replace(rule, route=None)  # canonical: the default is left out
            rules.append((rule, path))
        return _Routing(fallback=section.fallback, sla=sla, rules=rules)

    def tests(self, raw: Sequence[Any], fallback: str | None) -> list[tuple[TestSpec, YamlPath]]:
        """``tests:``: each a lead, its activities, and what to expect of it.

        ``expect: {pool: queue:NAME}`` can only hold for the fallback queue (``fallback``, None
        when ``routing:`` did not load): another name is a mistake, not a test that fails.
        """
        result: list[tuple[TestSpec, YamlPath]] = []
        for index, value in enumerate(raw):
            path: YamlPath = ["tests", index]
            test = self.convert(value, TestSpec, path)
            if test is None:
                continue
            ok = self.finite([*path, "expect"], {"score": test.expect.score})
            for number, activity in enumerate(test.activities):
                if not self.finite([*path, "activities", number], {"age_days": activity.age_days}):
                    ok = False
                if activity.age_days is not None and activity.occurred_at is not None:
                    self.problem(
                        [*path, "activities", number],
                        f"test {test.name!r}: give an activity 'age_days' or 'occurred_at', not both",
                        key="age_days",
                    )
                    ok = False
            expect: ExpectSpec = test.expect
            pool = expect.pool or ""
            if fallback is not None and pool.startswith(QUEUE_PREFIX) and pool != QUEUE_PREFIX + fallback:
                self.problem(
                    [*path, "expect", "pool"],
                    f"test {test.name!r}: a lead no pool rule takes waits in the fallback queue "
                    f"{fallback!r}; expect pool: '{QUEUE_PREFIX}{fallback}', or the pool a rule names",
                )
                ok = False
            if expect.matched is not None and not expect.matched:
                self.problem(
                    [*path, "expect", "matched"],
                    f"test {test.name!r}: 'matched: []' checks nothing; list rule ids or remove it",
                )
                ok = False
            if ok:
                result.append((test, path))
        return result

    def check_ids(self, *sections: Sequence[tuple[Any, YamlPath]]) -> None:
        """Rule ids are unique across the file: decisions and explanations name rules by id."""
        seen: dict[str, int] = {}
        for section in sections:
            for rule, path in section:
                if rule.id in seen:
                    self.problem(
                        path,
                        f"duplicate rule id {rule.id!r} (first used on line {seen[rule.id]}); "
                        "give each rule its own id",
                        rule_id=rule.id,
                        key="id",
                    )
                else:
                    seen[rule.id] = self.line(path)

    def check_tests(
        self,
        tests: Sequence[tuple[TestSpec, YamlPath]],
        scoring: Sequence[tuple[Any, YamlPath]],
        routing: Sequence[tuple[Any, YamlPath]] | None,
    ) -> None:
        """Test names are unique (``rules test`` reports each by it), and the rule ids a test
        expects name rules of the file: a typo there is a mistake in the test, not a failing rule."""
        names: dict[str, int] = {}
        for test, path in tests:
            if test.name in names:
                self.problem(
                    [*path, "name"],
                    f"test {test.name!r}: another test has this name (line {names[test.name]}); "
                    "give each test its own name",
                )
            else:
                names[test.name] = self.line(path)
            wanted = [("matched", test.expect.matched, scoring, "scoring rule")]
            if routing is not None:  # a routing section that did not load is reported already
                wanted.append(("targets", test.expect.targets, routing, "routing rule"))
            for key, ids, section, kind in wanted:
                known = [rule.id for rule, _ in section]
                for rule_id in ids or ():
                    if rule_id not in known:
                        close = difflib.get_close_matches(rule_id, known, n=1)
                        maybe = f" (did you mean {close[0]!r}?)" if close else ""
                        self.problem(
                            [*path, "expect", key],
                            f"test {test.name!r}: expect {key} names {rule_id!r}, which is no {kind} "
                            f"of this file{maybe}",
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
                message = _explain(exc, text, section, groups, self.activity_types)
                token = getattr(exc, "token", None)
                where = self.doc.locate([*path, "when"])
                column = self._token_column(where.line, where.column, text, getattr(token, "lexpos", None))
                self.problems.append(RuleProblem(self.file, where.line, column, rule_id, message))
                continue
            compiled.append(rule)
            for message in static_problems(rule):
                where = self.doc.locate([*path, "when"])
                self.problems.append(RuleProblem(self.file, where.line, where.column, rule_id, message))
        return compiled

    def _token_column(self, line: int, column: int, text: str, offset: int | None) -> int:
        """The column of a syntax error's token, when the expression is written on one line."""
        if offset is None:
            return column
        lines = self.source.splitlines()
        start = lines[line - 1].find(text, column - 1) if 0 < line <= len(lines) else -1
        return start + offset + 1 if start >= 0 else column


_CHILDREN: tuple[str, ...] = (
    *("left", "right", "container", "member", "condition", "case_true", "case_false", "object"),
    *("function", "expression", "iterable", "result", "start", "stop", "item"),
)
"""The attributes of rule-engine nodes that hold sub-expressions."""


def _nodes(node: Any) -> Iterator[Any]:
    """``node`` and every expression below it."""
    yield node
    for name in _CHILDREN:
        child = getattr(node, name, None)
        if isinstance(child, rule_engine.ast.ExpressionBase):
            yield from _nodes(child)
    for name in ("arguments", "value"):
        children = getattr(node, name, None)
        if isinstance(children, list | tuple):
            for child in children:
                for part in child if isinstance(child, tuple) else (child,):
                    if isinstance(part, rule_engine.ast.ExpressionBase):
                        yield from _nodes(part)


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
    problems = (_static_problem(node, text, rule.context) for node in _nodes(rule.statement.expression))
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

_TYPE_HINTS: Sequence[tuple[str, str]] = (
    ("Expected `str`,", "; put the value in quotes"),
    ("Expected `str | array", "; write one word or a list like [a, b]"),
    ("Expected `str` of length", "; write a non-empty value"),
    ("Expected `float`,", "; write a number like 10 or -2.5"),
    ("Expected `int`,", "; write a whole number"),
    ("Expected `float` >", "; write a number in that range"),
    ("Expected `int` >", "; write a whole number in that range"),
    ("Expected `datetime` with a timezone", "; end the time with Z (UTC) or an offset like +02:00"),
    ("Expected `object`", "; write a mapping (key: value, or {key: value})"),
    ("Expected `array`", "; write a list (- item lines, or [a, b])"),
)
"""What to do about a msgspec type error, by how its message starts."""


def _mapping_label(path: YamlPath) -> str | None:  # noqa: PLR0911 - one return per kind of mapping
    """How a problem at ``path`` names the nested mapping it is in, when the message must say it.

    Rules are named by their id and tests by their name; what is inside them (a group's
    settings, an SLA, a test's expect or activities) and the two sections checked as a whole
    are named here. Elsewhere None: the message already says where.
    """
    match list(path):
        case ["scoring", "groups", str(group), *_]:
            return f"group {group!r}"
        case ["scoring" | "routing" as section]:
            return section
        case ["routing", "sla", *_]:
            return "routing.sla"
        case ["routing", "rules", int(), "sla", *_]:
            return "sla"
        case ["tests", int(), "expect", *_]:
            return "expect"
        case ["tests", int(), "activities", int(number), *_]:
            return f"activities[{number}]"
    return None


def _struct_at(spec: type[Spec], segments: Sequence[str | int]) -> type[msgspec.Struct] | None:
    """The Struct the mapping at ``segments`` (relative to ``spec``) is validated as, if any."""
    info: Any = msgspec.inspect.type_info(spec)
    for segment in segments:
        info = _unwrapped(info)
        if isinstance(segment, int) and isinstance(info, msgspec.inspect.ListType):
            info = info.item_type
        elif isinstance(segment, str) and isinstance(info, msgspec.inspect.StructType):
            field = next((f for f in info.fields if f.encode_name == segment), None)
            if field is None:
                return None
            info = field.type
        else:
            return None
    info = _unwrapped(info)
    return info.cls if isinstance(info, msgspec.inspect.StructType) else None


def _unwrapped(info: Any) -> Any:
    """``X`` of ``Annotated[X, ...]`` and of ``X | None`` (the first Struct or list of a union)."""
    if isinstance(info, msgspec.inspect.Metadata):
        info = info.type
    if isinstance(info, msgspec.inspect.UnionType):
        kinds = (msgspec.inspect.StructType, msgspec.inspect.ListType, msgspec.inspect.Metadata)
        info = next((t for t in info.types if isinstance(t, kinds)), info)
        if isinstance(info, msgspec.inspect.Metadata):
            info = info.type
    return info


def _type_hint(message: str) -> str:
    return next((hint for start, hint in _TYPE_HINTS if message.startswith(start)), "; fix the value's type")


def _raw_id(value: Any) -> str | None:
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return typing.cast(str, value["id"])
    return None


_SECTION_HINTS: Mapping[str, str] = {
    "score": "'score' is only available in qualification and routing",
    "groups": "'groups' is only available in qualification and routing",
    "stage": "'stage' is only available in routing",
}


_LEAD_NAMES = frozenset([*lead_field_types(), "attributes"])


def _explain(  # noqa: PLR0911 - one return per error kind
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
