"""Rebuilding the Redis routing state from PostgreSQL, the record.

PostgreSQL holds every assignment, so the Redis state (counts, cursors, the account map) can
always be recomputed: :func:`snapshot_from_pg` says what it should be at an instant, and
:func:`rebuild` replaces Redis with it under :data:`ROUTING_LOCK` held exclusively. Claims hold
that lock *shared* until their transaction ends (``Router.assign``, ``Router.prepare_release``),
so a rebuild waits for every claim already made in Redis and counts exactly what PostgreSQL has.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime

from leadroute.routing.eligibility import Member, local_day
from leadroute.routing.state import RoutingState, Snapshot
from leadroute.store import locks
from leadroute.store.db import Connection
from leadroute.store.queries import QUERIES

__all__ = ["REBUILD_LOCK_TIMEOUT", "ROUTING_LOCK", "rebuild", "snapshot_from_pg"]

log = logging.getLogger("leadroute.routing.assign")  # the name operators' log filters know

ROUTING_LOCK = 0x1EAD_0004
"""Advisory lock key: claims hold it shared (per transaction), a rebuild holds it exclusively."""

REBUILD_LOCK_TIMEOUT = "30s"


async def snapshot_from_pg(conn: Connection, now: datetime) -> Snapshot:
    """The routing state PostgreSQL implies at ``now`` (what a rebuild writes to Redis)."""
    snap = Snapshot()
    snap.open = {r["owner_id"]: int(r["n"]) for r in await conn.fetch(QUERIES["rebuild_open"])}
    for r in await conn.fetch(QUERIES["rebuild_daily"], now):
        snap.daily[r["owner_id"]] = int(r["n"])
        snap.day[r["owner_id"]] = local_day(Member(id=r["owner_id"], timezone=r["timezone"]), now)
    snap.last = {r["owner_id"]: int(r["seq"]) for r in await conn.fetch(QUERIES["rebuild_last"])}
    snap.seq = max(snap.last.values(), default=0)
    snap.rr = {r["pool_id"]: r["owner_id"] for r in await conn.fetch(QUERIES["rebuild_cursors"])}
    snap.account = {r["company_domain"]: r["owner_id"] for r in await conn.fetch(QUERIES["rebuild_accounts"])}
    return snap


async def rebuild(
    state: RoutingState, conn: Connection, *, at: datetime, only_if_lost: bool, log_level: int
) -> bool:
    """Replace ``state`` with what PostgreSQL holds at ``at``; returns whether it rebuilt.

    Takes :data:`ROUTING_LOCK` exclusively (waiting for in-flight claims to commit), so only one
    instance rebuilds; with ``only_if_lost`` it does nothing when another instance has rebuilt
    meanwhile. ``conn`` must not be inside a transaction that holds the lock shared.
    """
    async with locks.exclusive(conn, ROUTING_LOCK, wait=REBUILD_LOCK_TIMEOUT):
        if only_if_lost and await state.present():
            return False
        snap = await snapshot_from_pg(conn, at)
        await state.write(snap, secrets.token_hex(8))
        log.log(
            log_level,
            "routing state rebuilt from PostgreSQL: %d owners with open leads, %d cursors, %d accounts",
            len(snap.open),
            len(snap.rr),
            len(snap.account),
        )
        return True
