"""Reconcile the Redis routing counts with PostgreSQL, the record: periodically and after a crash.

Redis counts can drift from what PostgreSQL implies, always by a lead or two and always upwards:
a worker killed between its Redis claim and its commit leaves a claimed slot that PostgreSQL
rolled back; a worker killed after committing a close but before its Redis release leaves a slot
held; a daily count is not given back when a claim's transaction fails; a Redis command retried
after a lost reply can count twice. Each keeps an owner below capacity until corrected.

:func:`reconcile` compares the open and today's daily counts with :func:`snapshot_from_pg` under
:data:`ROUTING_LOCK` held exclusively (so no claim is half done while it compares) and, if they
differ, rewrites the state from PostgreSQL exactly as a rebuild does (a new generation, so a
release prepared before it does not apply twice), logging the size of the drift.

:func:`reconciler` runs it in an instance's background:

- every ``LEADROUTE_RECONCILE_MINUTES``, in one instance of the fleet: the one that gets
  :data:`RECONCILE_LOCK` (``pg_try_advisory_lock``) and finds the period's marker key unset;
- soon after the instance starts (a restart is often a crash's aftermath), when periodic;
- on ``SIGUSR1``: the supervisor (:mod:`leadroute.server`) sends it to a surviving worker when
  another worker died.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from leadroute.routing.assign import Router
from leadroute.routing.rebuild import REBUILD_LOCK_TIMEOUT, ROUTING_LOCK, snapshot_from_pg
from leadroute.routing.state import RoutingState, Snapshot
from leadroute.store import locks
from leadroute.store.db import Connection, connect
from leadroute.store.queries import QUERIES
from leadroute.structs import Struct

__all__ = ["RECONCILE_LOCK", "RECONCILE_SIGNAL", "Drift", "reconcile", "reconciler"]

log = logging.getLogger("leadroute.routing.reconcile")

RECONCILE_LOCK = 0x1EAD_0005
"""Advisory lock key held (session, try-lock) by the instance reconciling: one at a time."""
RECONCILE_SIGNAL = signal.SIGUSR1
"""What the supervisor sends a worker to reconcile now."""
FIRST_DELAY = 10.0
"""Seconds after start before the first (periodic) reconcile: let start-up traffic settle."""


class Drift(Struct, kw_only=True):
    """Redis minus PostgreSQL, per owner, where they differ (empty: no drift)."""

    open: dict[str, int]
    daily: dict[str, int]

    @property
    def size(self) -> int:
        """Leads counted in Redis but not in PostgreSQL, or the other way round, in all."""
        return sum(abs(n) for n in (*self.open.values(), *self.daily.values()))


def _diff(redis: Snapshot, pg: Snapshot, today: dict[str, str]) -> Drift:
    opened = {
        owner: n
        for owner in redis.open.keys() | pg.open.keys()
        if (n := redis.open.get(owner, 0) - pg.open.get(owner, 0))
    }
    daily: dict[str, int] = {}
    for owner in redis.daily.keys() | pg.daily.keys():
        # a Redis count for another day is yesterday's, reset by the next claim: it counts as 0
        counted = redis.daily.get(owner, 0) if redis.day.get(owner) == today.get(owner) else 0
        if n := counted - pg.daily.get(owner, 0):
            daily[owner] = n
    return Drift(open=opened, daily=daily)


async def reconcile(state: RoutingState, conn: Connection, *, at: datetime) -> Drift | None:
    """Correct the Redis counts from PostgreSQL if they drifted; the drift (None: no state yet).

    ``conn`` must not be inside a transaction holding the routing lock shared (as for a rebuild).
    """
    async with locks.exclusive(conn, ROUTING_LOCK, wait=REBUILD_LOCK_TIMEOUT):
        if not await state.present():
            return None  # lost: the next claim rebuilds it whole
        current = await state.read()
        snap = await snapshot_from_pg(conn, at)
        today = {r["owner_id"]: r["day"] for r in await conn.fetch(QUERIES["reconcile_owner_days"], at)}
        drift = _diff(current, snap, today)
        if drift.size:
            await state.write(snap, secrets.token_hex(8))
            log.warning(
                "routing counts drifted from PostgreSQL by %d lead(s) (Redis minus PostgreSQL: open %s, "
                "today %s); corrected from PostgreSQL",
                drift.size,
                drift.open or "{}",
                drift.daily or "{}",
            )
        else:
            log.info("routing counts match PostgreSQL (%d owners with open leads)", len(snap.open))
        return drift


async def reconcile_once(
    router: Router, database_url: str, now: Callable[[], datetime], *, periodic_seconds: float | None
) -> Drift | None:
    """One reconcile in this instance, unless another holds :data:`RECONCILE_LOCK`.

    ``periodic_seconds``: a periodic run, skipped when another instance did one within that time.
    """
    conn = await connect(database_url, timeout=5)
    try:
        if not await locks.try_session_lock(conn, RECONCILE_LOCK):
            log.debug("another instance is reconciling the routing counts")
            return None
        try:
            keys = router.state.keys
            if periodic_seconds is not None and not await router.state.redis.set(
                keys.reconciled, "1", nx=True, ex=max(1, int(periodic_seconds * 0.9))
            ):
                return None  # done this period by another instance
            return await reconcile(router.state, conn, at=now())
        finally:
            await locks.unlock(conn, RECONCILE_LOCK)
    finally:
        await conn.close()


@asynccontextmanager
async def reconciler(
    router: Router, database_url: str, now: Callable[[], datetime], *, every_minutes: float
) -> AsyncIterator[asyncio.Event]:
    """Reconcile in the background while the context is open; yields the event that asks for one now.

    ``every_minutes`` 0: only when asked (the event, or :data:`RECONCILE_SIGNAL`).
    """
    wake = asyncio.Event()
    period = every_minutes * 60 or None
    loop = asyncio.get_running_loop()
    handled = False
    with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):  # not the main thread
        loop.add_signal_handler(RECONCILE_SIGNAL, wake.set)
        handled = True

    async def run() -> None:
        delay = FIRST_DELAY if period else None
        while True:
            asked = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=delay)
                asked = True
            wake.clear()
            try:
                await reconcile_once(router, database_url, now, periodic_seconds=None if asked else period)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "reconciling the routing counts failed (%s); trying again later", type(exc).__name__
                )
            # jitter: instances started together do not all try at the same instant
            delay = period * random.uniform(0.9, 1.1) if period else None

    task = asyncio.create_task(run(), name="routing-reconcile")
    try:
        yield wake
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if handled:
            loop.remove_signal_handler(RECONCILE_SIGNAL)
            signal.signal(RECONCILE_SIGNAL, signal.SIG_IGN)  # a late signal must not kill the process
