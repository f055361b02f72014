"""The JSON Schema for rule files: generated from the Structs, committed, referenced, and right."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from leadroute.cli import main
from leadroute.rules import SCHEMA_FILE_NAME, ruleset_json_schema, ruleset_schema_text
from leadroute.rules._spec import RulesetSpec, Spec

ROOT = Path(__file__).resolve().parent.parent
RULES_DIR = ROOT / "rules"
COMMITTED = RULES_DIR / SCHEMA_FILE_NAME
REGENERATE = f"leadroute rules schema > rules/{SCHEMA_FILE_NAME}"
FIRST_LINE = f"# yaml-language-server: $schema=./{SCHEMA_FILE_NAME}"


def rule_files() -> list[Path]:
    return sorted(p for p in RULES_DIR.iterdir() if p.suffix in (".yaml", ".yml"))


def problems(
    schema: dict[str, Any], value: Any, node: dict[str, Any] | None = None, at: str = "$"
) -> list[str]:
    """A small validator for the keywords the generated schema uses (no extra dependency).

    Enough to prove the schema describes real rule files and rejects the mistakes an editor
    should underline: unknown keys, wrong types, missing keys, words outside an enum.
    """
    node = schema if node is None else node
    if "$ref" in node:
        return problems(schema, value, schema["definitions"][node["$ref"].rsplit("/", 1)[1]], at)
    if "anyOf" in node:
        each = [problems(schema, value, branch, at) for branch in node["anyOf"]]
        return [] if any(not f for f in each) else [f"{at}: matches no alternative: {each}"]
    if "enum" in node:
        return [] if value in node["enum"] else [f"{at}: {value!r} not in {node['enum']}"]
    kind = node.get("type")
    checks = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
    }
    if kind is not None and not checks[kind](value):
        return [f"{at}: expected {kind}, got {type(value).__name__}"]
    found: list[str] = object_problems(schema, value, node, at) if kind == "object" else []
    if kind == "array" and "items" in node:
        for index, item in enumerate(value):
            found += problems(schema, item, node["items"], f"{at}[{index}]")
    if kind in ("integer", "number"):
        if "minimum" in node and value < node["minimum"]:
            found.append(f"{at}: below {node['minimum']}")
        if "exclusiveMinimum" in node and value <= node["exclusiveMinimum"]:
            found.append(f"{at}: not above {node['exclusiveMinimum']}")
    return found


def object_problems(
    schema: dict[str, Any], value: dict[str, Any], node: dict[str, Any], at: str
) -> list[str]:
    properties = node.get("properties", {})
    extra = node.get("additionalProperties")
    pattern = node.get("propertyNames", {}).get("pattern")
    found = [f"{at}: missing {key!r}" for key in node.get("required", []) if key not in value]
    for key, item in value.items():
        if key in properties:
            found += problems(schema, item, properties[key], f"{at}.{key}")
        elif extra is False:
            found.append(f"{at}: unknown key {key!r}")
        elif isinstance(extra, dict):
            found += problems(schema, item, extra, f"{at}.{key}")
        if pattern and not re.search(pattern, key):
            found.append(f"{at}: key {key!r} does not match {pattern}")
    return found


def as_json(value: Any) -> Any:
    """YAML data as an editor's JSON view of it (timestamps become strings)."""
    return json.loads(msgspec.json.encode(value))


class TestCommittedSchema:
    """The committed schema is current, printed by the CLI, and referenced from each rule file."""

    def test_committed_schema_is_current(self) -> None:
        assert COMMITTED.exists(), f"{COMMITTED} is missing; create it with: {REGENERATE}"
        current = ruleset_schema_text()
        assert COMMITTED.read_text(encoding="utf-8") == current, (
            f"{COMMITTED.name} is stale (the rule-file Structs changed); regenerate it with: {REGENERATE}"
        )

    def test_cli_prints_the_schema(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["rules", "schema"]) == 0
        assert capsys.readouterr().out == ruleset_schema_text()

    @pytest.mark.parametrize("path", rule_files(), ids=lambda p: p.name)
    def test_rule_files_reference_it(self, path: Path) -> None:
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first == FIRST_LINE, f"{path.name} must start with: {FIRST_LINE}"


class TestSchemaDescribesTheFormat:
    """The schema is the full, precise file format, with help for editors."""

    def test_is_draft_07_with_a_title(self) -> None:
        schema = ruleset_json_schema()
        assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
        assert schema["title"] == "leadroute rule file"
        assert "$defs" not in json.dumps(schema)

    def test_every_struct_field_is_a_property_and_no_other_key_is_allowed(self) -> None:
        schema = ruleset_json_schema()
        structs = {"RulesetSpec": schema, **schema["definitions"]}
        seen: set[str] = set()
        for name, definition in structs.items():
            cls = getattr(sys.modules["leadroute.rules._spec"], name)
            assert issubclass(cls, Spec)
            assert set(definition["properties"]) == {f.encode_name for f in msgspec.structs.fields(cls)}, name
            assert definition["additionalProperties"] is False, name
            seen.add(name)
        assert {
            "ScoringRuleSpec",
            "GroupSpec",
            "RoutingRuleSpec",
            "SlaSpec",
            "TestSpec",
            "ActivitySpec",
        } <= seen

    def test_keys_have_help(self) -> None:
        definitions = ruleset_json_schema()["definitions"]
        rule = definitions["ScoringRuleSpec"]["properties"]
        for key in ("when", "points", "on_activity", "id"):
            assert rule[key].get("description"), key
        assert definitions["GroupSpec"]["properties"]["half_life_days"]["description"]
        assert definitions["RoutingRuleSpec"]["properties"]["route"]["description"]
        assert "account_owner" in json.dumps(definitions["RoutingRuleSpec"]["properties"]["route"])

    def test_words_are_enums(self) -> None:
        definitions = ruleset_json_schema()["definitions"]
        stage = definitions["QualificationSpec"]["properties"]["stage"]
        assert stage["enum"] == ["disqualified", "lead", "mql", "sql"]
        assert definitions["SlaSpec"]["properties"]["on_breach"]["enum"] == ["escalate", "reassign"]

    def test_schema_is_generated_from_the_full_spec(self) -> None:
        raw = msgspec.json.schema(RulesetSpec)
        assert set(raw["$defs"]) - {"RulesetSpec"} == set(ruleset_json_schema()["definitions"])


class TestSchemaAgainstFiles:
    """The schema accepts the shipped rule files and rejects what an editor should underline."""

    @pytest.mark.parametrize("path", rule_files(), ids=lambda p: p.name)
    def test_shipped_rule_files_are_valid(self, path: Path) -> None:
        data = as_json(yaml.safe_load(path.read_text(encoding="utf-8")))
        assert problems(ruleset_json_schema(), data) == []

    @pytest.mark.parametrize(
        ("change", "expected"),
        [
            (lambda d: d["scoring"]["rules"][0].update(pionts=5), "unknown key 'pionts'"),
            (lambda d: d["scoring"]["rules"][0].update(points="lots"), "expected number"),
            (lambda d: d["scoring"]["rules"][0].pop("when"), "missing 'when'"),
            (lambda d: d["qualification"][0].update(stage="sqll"), "'sqll' not in"),
            (
                lambda d: d["routing"].update(sla={"accept_within_minutes": 0, "on_breach": "reassign"}),
                "below 1",
            ),
            (lambda d: d["routing"]["rules"][0].update(route="owner"), "matches no alternative"),
            (lambda d: d["fields"].update(budget="FLOAT"), "does not match"),
            (lambda d: d["scoring"]["groups"]["fit"].update(half_life_days=0), "matches no alternative"),
            (lambda d: d.update(routeing={}), "unknown key 'routeing'"),
        ],
        ids=[
            "unknown-key",
            "wrong-type",
            "missing-key",
            "stage",
            "sla-range",
            "route",
            "field",
            "half-life",
            "top",
        ],
    )
    def test_mistakes_are_rejected(self, change: Any, expected: str) -> None:
        data = as_json(yaml.safe_load((RULES_DIR / "inbound.yaml").read_text(encoding="utf-8")))
        change(data)
        found = problems(ruleset_json_schema(), data)
        assert any(expected in p for p in found), found
