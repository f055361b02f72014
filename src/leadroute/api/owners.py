"""Admin: owners (sales reps), pools, and routing state. Writes are idempotent PUTs or PATCHes.

Owners: ``PUT`` creates or replaces, ``PATCH`` changes the fields sent (``{"active": false}``
deactivates), ``PUT .../working-hours`` and ``PUT .../out-of-office`` set availability.
Pools: ``PUT`` creates or replaces, ``PATCH`` changes the fields sent; both go through
``store.owners.save_pools`` (members exist, ``escalate_to`` names something, no fallback loop).
Routing: ``GET /v1/routing/state`` shows the Redis counters, ``POST /v1/routing/rebuild`` rebuilds
them from PostgreSQL.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import asyncpg
import msgspec
from litestar import Controller, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from leadroute.errors import ClientError, NotFound
from leadroute.runtime import Runtime
from leadroute.store.db import Connection
from leadroute.store.owners import (
    Capacity,
    Id,
    OwnerIn,
    PoolIn,
    Strategy,
    lock_pools,
    owner_from_row,
    put_owner,
    save_pools,
)
from leadroute.store.queries import QUERIES

__all__ = ["OwnerController", "PoolController", "RoutingController"]

T = TypeVar("T")
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
Email = Annotated[str, msgspec.Meta(max_length=320)]
Skill = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Weight = Annotated[int, msgspec.Meta(ge=1, le=1000)]
_UNSET = msgspec.UNSET


class OwnerBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """An owner's fields; the id is in the path. Absent fields take their defaults."""

    name: Name
    email: Email | None = None
    active: bool = True
    timezone: str = "UTC"
    working_hours: dict[str, Any] | None = None
    out_of_office: list[dict[str, Any]] = msgspec.field(default_factory=list)
    capacity: Capacity | None = None
    weight: Weight = 1
    skills: list[Skill] = msgspec.field(default_factory=list)
    crm_user_id: str | None = None


class OwnerPatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The fields to change; absent ones keep their value (``null`` clears an optional one)."""

    name: Name | msgspec.UnsetType = _UNSET
    email: Email | msgspec.UnsetType | None = _UNSET
    active: bool | msgspec.UnsetType = _UNSET
    timezone: str | msgspec.UnsetType = _UNSET
    working_hours: dict[str, Any] | msgspec.UnsetType | None = _UNSET
    out_of_office: list[dict[str, Any]] | msgspec.UnsetType = _UNSET
    capacity: Capacity | msgspec.UnsetType | None = _UNSET
    weight: Weight | msgspec.UnsetType = _UNSET
    skills: list[Skill] | msgspec.UnsetType = _UNSET
    crm_user_id: str | msgspec.UnsetType | None = _UNSET


class WorkingHoursBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``{"working_hours": {"mon-fri": "09:00-18:00"}}``; ``null``: always available."""

    working_hours: dict[str, Any] | None


class OutOfOfficeBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``{"out_of_office": [{"from": "2026-12-24", "to": "2027-01-02"}]}`` replaces the list."""

    out_of_office: list[dict[str, Any]]


class PoolBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A pool's members (owner ids), strategy, fallback (another pool or a queue) and settings."""

    members: list[Id] = msgspec.field(default_factory=list)
    strategy: Strategy = "round_robin"
    fallback: Id = "unassigned"
    required_skill: Skill | None = None
    allow_off_hours: bool = False
    sla_business_hours: bool = False
    escalate_to: Id | None = None


class PoolPatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The pool fields to change; absent ones keep their value."""

    members: list[Id] | msgspec.UnsetType = _UNSET
    strategy: Strategy | msgspec.UnsetType = _UNSET
    fallback: Id | msgspec.UnsetType = _UNSET
    required_skill: Skill | msgspec.UnsetType | None = _UNSET
    allow_off_hours: bool | msgspec.UnsetType = _UNSET
    sla_business_hours: bool | msgspec.UnsetType = _UNSET
    escalate_to: Id | msgspec.UnsetType | None = _UNSET


class InvalidField(ClientError):
    """An owner or pool field is malformed (unknown timezone, bad working hours, ...)."""

    status = 422
    kind = "invalid-field"
    title = "Invalid field"


def _convert(kind: type[T], data: dict[str, Any]) -> T:
    """Validate merged fields; a bad one is a 422 naming it (timezone, working hours, ...)."""
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as exc:
        text = str(exc)
        field = text.rpartition("$.")[2].rstrip("`").split("[")[0].split(".")[0] if "$." in text else "body"
        if field == "body":
            for name in ("timezone", "working_hours", "out_of_office", "id"):
                if name in text:
                    field = name
                    break
        raise InvalidField(text, errors=[{"field": field, "message": text}]) from None


def _set(data: msgspec.Struct) -> dict[str, Any]:
    """The fields a patch body sets (UNSET ones left out)."""
    return {f: getattr(data, f) for f in data.__struct_fields__ if getattr(data, f) is not msgspec.UNSET}


def _owner_fields(row: Any) -> dict[str, Any]:
    shown = owner_from_row(row)
    return {k: v for k, v in shown.items() if k not in {"created_at", "updated_at"}}


def _pool(row: Any) -> dict[str, Any]:
    return dict(row)


class OwnerController(Controller):
    path = "/v1/owners"
    tags = ["admin"]  # noqa: RUF012

    @get("/", summary="List owners")
    async def list_owners(self, rt: NamedDependency[Runtime]) -> list[dict[str, Any]]:
        """Every owner, by id, with availability, capacity, weight and skills."""
        return [owner_from_row(r) for r in await rt.db.fetch(QUERIES["routing_owner_list"])]

    @get("/{owner_id:str}", summary="One owner")
    async def get_owner(self, rt: NamedDependency[Runtime], owner_id: FromPath[str]) -> dict[str, Any]:
        """One owner by id."""
        row = await rt.db.fetchrow(QUERIES["routing_owner_get"], owner_id)
        if row is None:
            raise NotFound("owner", owner_id)
        return owner_from_row(row)

    @put("/{owner_id:str}", summary="Create or replace an owner")
    async def put_owner(
        self, rt: NamedDependency[Runtime], owner_id: FromPath[str], data: JSONBody[OwnerBody]
    ) -> dict[str, Any]:
        """Create the owner, or replace its fields; sending the same body twice changes nothing."""
        owner = _convert(OwnerIn, {"id": owner_id, **msgspec.to_builtins(data)})
        async with rt.db.acquire() as conn:
            return owner_from_row(await put_owner(conn, owner))

    @patch("/{owner_id:str}", summary="Change some fields of an owner (e.g. deactivate)")
    async def patch_owner(
        self, rt: NamedDependency[Runtime], owner_id: FromPath[str], data: JSONBody[OwnerPatch]
    ) -> dict[str, Any]:
        """Change only the given fields; ``{"active": false}`` takes the owner out of routing."""
        return await _update_owner(rt, owner_id, msgspec.to_builtins(_set(data)))

    @put("/{owner_id:str}/working-hours", summary="Set an owner's working hours")
    async def put_hours(
        self, rt: NamedDependency[Runtime], owner_id: FromPath[str], data: JSONBody[WorkingHoursBody]
    ) -> dict[str, Any]:
        """Weekday spans in the owner's timezone (``{"mon-fri": "09:00-18:00"}``); null: always."""
        return await _update_owner(rt, owner_id, {"working_hours": data.working_hours})

    @put("/{owner_id:str}/out-of-office", summary="Set an owner's out-of-office ranges")
    async def put_out_of_office(
        self, rt: NamedDependency[Runtime], owner_id: FromPath[str], data: JSONBody[OutOfOfficeBody]
    ) -> dict[str, Any]:
        """Replace the ranges: dates (whole days in the owner's timezone) or datetimes; [] clears."""
        return await _update_owner(rt, owner_id, {"out_of_office": data.out_of_office})


async def _update_owner(rt: Runtime, owner_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    async with rt.db.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(QUERIES["routing_owner_lock"], owner_id)
        if row is None:
            raise NotFound("owner", owner_id)
        owner = _convert(OwnerIn, _owner_fields(row) | changes)
        return owner_from_row(await put_owner(conn, owner))


class PoolController(Controller):
    path = "/v1/pools"
    tags = ["admin"]  # noqa: RUF012

    @get("/", summary="List pools with their members and settings")
    async def list_pools(self, rt: NamedDependency[Runtime]) -> list[dict[str, Any]]:
        """Every pool, by id, with its members' ids."""
        return [_pool(r) for r in await rt.db.fetch(QUERIES["routing_pool_list"], None)]

    @get("/{pool_id:str}", summary="One pool")
    async def get_pool(self, rt: NamedDependency[Runtime], pool_id: FromPath[str]) -> dict[str, Any]:
        """One pool with its members' ids and settings."""
        rows = await rt.db.fetch(QUERIES["routing_pool_list"], pool_id)
        if not rows:
            raise NotFound("pool", pool_id)
        return _pool(rows[0])

    @put("/{pool_id:str}", summary="Create or replace a pool")
    async def put_pool(
        self, rt: NamedDependency[Runtime], pool_id: FromPath[str], data: JSONBody[PoolBody]
    ) -> dict[str, Any]:
        """Create the pool or replace its members and settings; members must exist, and the
        fallback chain may not loop (422 naming ``fallback`` and the loop)."""
        pool = _convert(PoolIn, {"id": pool_id, **msgspec.to_builtins(data)})
        async with rt.db.acquire() as conn, conn.transaction():
            await lock_pools(conn)
            return await _save_pool(conn, pool)

    @patch("/{pool_id:str}", summary="Change some fields of a pool")
    async def patch_pool(
        self, rt: NamedDependency[Runtime], pool_id: FromPath[str], data: JSONBody[PoolPatch]
    ) -> dict[str, Any]:
        """Change only the given fields (``members`` replaces the member list)."""
        async with rt.db.acquire() as conn, conn.transaction():
            await lock_pools(conn)  # read, merge and write with no other pool save in between
            rows = await conn.fetch(QUERIES["routing_pool_list"], pool_id)
            if not rows:
                raise NotFound("pool", pool_id)
            pool = _convert(PoolIn, dict(rows[0]) | msgspec.to_builtins(_set(data)))
            return await _save_pool(conn, pool)


async def _save_pool(conn: Connection, pool: PoolIn) -> dict[str, Any]:
    await save_pools(conn, [pool])
    rows = await conn.fetch(QUERIES["routing_pool_list"], pool.id)
    return _pool(rows[0])


class RoutingController(Controller):
    path = "/v1/routing"
    tags = ["admin"]  # noqa: RUF012

    @get("/state", summary="Routing state: open and daily counts, cursors, account owners")
    async def state(self, rt: NamedDependency[Runtime]) -> dict[str, Any]:
        """What Redis holds now (counts of zero are left out)."""
        snap = await rt.routing.state.read()
        return {"present": await rt.routing.state.present(), **msgspec.to_builtins(snap)}

    @post("/rebuild", summary="Rebuild the routing state from PostgreSQL", status_code=200)
    async def rebuild(self, rt: NamedDependency[Runtime]) -> dict[str, Any]:
        """Replace the Redis counters with what PostgreSQL records (waits for in-flight claims)."""
        assert rt.settings.database_url is not None
        conn = await asyncpg.connect(rt.settings.database_url)
        try:
            await rt.routing.rebuild(conn)
        finally:
            await conn.close()
        return {"rebuilt": True, **msgspec.to_builtins(await rt.routing.state.read())}
