"""Reading mapping files: every problem with its file and line, and the tests inside run.

A file loads only when it parses, every section is well formed, every lead field and attribute
name is one leadroute knows, and each of its ``tests:`` turns its ``input`` into exactly its
``expect`` (which must itself be a lead ``POST /v1/leads`` would accept). Anything else is a
:class:`MappingFileError` listing every problem as ``mappings/hubspot.yaml:12: ...``.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import msgspec
import yaml

from leadroute.errors import InvalidLead, LeadrouteError
from leadroute.inbound._format import (
    ATTRIBUTE_NAME,
    LEAD_FIELDS,
    Mapping,
    MappingFile,
    Spec,
    canonical_sha256,
)
from leadroute.intake import parse_lead
from leadroute.rules._yaml import YamlDocument, parse_yaml, syntax_error, unknown_key, validation_path

__all__ = ["NAME_PATTERN", "MappingFileError", "load_mapping", "load_mappings", "parse_mapping"]

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
"""A mapping's name is its file name without ``.yaml``: lower-case letters, digits, ``_`` and ``-``."""
_NAME = re.compile(NAME_PATTERN)
_ATTRIBUTE = re.compile(ATTRIBUTE_NAME)
_encode = msgspec.json.encode


class MappingFileError(LeadrouteError):
    """A mapping file that cannot be used; ``problems`` are ``(line, message)`` pairs."""

    def __init__(self, path: str, problems: list[tuple[int, str]]) -> None:
        self.path = path
        self.problems = sorted(problems)
        super().__init__("\n".join(f"{path}:{line}: {message}" for line, message in self.problems))


def parse_mapping(text: str, *, path: str, name: str | None = None) -> Mapping:
    """Load one mapping file's text; raises :class:`MappingFileError`."""
    name = name if name is not None else Path(path).stem
    if not _NAME.match(name):
        raise MappingFileError(path, [(1, f"the file name {name!r} is not a mapping name ({NAME_PATTERN})")])
    try:
        doc = parse_yaml(text)
    except yaml.YAMLError as exc:
        where, message = syntax_error(exc)
        raise MappingFileError(path, [(where.line, message)]) from None
    if not isinstance(doc.data, dict):
        raise MappingFileError(path, [(1, "a mapping file is a YAML mapping with `version:` and `fields:`")])
    problems = [(spot.line, f"key {key!r} is written twice") for key, spot in doc.duplicate_keys()]
    try:
        file = msgspec.convert(doc.data, MappingFile)
    except msgspec.ValidationError as exc:
        message, segments = validation_path(str(exc))
        key = unknown_key(message)
        entries = _entry_problems(doc) if "[...]" in str(exc) else []
        if entries:  # inside a fields: or attributes: entry, which msgspec does not name
            raise MappingFileError(path, [*problems, *entries]) from None
        if key is not None:
            known = [f.encode_name for f in msgspec.structs.fields(MappingFile)]
            hint = difflib.get_close_matches(key, known, n=1)
            message = f"unknown key {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
            line = doc.locate(segments, key=key).line
        else:
            line = doc.locate(segments).line
        at = ".".join(str(p) for p in segments)
        raise MappingFileError(path, [*problems, (line, f"{at}: {message}" if at else message)]) from None
    problems.extend(_name_problems(doc, file))
    if problems:
        raise MappingFileError(path, problems)
    mapping = Mapping(name, file, path=path, sha256=canonical_sha256(doc.data), source_text=text)
    failures = [(doc.locate(["tests", i]).line, failure) for i, failure in _failed_tests(mapping)]
    failures += [
        (doc.locate(["outcomes", "tests", i]).line, failure) for i, failure in _failed_outcome_tests(mapping)
    ]
    if failures:
        raise MappingFileError(path, failures)
    return mapping


def _name_problems(doc: YamlDocument, file: MappingFile) -> list[tuple[int, str]]:
    """Lead fields that do not exist, attribute names that are not names."""
    problems: list[tuple[int, str]] = []
    for field in file.fields:
        if field not in LEAD_FIELDS:
            hint = difflib.get_close_matches(field, sorted(LEAD_FIELDS), n=1)
            problems.append(
                (
                    doc.locate(["fields"], key=field).line,
                    f"fields: {field!r} is not a lead field"
                    + (f" (did you mean {hint[0]!r}?)" if hint else "; put it under `attributes:`"),
                )
            )
    for attribute in file.attributes:
        if not _ATTRIBUTE.match(attribute) or len(attribute) > 64:
            problems.append(
                (
                    doc.locate(["attributes"], key=attribute).line,
                    f"attributes: {attribute!r} is not an attribute name (letters, digits and _, "
                    "not starting with a digit, at most 64)",
                )
            )
    for attribute in file.outcomes.lead.attributes if file.outcomes is not None else ():
        if not _ATTRIBUTE.match(attribute) or len(attribute) > 64:
            problems.append(
                (
                    doc.locate(["outcomes", "lead", "attributes"], key=attribute).line,
                    f"outcomes.lead.attributes: {attribute!r} is not an attribute name",
                )
            )
    if file.outcomes is not None and not file.outcomes.lead.attributes and file.outcomes.lead.email is None:
        problems.append(
            (
                doc.locate(["outcomes", "lead"]).line,
                "outcomes.lead: name at least one attribute or an email path",
            )
        )
    return problems


def _entry_problems(doc: YamlDocument) -> list[tuple[int, str]]:
    """Each ``fields:``/``attributes:`` entry that is not a path, a list of paths or ``{from, transform}``."""
    found: list[tuple[int, str]] = []
    for section in ("fields", "attributes"):
        entries = doc.data.get(section)
        for key, spec in (entries or {}).items() if isinstance(entries, dict) else ():
            try:
                msgspec.convert(spec, Spec)
            except msgspec.ValidationError as exc:
                message, _ = validation_path(str(exc))
                found.append((doc.locate([section, str(key)]).line, f"{section}.{key}: {message}"))
    return found


def _failed_tests(mapping: Mapping) -> list[tuple[int, str]]:
    failed: list[tuple[int, str]] = []
    for i, test in enumerate(mapping.file.tests):
        got = mapping.apply(test.input)
        if got != test.expect:
            failed.append((i, f"test {test.name!r}: {_difference(test.expect, got)}"))
            continue
        try:
            parse_lead(_encode(got))
        except InvalidLead as exc:
            wrong = "; ".join(f"{e.field}: {e.message}" for e in exc.errors)
            failed.append((i, f"test {test.name!r}: the lead it makes is refused at intake ({wrong})"))
    return failed


def _failed_outcome_tests(mapping: Mapping) -> list[tuple[int, str]]:
    """Each ``outcomes.tests`` entry whose record does not make its ``expect`` (an outcome
    ``POST /v1/leads/{id}/outcome`` would accept, or null: no outcome)."""
    if mapping.outcomes is None:
        return []
    # here, not at the top: workflow.outcomes needs the runtime, which holds the loaded mappings
    from leadroute.workflow.outcomes import InvalidOutcome, parse_outcome

    failed: list[tuple[int, str]] = []
    for i, test in enumerate(mapping.outcomes.section.tests):
        found = mapping.outcomes.match(test.input)
        got = found.body if found is not None else None
        if got != test.expect:
            if got is None or test.expect is None:
                wrong = f"expected {_show(test.expect)}, got {_show(got)}"
            else:
                wrong = _difference(test.expect, got)
            failed.append((i, f"outcome test {test.name!r}: {wrong}"))
            continue
        if got is not None:
            try:
                parse_outcome(_encode(got))
            except InvalidOutcome as exc:
                wrong = "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors)
                failed.append((i, f"outcome test {test.name!r}: the outcome it makes is refused ({wrong})"))
    return failed


def _difference(expect: dict[str, Any], got: dict[str, Any]) -> str:
    parts: list[str] = []
    for key in sorted(expect.keys() | got.keys()):
        if key not in got:
            parts.append(f"{key}: expected {_show(expect[key])}, got nothing")
        elif key not in expect:
            parts.append(f"{key}: not expected, got {_show(got[key])}")
        elif expect[key] != got[key]:
            parts.append(f"{key}: expected {_show(expect[key])}, got {_show(got[key])}")
    return "; ".join(parts)


def _show(value: Any) -> str:
    return _encode(value).decode()


def load_mapping(path: Path) -> Mapping:
    """Load one mapping file; raises :class:`MappingFileError` (an unreadable file too)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MappingFileError(str(path), [(1, f"cannot read the file: {exc}")]) from None
    return parse_mapping(text, path=str(path))


def load_mappings(directory: Path) -> tuple[dict[str, Mapping], dict[str, MappingFileError]]:
    """Every ``*.yaml`` file of ``directory``: the ones that load, and the problems of the others,
    each by mapping name. A bad file does not stop the others from loading."""
    loaded: dict[str, Mapping] = {}
    failed: dict[str, MappingFileError] = {}
    if not directory.is_dir():
        return loaded, failed
    for file in sorted(directory.glob("*.yaml")):
        try:
            loaded[file.stem] = load_mapping(file)
        except MappingFileError as exc:
            failed[file.stem] = exc
    return loaded, failed
