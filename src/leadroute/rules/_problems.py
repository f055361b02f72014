"""What goes wrong in a rule file, said so that sales ops can fix it.

Every problem carries the file, a 1-based line and column and, when known, the rule id, and
renders like a compiler message::

    rules/inbound.yaml:12:7: rule 'senior-title': unknown field 'titel' (did you mean 'title'?)

The loader collects every problem it can find before raising one :class:`RulesetError`, so a
broken file is fixed in one round trip, not one error at a time.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

__all__ = ["RuleProblem", "RulesetError"]


class RuleProblem(msgspec.Struct, frozen=True):
    """One thing wrong with a rule file, and where."""

    file: str
    line: int
    column: int
    rule_id: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}: "
        rule = f"rule {self.rule_id!r}: " if self.rule_id else ""
        return f"{where}{rule}{self.message}"


class RulesetError(Exception):
    """A rule file that cannot be used; ``problems`` lists everything found wrong with it."""

    def __init__(self, problems: Iterable[RuleProblem]) -> None:
        self.problems: list[RuleProblem] = list(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(problem) for problem in self.problems)
