"""Rule regexes (``=~``, ``=~~``, ``!~``, ``!~~``) run with RE2: linear time, whatever the pattern.

Python's ``re`` backtracks: ``title =~ "(a+)+$"`` took 6 s on a title of 26 ``a`` and ``!``,
blocking the worker, and a rule file is an upload. RE2 (the ``google-re2`` binding) matches in
time linear in the text, and refuses, when the file loads, what needs backtracking
(backreferences, lookaround, atomic groups, possessive quantifiers).

Both evaluators use it: the compiled code calls :func:`compile_regex`'s pattern directly, and
:func:`use_re2` swaps the pattern rule-engine compiled with ``re`` for the RE2 one, and makes
rule-engine compile a pattern computed at run time (``title =~ attributes.pattern``) with RE2
too. rule-engine still parses and type-checks the pattern with ``re`` first, so a pattern is
accepted only when both engines accept it.

Where RE2 and ``re`` disagree on a pattern both accept (docs/rules-format.md, "Regular
expressions"; tests/test_regex.py pins each):

- ``\\b \\B \\w \\W \\d \\D \\s \\S`` are ASCII in RE2 (``re`` also counts ``é`` as a letter);
- ``$`` (without ``(?m)``) is the very end of the text in RE2; ``re`` also accepts it before a
  final newline;
- ``{,n}`` is a repetition in ``re`` and literal text in RE2, and ``[[:alpha:]]`` a POSIX class
  in RE2 and a strange set in ``re``: both are refused here, with what to write instead.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from typing import Any, Final

import re2
import rule_engine

__all__ = ["RegexRefused", "compile_regex", "literal_regexes", "use_re2"]

Pattern = Any
"""A compiled RE2 pattern (``re2._Regexp[str]``: ``match``/``search`` as in ``re``)."""

_FLAGS: Final = ((re.IGNORECASE, "i"), (re.MULTILINE, "m"), (re.DOTALL, "s"))
"""``re`` flags a rule-engine context may set, as RE2 inline flags."""

_OPTIONS: Final = re2.Options()
_OPTIONS.log_errors = False  # a refused pattern is reported to the author, not logged to stderr

# Checked with RE2 as well: a rule file may hold a pattern of a megabyte.
_EMPTY_LOW_BOUND: Final = re2.compile(r"(?:^|[^\\])(?:\\\\)*\{,\d+\}", _OPTIONS)
_POSIX_CLASS: Final = re2.compile(r"\[:\^?[a-z]+:\]", _OPTIONS)

_REASONS: Final = (
    (re.compile(r"invalid escape sequence: \\[1-9]"), "backreferences (\\1)"),
    (re.compile(r"invalid perl operator: \(\?<?[=!]"), "lookahead or lookbehind ((?=, (?!, (?<=, (?<!)"),
    (re.compile(r"invalid perl operator: \(\?>"), "atomic groups ((?>...))"),
    (re.compile(r"bad repetition operator: [*+?]\+"), "possessive quantifiers (*+, ++, ?+)"),
    (re.compile(r"invalid escape sequence: \\Z"), "\\Z (write $ for the end of the text)"),
    (re.compile(r"invalid repetition size"), "repetition counts above 1000"),
    (re.compile(r"pattern too large"), "a pattern this large"),
)


class RegexRefused(ValueError):
    """A pattern RE2 cannot run (or that would mean something else than with ``re``)."""


def compile_regex(pattern: str, flags: int = 0) -> Pattern:
    """``pattern`` compiled by RE2 with ``re`` ``flags`` (IGNORECASE, MULTILINE, DOTALL).

    Raises :class:`RegexRefused` saying what to write instead.
    """
    return _compile(pattern, flags)


@functools.lru_cache(maxsize=512)  # patterns read from leads at run time repeat
def _compile(pattern: str, flags: int) -> Pattern:
    if _EMPTY_LOW_BOUND.search(pattern):
        raise RegexRefused("write {0,n} for 'at most n times' ({,n} is literal text in RE2)")
    if _POSIX_CLASS.search(pattern):
        raise RegexRefused("POSIX classes such as [[:alpha:]] are not supported; write [a-zA-Z]")
    inline = "".join(letter for flag, letter in _FLAGS if flags & flag)
    if flags & ~(re.IGNORECASE | re.MULTILINE | re.DOTALL | re.UNICODE):
        raise RegexRefused(f"regex flags {flags!r} are not supported")
    try:
        return re2.compile(f"(?{inline}){pattern}" if inline else pattern, _OPTIONS)
    except re2.error as exc:
        raise RegexRefused(_reason(exc, pattern)) from None


def _reason(exc: Exception, pattern: str) -> str:
    detail = exc.args[0] if exc.args else str(exc)
    if isinstance(detail, bytes):
        detail = detail.decode("utf-8", errors="replace")
    if "(?P=" in pattern:  # RE2 says only "invalid perl operator: (?P"
        detail = f"{detail}; backreferences ((?P=name)) need backtracking"
    for found, what in _REASONS:
        if found.search(detail):
            return f"RE2, which runs rule regexes in linear time, does not support {what} ({detail})"
    return f"RE2, which runs rule regexes in linear time, refuses it ({detail})"


def _regex_nodes(node: Any) -> Iterator[Any]:
    from leadroute.rules._expressions import expression_nodes

    for found in expression_nodes(node):
        if isinstance(found, rule_engine.ast.FuzzyComparisonExpression):
            yield found


def literal_regexes(rule: rule_engine.Rule) -> list[str]:
    """The patterns written as text literals in ``rule`` (what the loader checks)."""
    return [
        node.right.value
        for node in _regex_nodes(rule.statement.expression)
        if isinstance(node.right, rule_engine.ast.StringExpression)
    ]


def _rule_engine_compiler(flags: int) -> Callable[[str], Pattern]:
    def compile_for_rule_engine(pattern: str) -> Pattern:
        try:
            return compile_regex(pattern, flags)
        except RegexRefused as exc:
            raise rule_engine.errors.RegexSyntaxError(
                "invalid regular expression", error=exc, value=pattern
            ) from None

    return compile_for_rule_engine


def use_re2(rule: rule_engine.Rule) -> None:
    """Make rule-engine's own evaluation of ``rule`` match with RE2 (idempotent).

    Raises :class:`RegexRefused` for a literal pattern RE2 cannot run (the loader has already
    refused such a rule file; this is for rules built elsewhere).
    """
    for node in _regex_nodes(rule.statement.expression):
        if getattr(node, "_leadroute_re2", False):
            continue
        flags = node.context.regex_flags
        if isinstance(node.right, rule_engine.ast.StringExpression):
            # FuzzyComparisonExpression keeps the ``re`` pattern of a literal in ``_right``
            node._right = compile_regex(node.right.value, flags)
        # and compiles any other pattern at evaluation time with ``_compile_regex``
        node._compile_regex = _rule_engine_compiler(flags)
        node._leadroute_re2 = True
