"""Owners (sales reps): the rows routing draws from, read and written here (the owners repository).

An owner's availability is validated and normalized on the way in (``OwnerIn.__post_init__``), so
what is stored is canonical: saving the same owner twice writes the same values (and
``updated_at`` does not move). Functions take the connection, so the caller owns the
transaction; the ``*_owner`` functions at the end are what the admin API calls (one per route).

Pools live in :mod:`leadroute.store.pools` (their graph rules are another idea); this module
re-exports the pool names the admin API and older callers import from here. The owners file
(YAML or CSV) is read and imported by :mod:`leadroute.store.owners_file`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

import asyncpg
import msgspec

from leadroute.errors import NotFound
from leadroute.routing.eligibility import normalize_absences, normalize_hours, valid_timezone
from leadroute.store._fields import Id, InvalidField, Skill, checked, no_nul
from leadroute.store.audit import audit
from leadroute.store.db import Connection
from leadroute.store.pools import (
    POOL_CHECKED_FIELDS,
    POOLS_LOCK,
    FallbackLoop,
    FallbackTooLong,
    Pool,
    PoolIn,
    Strategy,
    UnknownEscalation,
    check_escalation,
    check_fallbacks,
    get_pool,
    list_pools,
    lock_pools,
    put_pool,
    replace_pool,
    save_pools,
    update_pool,
)
from leadroute.store.queries import QUERIES
from leadroute.structs import Struct

__all__ = [  # the pool names are re-exports of leadroute.store.pools
    "MAX_CAPACITY",
    "POOLS_LOCK",
    "POOL_CHECKED_FIELDS",
    "Capacity",
    "FallbackLoop",
    "FallbackTooLong",
    "Id",
    "InvalidField",
    "Owner",
    "OwnerIn",
    "Pool",
    "PoolIn",
    "SlackUserId",
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

SlackUserId = Annotated[str, msgspec.Meta(pattern=r"^[UW][A-Z0-9]{2,31}$")]
"""A Slack member id (Profile → ⋮ → Copy member ID): ``U`` or ``W`` and capital letters or digits."""

MAX_CAPACITY = 1_000_000
"""The largest ``max_open`` / ``max_per_day`` (the columns are 32-bit integers)."""


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
    slack_user_id: SlackUserId | None = None
    """The rep's Slack member id (``U…`` or ``W…``): Slack alerts mention them (``<@U…>``)."""

    def __post_init__(self) -> None:
        # ValueError here becomes a msgspec.ValidationError naming the problem.
        no_nul(name=self.name, email=self.email, crm_user_id=self.crm_user_id, skills=self.skills)
        valid_timezone(self.timezone)
        self.working_hours = normalize_hours(self.working_hours)
        self.out_of_office = list(normalize_absences(self.out_of_office))
        self.skills = sorted(set(self.skills))
        if self.capacity is not None and self.capacity == Capacity():
            self.capacity = None


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
    slack_user_id: str | None
    created_at: datetime
    updated_at: datetime


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
        slack_user_id=row["slack_user_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


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
        owner.slack_user_id,
    )
    assert row is not None
    return row


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
    owner = checked(OwnerIn, {**fields, "id": owner_id})
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
        owner = checked(OwnerIn, current | dict(changes))
        return owner_from_row(await put_owner(conn, owner))
