"""Load a rule file: YAML → validated Structs → type-checked expressions → :class:`Ruleset`.

Each step collects problems instead of stopping at the first, so a file with a typo in one
rule and an undeclared group in another reports both. Only a YAML syntax error or a broken top
level stops early, because nothing after it can be trusted.

This module holds the entry points. The steps live beside it: :mod:`._sections` validates each
section, :mod:`._messages` words validation errors, :mod:`._expressions` checks and words the
``when:`` expressions, and :mod:`._builder` compiles them and assembles the :class:`Ruleset`.
"""

from __future__ import annotations

from pathlib import Path

from leadroute.rules._builder import Builder
from leadroute.rules._problems import RuleProblem, RulesetError
from leadroute.rules._ruleset import Ruleset
from leadroute.rules.evaluator import Evaluator, evaluator_for

__all__ = [
    "RULES_PATH_ENV",
    "check_pools",
    "load_rules_path",
    "load_ruleset",
    "parse_ruleset",
    "pools_referenced",
    "rule_files",
]

RULES_PATH_ENV = "LEADROUTE_RULES_PATH"


def load_ruleset(path: Path, *, evaluator: Evaluator | None = None) -> Ruleset:
    """Load, validate and compile one rule file. Raises :class:`RulesetError` listing every problem."""
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesetError([RuleProblem(str(path), 1, 1, None, f"cannot read the rule file: {exc}")]) from exc
    return parse_ruleset(source, path=path, evaluator=evaluator)


def load_rules_path(path: Path, *, evaluator: Evaluator | None = None) -> Ruleset:
    """Load the ruleset at ``path``: a file, or a directory holding exactly one ``*.yaml``/``*.yml``."""
    if not path.is_dir():
        return load_ruleset(path, evaluator=evaluator)
    candidates = rule_files(path)
    if len(candidates) == 1:
        return load_ruleset(candidates[0], evaluator=evaluator)
    if not candidates:
        message = f"no rule file (*.yaml or *.yml) in directory {path}; add one or set {RULES_PATH_ENV}"
    else:
        names = ", ".join(p.name for p in candidates)
        message = (
            f"directory {path} holds several rule files ({names}); "
            f"set {RULES_PATH_ENV} to the one file to use"
        )
    raise RulesetError([RuleProblem(str(path), 1, 1, None, message)])


def rule_files(path: Path) -> list[Path]:
    """``path`` itself, or the ``*.yaml``/``*.yml`` files in it, sorted, when it is a directory."""
    if not path.is_dir():
        return [path]
    return sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def parse_ruleset(source: str, *, path: Path | None = None, evaluator: Evaluator | None = None) -> Ruleset:
    """Build a :class:`Ruleset` from rule-file text (``path`` only names it in messages)."""
    return Builder(source, path, evaluator or evaluator_for()).build()


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
