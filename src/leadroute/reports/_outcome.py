"""What a lead's outcomes add up to (pure): the one rule every report and answer uses.

Outcomes are taken in the order they happened (``at``, then sequence). The latest one is the
lead's outcome, except that ``converted`` never undoes ``won`` or ``lost`` (it is the step before
them: a CRM that sends "converted" late does not reopen a closed deal). Then:

- *converted*: the outcome is ``converted``, ``won`` or ``lost`` (a deal was opened);
- *won*: the outcome is ``won``;
- *rejected by sales*: the outcome is ``disqualified_by_sales`` (sales changing its mind later,
  ``converted`` after it, counts as converted).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Final

from leadroute.workflow.log import OutcomeKind

__all__ = ["CONVERTED", "lead_outcome"]

CONVERTED: Final = frozenset({"converted", "won", "lost"})
"""Outcomes that mean the lead converted (``won`` and ``lost`` close a deal it opened)."""


def lead_outcome(history: Iterable[tuple[datetime, int, OutcomeKind]]) -> OutcomeKind | None:
    """The lead's outcome from its ``(at, seq, outcome)`` events, in any order; None: no outcome."""
    state: OutcomeKind | None = None
    for _, _, outcome in sorted(history):
        if outcome == "converted" and state in ("won", "lost"):
            continue
        state = outcome
    return state
