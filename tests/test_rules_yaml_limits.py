"""YAML that costs more to read than its size: aliases and deep nesting are refused, at once, with a place."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from leadroute.errors import OwnersFileError
from leadroute.rules import RulesetError, load_ruleset, parse_ruleset
from leadroute.rules._yaml import MAX_DEPTH
from leadroute.store.owners_file import load_owners_file


def alias_bomb(levels: int = 9) -> str:
    """A "billion laughs": each level lists the previous one nine times (9**9 values, ~400 bytes)."""
    lines = ["a: &a [" + ",".join(["lol"] * 9) + "]"]
    for name, previous in zip("bcdefghi"[: levels - 1], "abcdefgh", strict=False):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    return "\n".join(lines) + "\n"


BOMB = alias_bomb()
SMALL_ALIAS = """\
version: 1
scoring:
  groups: {fit: {max: 10}}
  rules:
    - {id: a, group: fit, when: 'true', points: &five 5}
    - {id: b, group: fit, when: 'true', points: *five}
qualification:
  - {stage: lead}
routing:
  rules: []
  fallback: unassigned
"""


def problems(text: str) -> list[str]:
    with pytest.raises(RulesetError) as info:
        parse_ruleset(text, path=Path("rules.yaml"))
    return [str(problem) for problem in info.value.problems]


class TestRuleFiles:
    """An alias, or nesting past the bound, is one problem at its place, found in well under 100 ms."""

    def test_the_alias_bomb_is_refused_quickly_at_its_first_alias(self) -> None:
        assert len(BOMB.encode()) <= 400
        started = time.perf_counter()
        found = problems(BOMB)
        elapsed = time.perf_counter() - started
        assert elapsed < 0.05, f"{elapsed:.3f} s"
        assert found == [
            "rules.yaml:2:8: YAML alias '*a' is not supported; write the value out in full "
            "(aliases and anchors can make a small file expand to billions of values)"
        ]

    def test_any_alias_is_refused_even_a_small_one(self) -> None:
        (found,) = problems(SMALL_ALIAS)
        assert found.startswith("rules.yaml:6:49: YAML alias '*five' is not supported")

    def test_an_anchor_alone_is_harmless(self) -> None:
        ruleset = parse_ruleset(SMALL_ALIAS.replace("points: *five", "points: 5"))
        assert [rule.points for rule in ruleset.scoring_rules] == [5, 5]

    def test_through_load_ruleset_the_file_is_named(self, tmp_path: Path) -> None:
        path = tmp_path / "bomb.yaml"
        path.write_text(BOMB)
        with pytest.raises(RulesetError) as info:
            load_ruleset(path)
        assert str(info.value.problems[0]).startswith(f"{path}:2:8: YAML alias")

    @pytest.mark.parametrize("opening", ["[", "{a: ", "- "])
    def test_nesting_past_the_bound_is_refused_quickly(self, opening: str) -> None:
        text = "version: 1\nscoring:\n  " + opening * 100_000
        started = time.perf_counter()
        (found,) = problems(text)
        assert time.perf_counter() - started < 0.1
        assert f"YAML nested more than {MAX_DEPTH} levels deep" in found
        assert found.startswith("rules.yaml:3:")


class TestOwnersFiles:
    """Owners files share the YAML reader: the same refusal, as ``file:line:column``."""

    def test_an_alias_bomb_owners_file(self, tmp_path: Path) -> None:
        path = tmp_path / "owners.yaml"
        path.write_text(BOMB)
        started = time.perf_counter()
        with pytest.raises(OwnersFileError) as info:
            load_owners_file(path)
        assert time.perf_counter() - started < 0.05
        assert str(info.value).startswith(f"{path}:2:8: YAML alias '*a' is not supported")

    def test_deep_nesting_in_an_owners_file(self, tmp_path: Path) -> None:
        path = tmp_path / "owners.yaml"
        path.write_text("owners: " + "[" * 5000)
        with pytest.raises(OwnersFileError, match="nested more than"):
            load_owners_file(path)
