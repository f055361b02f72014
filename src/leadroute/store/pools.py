"""Pools: the groups of owners routing rules send leads to, and the rules their graph must keep.

Every pool write goes through :func:`save_pools`, which checks members, the escalation target and
the fallback chain (no loop, at most routing's :data:`MAX_FALLBACK_HOPS`) under
:data:`POOLS_LOCK`. Functions take the connection, so the caller owns the transaction; the
``*_pool`` functions at the end are what the admin API calls (one each per route).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import msgspec

from leadroute.errors import NotFound, PoolError, UnknownOwners
from leadroute.routing.placement import MAX_FALLBACK_HOPS
from leadroute.store._fields import Id, Skill, checked, no_nul
from leadroute.store.audit import audit
from leadroute.store.db import Connection
from leadroute.store.queries import QUERIES
from leadroute.structs import Struct

__all__ = [
    "POOLS_LOCK",
    "POOL_CHECKED_FIELDS",
    "FallbackLoop",
    "FallbackTooLong",
    "Pool",
    "PoolIn",
    "PoolSettings",
    "Strategy",
    "UnknownEscalation",
    "check_escalation",
    "check_fallbacks",
    "get_pool",
    "list_pools",
    "lock_pools",
    "put_pool",
    "replace_pool",
    "save_pools",
    "update_pool",
]

Strategy = Literal["round_robin", "weighted", "least_loaded"]
POOLS_LOCK = 0x1EAD_0005
"""``pg_advisory_xact_lock`` key every pool save holds until it commits: saves apply one after the
other, so two concurrent saves (a -> b and b -> a) cannot each miss the other and close a loop."""
POOL_CHECKED_FIELDS = ("members", "escalate_to", "fallback")
"""Pool fields a save checks against the database (an import error points at them)."""


class PoolSettings(Struct, kw_only=True):
    """A pool's members (owner ids), strategy, fallback (another pool or a queue) and settings."""

    members: list[Id] = msgspec.field(default_factory=list)
    strategy: Strategy = "round_robin"
    fallback: Id = "unassigned"
    """Another pool, or the name of a queue."""
    required_skill: Skill | None = None
    allow_off_hours: bool = False
    """Members may get leads outside their working hours (still not when out of office)."""
    sla_business_hours: bool = False
    """SLA timers of this pool's leads pause outside the owner's working hours."""
    escalate_to: Id | None = None
    """Where an SLA breach escalates: an owner id or a pool id."""


class PoolIn(PoolSettings, kw_only=True):
    """A pool of owners that routing rules send leads to."""

    id: Id

    def __post_init__(self) -> None:
        no_nul(required_skill=self.required_skill)


class Pool(Struct, kw_only=True):
    """A pool as stored: its settings and its members' ids (in byte order)."""

    id: str
    strategy: Strategy
    fallback: str
    required_skill: str | None
    allow_off_hours: bool
    sla_business_hours: bool
    escalate_to: str | None
    members: list[str]


def _pool_from_row(row: Any) -> Pool:
    return Pool(**dict(row))


async def put_pool(conn: Connection, pool: PoolIn) -> None:
    """Create or update one pool and set its members exactly; every member must exist."""
    missing = [r["id"] for r in await conn.fetch(QUERIES["owners_missing"], pool.members)]
    if missing:
        raise UnknownOwners(pool.id, sorted(missing))
    await conn.execute(
        QUERIES["routing_pool_put"],
        pool.id,
        pool.strategy,
        pool.fallback,
        pool.required_skill,
        pool.allow_off_hours,
        pool.sla_business_hours,
        pool.escalate_to,
    )
    await conn.execute(QUERIES["pool_members_set"], pool.id, sorted(set(pool.members)))


class UnknownEscalation(PoolError):
    """A pool's ``escalate_to`` names neither an owner nor a pool."""

    kind = "unknown-escalation-target"
    title = "Unknown escalation target"


class FallbackLoop(PoolError):
    """A pool's fallback chain would come back to a pool already on it: no lead would reach a queue."""

    kind = "fallback-loop"
    title = "Pool fallback loops"

    def __init__(self, pool: str, chain: list[str]) -> None:
        shown = " -> ".join(chain)
        super().__init__(
            pool,
            "fallback",
            f"pool {pool!r}: fallback {chain[1]!r} makes the fallback chain loop ({shown}), so a lead "
            "nobody in these pools can take would never reach a queue; point one of them at a queue "
            "(such as unassigned) or at a pool outside the loop",
            errors=[{"field": "fallback", "message": f"the fallback chain loops: {shown}"}],
        )
        self.chain = chain


async def check_escalation(conn: Connection, pool: PoolIn) -> None:
    """``escalate_to`` must name an existing owner or pool."""
    if pool.escalate_to is None:
        return
    found = await conn.fetchval(QUERIES["routing_escalation_target_exists"], pool.escalate_to)
    if not found:
        raise UnknownEscalation(
            pool.id,
            "escalate_to",
            f"pool {pool.id!r}: escalate_to {pool.escalate_to!r} is neither an owner nor a pool",
            errors=[{"field": "escalate_to", "message": f"unknown owner or pool {pool.escalate_to!r}"}],
        )


async def lock_pools(conn: Connection) -> None:
    """Take the pools lock for the rest of the transaction (see :data:`POOLS_LOCK`)."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", POOLS_LOCK)


class FallbackTooLong(PoolError):
    """A fallback chain longer than routing follows: its last pools would never be tried."""

    kind = "fallback-too-long"
    title = "Pool fallback chain too long"

    def __init__(self, chain: list[str], saved: set[str]) -> None:
        shown = " -> ".join(chain)
        pool = next(p for p in chain if p in saved)
        super().__init__(
            pool,
            "fallback",
            f"pool {pool!r}: the fallback chain {shown} has {len(chain) - 2} hops; routing follows at "
            f"most {MAX_FALLBACK_HOPS} (after {chain[MAX_FALLBACK_HOPS]!r} a lead goes to the ruleset's "
            "queue), so shorten the chain or point a pool on it at a queue",
            errors=[{"field": "fallback", "message": f"more than {MAX_FALLBACK_HOPS} hops: {shown}"}],
        )
        self.chain = chain


async def check_fallbacks(conn: Connection, pool_ids: Sequence[str]) -> None:
    """No fallback chain starting at one of ``pool_ids`` may loop (as PostgreSQL holds them now).

    A fallback that names no pool is a queue and ends the chain. Raises :class:`FallbackLoop`
    for the first of ``pool_ids`` whose chain comes back to a pool already on it.
    """
    fallback = {r["id"]: r["fallback"] for r in await conn.fetch(QUERIES["routing_pool_fallbacks"])}
    for start in pool_ids:
        chain = [start]
        while (nxt := fallback.get(chain[-1])) is not None and nxt in fallback:
            if nxt in chain:
                raise FallbackLoop(start, [*chain, nxt])
            chain.append(nxt)
    # No loop is left, so every chain ends. One that passes through a saved pool (a save can
    # lengthen the chains of pools that fall back to it) must fit in the hops routing follows.
    saved = set(pool_ids)
    for start in fallback:
        chain = [start]
        while (nxt := fallback.get(chain[-1])) is not None and nxt in fallback:
            chain.append(nxt)
        if len(chain) > MAX_FALLBACK_HOPS + 1 and saved.intersection(chain):
            raise FallbackTooLong([*chain, fallback.get(chain[-1]) or "?"], saved)


async def save_pools(conn: Connection, pools: Sequence[PoolIn], *, created: Sequence[str] = ()) -> None:
    """Create or replace ``pools`` and check them: members exist, ``escalate_to`` names an owner or
    a pool, and no fallback chain loops. Every pool write (API and import) goes through here.

    Runs in the caller's transaction (or a transaction of its own), under :data:`POOLS_LOCK`, so
    the loop check sees every pool save committed before it and none can commit in between.
    ``created``: pools the caller created with the default settings (CSV imports), checked too.
    """
    async with conn.transaction():
        await lock_pools(conn)
        for pool in pools:
            await put_pool(conn, pool)
        for pool in pools:
            await check_escalation(conn, pool)
        await check_fallbacks(conn, [*(p.id for p in pools), *created])


# -- what the admin API calls ----------------------------------------------------------------


async def list_pools(conn: Connection) -> list[Pool]:
    """Every pool, by id, with its members' ids."""
    return [_pool_from_row(r) for r in await conn.fetch(QUERIES["routing_pool_list"], None)]


async def get_pool(conn: Connection, pool_id: str) -> Pool:
    """One pool; :class:`NotFound` when there is none with this id."""
    rows = await conn.fetch(QUERIES["routing_pool_list"], pool_id)
    if not rows:
        raise NotFound("pool", pool_id)
    return _pool_from_row(rows[0])


async def replace_pool(conn: Connection, pool_id: str, fields: Mapping[str, Any], *, actor: str) -> Pool:
    """Create the pool or replace its members and settings, checked by :func:`save_pools`; audited."""
    pool = checked(PoolIn, {**fields, "id": pool_id})
    async with conn.transaction():
        await save_pools(conn, [pool])
        await audit(conn, actor, "pool.put", f"pool:{pool_id}", {"fields": sorted(fields)})
        return await get_pool(conn, pool_id)


async def update_pool(conn: Connection, pool_id: str, changes: Mapping[str, Any], *, actor: str) -> Pool:
    """Change only the pool fields in ``changes`` (``members`` replaces the member list); audited."""
    async with conn.transaction():
        await lock_pools(conn)  # read, merge and write with no other pool save in between
        current = msgspec.to_builtins(await get_pool(conn, pool_id))
        pool = checked(PoolIn, current | dict(changes))
        await save_pools(conn, [pool])
        await audit(conn, actor, "pool.patch", f"pool:{pool_id}", {"fields": sorted(changes)})
        return await get_pool(conn, pool_id)
