"""Owners and pools: the rows routing draws from, read and written here (the owners repository).

An owner's availability is validated and normalized on the way in (``OwnerIn.__post_init__``), so
what is stored is canonical: saving the same owner twice writes the same values (and
``updated_at`` does not move). Every pool write goes through :func:`save_pools`, which checks
members, the escalation target and the fallback chain under :data:`POOLS_LOCK`.

Functions take the connection, so the caller owns the transaction; the ``*_owner`` and
``*_pool`` functions at the end are what the admin API calls (one each per route).
The owners file (YAML or CSV) is read and imported by :mod:`leadroute.store.owners_file`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

import asyncpg
import msgspec

from leadroute.errors import ClientError, NotFound, PoolError, UnknownOwners
from leadroute.models import ID_MAX_LENGTH, ID_PATTERN
from leadroute.routing.eligibility import normalize_absences, normalize_hours, valid_timezone
from leadroute.routing.placement import MAX_FALLBACK_HOPS
from leadroute.store.audit import audit
from leadroute.store.db import Connection
from leadroute.store.queries import QUERIES
from leadroute.structs import Struct

__all__ = [
    "MAX_CAPACITY",
    "POOLS_LOCK",
    "Capacity",
    "FallbackLoop",
    "FallbackTooLong",
    "Id",
    "InvalidField",
    "Owner",
    "OwnerIn",
    "Pool",
    "PoolIn",
    "Strategy",
    "UnknownEscalation",
    "check_escalation",
    "check_fallbacks",
    "get_owner",
    "get_pool",
    "list_owners",
    "list_pools",
    "lock_pools",
    "owner_from_row",
    "put_owner",
    "put_pool",
    "replace_owner",
    "replace_pool",
    "save_pools",
    "update_owner",
    "update_pool",
]

T = TypeVar("T")

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)]
"""Owner and pool ids: short, URL-safe, stable (they appear in rule files and history)."""
Skill = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Strategy = Literal["round_robin", "weighted", "least_loaded"]
MAX_CAPACITY = 1_000_000
"""The largest ``max_open`` / ``max_per_day`` (the columns are 32-bit integers)."""
POOLS_LOCK = 0x1EAD_0005
"""``pg_advisory_xact_lock`` key every pool save holds until it commits: saves apply one after the
other, so two concurrent saves (a -> b and b -> a) cannot each miss the other and close a loop."""
POOL_CHECKED_FIELDS = ("members", "escalate_to", "fallback")
"""Pool fields a save checks against the database (an import error points at them)."""


class Capacity(Struct, kw_only=True):
    """How much an owner takes: open leads at once, and new leads per day (their timezone)."""

    max_open: Annotated[int, msgspec.Meta(ge=0, le=MAX_CAPACITY)] | None = None
    max_per_day: Annotated[int, msgspec.Meta(ge=0, le=MAX_CAPACITY)] | None = None


class OwnerIn(Struct, kw_only=True):
    """An owner (sales rep) as an admin or an owners file describes it; validated and normalized."""

    id: Id
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    email: Annotated[str, msgspec.Meta(max_length=320)] | None = None
    active: bool = True
    timezone: str = "UTC"
    working_hours: dict[str, Any] | None = None
    """``{"mon-fri": "09:00-18:00", "sat": "10:00-14:00"}``; absent: always available."""
    out_of_office: list[dict[str, Any]] = msgspec.field(default_factory=list)
    """``[{"from": "2026-12-24", "to": "2027-01-02"}]``: dates (whole days) or datetimes."""
    capacity: Capacity | None = None
    weight: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 1
    skills: list[Skill] = msgspec.field(default_factory=list)
    crm_user_id: Annotated[str, msgspec.Meta(max_length=255)] | None = None

    def __post_init__(self) -> None:
        # ValueError here becomes a msgspec.ValidationError naming the problem.
        _no_nul(name=self.name, email=self.email, crm_user_id=self.crm_user_id, skills=self.skills)
        valid_timezone(self.timezone)
        self.working_hours = normalize_hours(self.working_hours)
        self.out_of_office = list(normalize_absences(self.out_of_office))
        self.skills = sorted(set(self.skills))
        if self.capacity is not None and self.capacity == Capacity():
            self.capacity = None


class PoolIn(Struct, kw_only=True):
    """A pool of owners that routing rules send leads to."""

    id: Id
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

    def __post_init__(self) -> None:
        _no_nul(required_skill=self.required_skill)


def _no_nul(**fields: str | list[str] | None) -> None:
    """PostgreSQL text cannot hold NUL (U+0000): refuse it by field name, not as a driver error."""
    for name, value in fields.items():
        values = value if isinstance(value, list) else [value]
        if any(v is not None and "\x00" in v for v in values):
            raise ValueError(f"{name}: text may not contain the NUL character (U+0000)")


class Owner(Struct, kw_only=True):
    """An owner as stored (and as the admin API shows it): the fields of :class:`OwnerIn`, normalized,
    with when it was created and last changed."""

    id: str
    name: str
    email: str | None
    active: bool
    timezone: str
    working_hours: dict[str, list[str]] | None
    """Normalized: weekday → ``["HH:MM-HH:MM", ...]``; null: always available."""
    out_of_office: list[dict[str, str]]
    """Normalized ``{"from", "to"}`` ISO dates (whole days, inclusive) or datetimes."""
    capacity: Capacity | None
    weight: int
    skills: list[str]
    crm_user_id: str | None
    created_at: datetime
    updated_at: datetime


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


class InvalidField(ClientError):
    """An owner or pool field is malformed (unknown timezone, bad working hours, ...)."""

    status = 422
    kind = "invalid-field"
    title = "Invalid field"


def owner_from_row(row: Any) -> Owner:
    """An ``owners`` row as the API shows it (the same shape an owners file uses)."""
    capacity = None
    if row["max_open"] is not None or row["max_per_day"] is not None:
        capacity = Capacity(max_open=row["max_open"], max_per_day=row["max_per_day"])
    return Owner(
        id=row["id"],
        name=row["name"],
        email=row["email"],
        active=row["active"],
        timezone=row["timezone"],
        working_hours=row["working_hours"],
        out_of_office=row["out_of_office"],
        capacity=capacity,
        weight=row["weight"],
        skills=list(row["skills"]),
        crm_user_id=row["crm_user_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _pool_from_row(row: Any) -> Pool:
    return Pool(**dict(row))


def _checked(kind: type[T], data: Mapping[str, Any]) -> T:
    """Validate merged fields; a bad one is a 422 naming it (timezone, working hours, ...)."""
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as exc:
        text = str(exc)
        field = text.rpartition("$.")[2].rstrip("`").split("[")[0].split(".")[0] if "$." in text else "body"
        named = text.partition(":")[0]
        if field == "body" and named in kind.__struct_fields__:  # type: ignore[attr-defined]
            field = named
        if field == "body":
            for name in ("timezone", "working_hours", "out_of_office", "id"):
                if name in text:
                    field = name
                    break
        raise InvalidField(text, errors=[{"field": field, "message": text}]) from None


async def put_owner(conn: Connection, owner: OwnerIn) -> asyncpg.Record:
    """Create or replace one owner (every field); returns the row."""
    cap = owner.capacity or Capacity()
    row = await conn.fetchrow(
        QUERIES["routing_owner_put"],
        owner.id,
        owner.name,
        owner.email,
        owner.active,
        owner.timezone,
        owner.working_hours,
        owner.out_of_office,
        cap.max_open,
        cap.max_per_day,
        owner.weight,
        owner.skills,
        owner.crm_user_id,
    )
    assert row is not None
    return row


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


async def list_owners(conn: Connection) -> list[Owner]:
    """Every owner, by id (byte order)."""
    return [owner_from_row(r) for r in await conn.fetch(QUERIES["routing_owner_list"])]


async def get_owner(conn: Connection, owner_id: str) -> Owner:
    """One owner; :class:`NotFound` when there is none with this id."""
    row = await conn.fetchrow(QUERIES["routing_owner_get"], owner_id)
    if row is None:
        raise NotFound("owner", owner_id)
    return owner_from_row(row)


async def replace_owner(conn: Connection, owner_id: str, fields: Mapping[str, Any], *, actor: str) -> Owner:
    """Create the owner or replace every field (absent ones take their defaults); audited."""
    owner = _checked(OwnerIn, {**fields, "id": owner_id})
    async with conn.transaction():
        await audit(conn, actor, "owner.put", f"owner:{owner_id}", {"fields": sorted(fields)})
        return owner_from_row(await put_owner(conn, owner))


async def update_owner(conn: Connection, owner_id: str, changes: Mapping[str, Any], *, actor: str) -> Owner:
    """Change only the fields in ``changes`` (read, merged and written under a row lock); audited."""
    async with conn.transaction():
        row = await conn.fetchrow(QUERIES["routing_owner_lock"], owner_id)
        if row is None:
            raise NotFound("owner", owner_id)
        await audit(conn, actor, "owner.patch", f"owner:{owner_id}", {"fields": sorted(changes)})
        shown = msgspec.to_builtins(owner_from_row(row))
        current = {k: v for k, v in shown.items() if k not in {"created_at", "updated_at"}}
        owner = _checked(OwnerIn, current | dict(changes))
        return owner_from_row(await put_owner(conn, owner))


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
    pool = _checked(PoolIn, {**fields, "id": pool_id})
    async with conn.transaction():
        await save_pools(conn, [pool])
        await audit(conn, actor, "pool.put", f"pool:{pool_id}", {"fields": sorted(fields)})
        return await get_pool(conn, pool_id)


async def update_pool(conn: Connection, pool_id: str, changes: Mapping[str, Any], *, actor: str) -> Pool:
    """Change only the pool fields in ``changes`` (``members`` replaces the member list); audited."""
    async with conn.transaction():
        await lock_pools(conn)  # read, merge and write with no other pool save in between
        current = msgspec.to_builtins(await get_pool(conn, pool_id))
        pool = _checked(PoolIn, current | dict(changes))
        await save_pools(conn, [pool])
        await audit(conn, actor, "pool.patch", f"pool:{pool_id}", {"fields": sorted(changes)})
        return await get_pool(conn, pool_id)
