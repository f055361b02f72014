"""The JSON Schema of rule files, generated from the Structs in :mod:`leadroute.rules._spec`.

Editors use it to autocomplete keys, show each key's help and underline mistakes as they are
typed (VS Code with the YAML extension reads the ``# yaml-language-server: $schema=...`` first
line of each rule file). The committed copy, ``rules/leadroute-rules.schema.json``, is
regenerated with ``leadroute rules schema > rules/leadroute-rules.schema.json``; a test fails
when it is stale.

The schema is what an editor can check on its own: key names, types, allowed words, number
ranges. The loader checks more (expressions, declared groups and fields, unique ids...).
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from leadroute.rules._spec import RulesetSpec

__all__ = ["SCHEMA_FILE_NAME", "ruleset_json_schema", "ruleset_schema_text"]

SCHEMA_FILE_NAME = "leadroute-rules.schema.json"
"""The committed schema's file name, beside the rule files."""

_DRAFT = "http://json-schema.org/draft-07/schema#"


def ruleset_json_schema() -> dict[str, Any]:
    """The schema of a whole rule file, as a JSON-ready dict (draft-07, widely supported)."""
    generated = msgspec.json.schema(RulesetSpec)
    definitions: dict[str, Any] = generated["$defs"]
    root = definitions.pop(RulesetSpec.__name__)
    # draft-07 ignores keywords beside a root "$ref", so the root object is inlined, and the
    # other definitions move to draft-07's conventional "definitions".
    text = json.dumps({**root, "definitions": definitions}).replace('"#/$defs/', '"#/definitions/')
    schema: dict[str, Any] = json.loads(text)
    _hoist_help(schema)
    schema.update(title="leadroute rule file")
    return {"$schema": _DRAFT, **schema}


def _hoist_help(node: Any) -> None:
    """Move ``description``/``examples`` of ``X | None`` up from the ``X`` branch.

    msgspec puts them inside ``anyOf: [X, null]``, where editors do not look for hover help.
    """
    if isinstance(node, list):
        for item in node:
            _hoist_help(item)
        return
    if not isinstance(node, dict):
        return
    for value in node.values():
        _hoist_help(value)
    branches = node.get("anyOf")
    if isinstance(branches, list) and len(branches) == 2 and {"type": "null"} in branches:
        (inner,) = [b for b in branches if b != {"type": "null"}]
        for key in ("description", "examples"):
            if key in inner and key not in node:
                node[key] = inner.pop(key)


def ruleset_schema_text() -> str:
    """The schema as the committed file holds it: indented JSON with a final newline."""
    return json.dumps(ruleset_json_schema(), indent=2, ensure_ascii=False) + "\n"
