"""Reading a rule file section by section, collecting every problem instead of stopping at one.

:class:`SectionReader` holds one load's document and the problems found so far, and validates
each section (``fields``, ``scoring``, ``qualification``, ``routing``, ``tests``) into Spec
Structs paired with where they were written, then checks what spans sections (unique rule ids,
the rule ids tests name). :class:`leadroute.rules._builder.Builder` adds the expressions and the
assembled :class:`Ruleset`.
"""

from __future__ import annotations

import difflib
import math
import re
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import msgspec
from rule_engine import DataType

from leadroute.models import QUEUE_PREFIX
from leadroute.rules._facts import ACTIVITY_BUILTINS, ATTRIBUTE_TYPES
from leadroute.rules._messages import ACTIVITY_TYPE_HINT, mapping_label, validation_problem
from leadroute.rules._problems import RuleProblem, RulesetError
from leadroute.rules._spec import (
    ExpectSpec,
    GroupSpec,
    QualificationSpec,
    RoutingRuleSpec,
    RoutingSectionSpec,
    ScoringRuleSpec,
    ScoringSectionSpec,
    SlaSpec,
    Spec,
    TestSpec,
)
from leadroute.rules._yaml import Path as YamlPath
from leadroute.rules._yaml import YamlDocument

__all__ = ["RoutingSection", "SectionReader"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DECLARED_FIELD = re.compile(r"^(attributes|activity)\.([A-Za-z_][A-Za-z0-9_]*)$")

S = TypeVar("S", bound=Spec)


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingSection:
    """The ``routing:`` section once validated: its valid rules, ``fallback`` and default ``sla``."""

    fallback: str
    sla: SlaSpec | None
    rules: list[tuple[RoutingRuleSpec, YamlPath]]
    reengaged: str = "route"


class SectionReader:
    """One load: the document, the problems found so far, and a step per section that finds them."""

    def __init__(self, source: str, path: Path | None) -> None:
        self.source = source
        self.path = path
        self.file = str(path) if path is not None else "<ruleset>"
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
        label = mapping_label(path)
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
            validation_problem(self.problem, str(exc), spec, path, rule_id)
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

    def line(self, path: YamlPath) -> int:
        """The line ``path`` was written on."""
        return self.doc.locate(path).line

    # -- the sections -----------------------------------------------------------------------

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
                    self.problem([*path, "on_activity"], ACTIVITY_TYPE_HINT, rule_id=rule.id)
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

    def routing(self, raw: Mapping[str, Any]) -> RoutingSection | None:
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
        return RoutingSection(fallback=section.fallback, sla=sla, rules=rules, reengaged=section.reengaged)

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


def _raw_id(value: Any) -> str | None:
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return typing.cast(str, value["id"])
    return None
