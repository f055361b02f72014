"""Which members of a pool may take a lead now, and why the others may not (pure)."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from leadroute.models import OwnerSkip

__all__ = ["Member", "Roster", "screen"]


class Member(msgspec.Struct, frozen=True):
    """A pool member as routing sees it."""

    id: str
    active: bool


class Roster(msgspec.Struct, frozen=True):
    """A pool's members in routing order, each marked eligible or skipped with a reason."""

    members: tuple[Member, ...]
    eligible: frozenset[str]
    skipped: tuple[OwnerSkip, ...]


def screen(members: Sequence[Member]) -> Roster:
    """Mark each member eligible, or skipped with the reason (inactive for now)."""
    skipped = tuple(OwnerSkip(m.id, "inactive") for m in members if not m.active)
    eligible = frozenset(m.id for m in members if m.active)
    return Roster(tuple(members), eligible, skipped)
