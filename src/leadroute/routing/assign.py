"""Choose an owner for a lead in the pool its routing rule picked: PostgreSQL roster, Redis pick.

Called inside the intake transaction, so the roster read and the assignment written agree.
A pool with nobody eligible follows its ``fallback``: another pool (at most a few hops, never in
a loop) or a named queue. Every step and every skipped owner is returned for the explanation.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from leadroute.models import OwnerSkip
from leadroute.routing.eligibility import Member, screen
from leadroute.routing.state import RoutingState
from leadroute.store.db import Connection
from leadroute.store.queries import QUERIES

__all__ = ["MAX_FALLBACK_HOPS", "Assignment", "assign"]

MAX_FALLBACK_HOPS = 3
"""A pool's fallback may name another pool; this many hops at most."""


class Assignment(msgspec.Struct, kw_only=True):
    """Where a lead ended up: an owner in a pool, or a queue and the reason."""

    owner: str | None
    pool: str | None
    queue: str | None
    reason: str | None
    skipped: list[OwnerSkip]
    pools_tried: list[str]

    @property
    def status(self) -> Literal["assigned", "unassigned"]:
        return "assigned" if self.owner is not None else "unassigned"


async def assign(conn: Connection, state: RoutingState, pool: str | None, *, fallback: str) -> Assignment:
    """Pick the next eligible owner of ``pool`` by round robin, following pool fallbacks."""
    skipped: list[OwnerSkip] = []
    tried: list[str] = []
    if pool is None:
        return Assignment(
            owner=None,
            pool=None,
            queue=fallback,
            reason="no routing rule matched",
            skipped=skipped,
            pools_tried=tried,
        )
    reasons: list[str] = []
    queue = fallback
    current = pool
    while True:
        pool_fallback = await conn.fetchval(QUERIES["pool_exists"], current)
        if pool_fallback is None:
            if tried:  # a pool's fallback that is not a pool names a queue
                queue = current
            else:
                reasons.append(f"pool {current!r} does not exist")
            break
        tried.append(current)
        rows = await conn.fetch(QUERIES["pool_roster"], current)
        roster = screen([Member(r["id"], r["active"]) for r in rows])
        skipped += roster.skipped
        owner = await state.next_round_robin(current, roster)
        if owner is not None:
            return Assignment(
                owner=owner, pool=current, queue=None, reason=None, skipped=skipped, pools_tried=tried
            )
        reasons.append(
            f"pool {current!r} has no members"
            if not rows
            else f"pool {current!r} has no eligible owner ({len(rows)} skipped)"
        )
        if pool_fallback in tried or len(tried) > MAX_FALLBACK_HOPS:
            reasons.append(f"fallback chain stopped at {pool_fallback!r}")
            break
        current = pool_fallback
    return Assignment(
        owner=None, pool=pool, queue=queue, reason="; ".join(reasons), skipped=skipped, pools_tried=tried
    )
