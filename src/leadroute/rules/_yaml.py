"""YAML with line numbers: the parsed data and the node tree it came from.

PyYAML's ``safe_load`` throws away where each value was written. We compose the node tree
first (each node keeps its ``start_mark``), then construct plain Python data from that same
tree, and keep both: the data is validated, the nodes answer "which line was that?".

Shared by every hand-edited YAML file leadroute reads (rule files, owners files): also the two
ways a problem gets a place, a syntax error's mark (:func:`syntax_error`) and the ``$.a[0].b``
path of a msgspec validation error (:func:`validation_path`).

Two YAML features are refused while the text is composed, before anything is built from it
(files arrive by upload, so reading one must cost time in proportion to its size):

- **aliases** (``*name``). An alias repeats a whole subtree without repeating its text; nine
  aliases of nine aliases of... (a "billion laughs" file of 400 bytes) become 10**9 values for
  whatever walks the data afterwards (9 s of CPU per upload, measured). Leadroute's files do not
  need them: a rule file is read by people reviewing a change, where a written-out value is
  clearer than a reference, and an error inside an aliased subtree would point at the anchor,
  not at the rule using it. Anchors alone (``&name``) are harmless and ignored.
- **nesting deeper than** :data:`MAX_DEPTH` levels: the composer recurses once per level, and
  ``[[[[...`` thousands deep would end in a ``RecursionError``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import yaml

__all__ = [
    "MAX_DEPTH",
    "Located",
    "Path",
    "Refused",
    "YamlDocument",
    "missing_key",
    "parse_yaml",
    "syntax_error",
    "unknown_key",
    "validation_path",
]

_MSGSPEC_AT = re.compile(r"^(?P<message>.*) - at `\$(?P<path>[^`]*)`$")
_MSGSPEC_SEGMENT = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]")  # not the "]" of a dict value's "[...]"
_UNKNOWN_FIELD = re.compile(r"^Object contains unknown field `(?P<key>[^`]*)`$")
_MISSING_FIELD = re.compile(r"^Object missing required field `(?P<key>[^`]*)`$")

MAX_DEPTH = 64
"""The deepest nesting of mappings and sequences a YAML file may have (rule files use about 8)."""

Path = Sequence[str | int]
"""A location inside the document: mapping keys and sequence indexes, from the root."""


class Located:
    """A 1-based line and column."""

    __slots__ = ("column", "line")

    def __init__(self, line: int, column: int) -> None:
        self.line = line
        self.column = column


def _at(node: yaml.Node) -> Located:
    return Located(node.start_mark.line + 1, node.start_mark.column + 1)


class YamlDocument:
    """One parsed YAML document: ``data`` and a way to find where any part of it was written."""

    __slots__ = ("data", "root")

    def __init__(self, data: Any, root: yaml.Node | None) -> None:
        self.data = data
        self.root = root

    def node(self, path: Path) -> yaml.Node | None:
        """The node at ``path``, or the deepest node on the way there that exists."""
        node = self.root
        for segment in path:
            child = _child(node, segment) if node is not None else None
            if child is None:
                return node
            node = child
        return node

    def locate(self, path: Path, *, key: str | None = None) -> Located:
        """Where ``path`` was written; with ``key``, where that key of the mapping at ``path`` was."""
        node = self.node(path)
        if node is None:
            return Located(1, 1)
        if key is not None and isinstance(node, yaml.MappingNode):
            for key_node, _ in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                    return _at(key_node)
        return _at(node)

    def duplicate_keys(self) -> list[tuple[str, Located]]:
        """Mapping keys written twice (PyYAML silently keeps the last one)."""
        found: list[tuple[str, Located]] = []
        stack = [self.root] if self.root is not None else []
        while stack:
            node = stack.pop()
            if isinstance(node, yaml.MappingNode):
                seen: set[str] = set()
                for key_node, value_node in node.value:
                    if isinstance(key_node, yaml.ScalarNode):
                        if key_node.value in seen:
                            found.append((key_node.value, _at(key_node)))
                        seen.add(key_node.value)
                    stack.append(value_node)
            elif isinstance(node, yaml.SequenceNode):
                stack.extend(node.value)
        return found


def _child(node: yaml.Node, segment: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode) and isinstance(segment, str):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == segment:
                return value_node  # type: ignore[no-any-return]
    if isinstance(node, yaml.SequenceNode) and isinstance(segment, int) and 0 <= segment < len(node.value):
        return node.value[segment]  # type: ignore[no-any-return]
    return None


class Refused(yaml.MarkedYAMLError):
    """Valid YAML that leadroute does not read: an alias, or nesting past :data:`MAX_DEPTH`."""


class _Loader(yaml.SafeLoader):
    """``SafeLoader`` that refuses aliases and deep nesting as it composes (see the module docstring)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:  # noqa: N803 - PyYAML's name
        # The scanner looks up to 1024 characters ahead for a possible key, at a cost that grows
        # with the flow level: 1000 '[' took 0.2 s before the composer saw the first one.
        if self.flow_level >= MAX_DEPTH:
            raise Refused(
                problem=f"YAML nested more than {MAX_DEPTH} levels deep; flatten the structure",
                problem_mark=self.get_mark(),
            )
        super().fetch_flow_collection_start(TokenClass)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise Refused(
                problem=(
                    f"YAML alias '*{event.anchor}' is not supported; write the value out in full "
                    "(aliases and anchors can make a small file expand to billions of values)"
                ),
                problem_mark=event.start_mark,
            )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise Refused(
                    problem=f"YAML nested more than {MAX_DEPTH} levels deep; flatten the structure",
                    problem_mark=self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def parse_yaml(text: str) -> YamlDocument:
    """Parse one YAML document, keeping its node tree. Raises ``yaml.YAMLError`` (with a mark).

    Aliases and nesting past :data:`MAX_DEPTH` raise :class:`Refused` (a ``yaml.YAMLError``).
    """
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    finally:
        loader.dispose()
    return YamlDocument(data, root)


def syntax_error(exc: yaml.YAMLError) -> tuple[Located, str]:
    """Where a YAML syntax error is and what to say about it (with the usual fix)."""
    mark = getattr(exc, "problem_mark", None)
    where = Located(mark.line + 1, mark.column + 1) if mark is not None else Located(1, 1)
    detail = getattr(exc, "problem", None) or str(exc)
    if isinstance(exc, Refused):
        return where, detail
    context = getattr(exc, "context", None)
    message = f"YAML syntax error: {detail}" + (f" ({context})" if context else "")
    return where, message + "; check the indentation and quote values containing ': ' or '#'"


def validation_path(text: str) -> tuple[str, list[str | int]]:
    """A msgspec ``ValidationError``'s text split into its message and the path it names.

    ``"Expected `int` - at `$.owners[0].weight`"`` is ``("Expected `int`", ["owners", 0, "weight"])``;
    the path is relative to what was converted.
    """
    found = _MSGSPEC_AT.match(text)
    if found is None:
        return text, []
    segments: list[str | int] = []
    for name, index in _MSGSPEC_SEGMENT.findall(found["path"]):
        segments.append(int(index) if index else name)
    return found["message"], segments


def unknown_key(message: str) -> str | None:
    """The key a msgspec "unknown field" message names (a typo in a hand-edited file), else None."""
    found = _UNKNOWN_FIELD.match(message)
    return found["key"] if found else None


def missing_key(message: str) -> str | None:
    """The key a msgspec "missing required field" message names, else None."""
    found = _MISSING_FIELD.match(message)
    return found["key"] if found else None
