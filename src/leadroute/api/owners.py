"""Admin: owners (sales reps) and pools. Writes are idempotent PUTs, so retries are safe."""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

import msgspec
from litestar import Controller, get, patch, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from leadroute.errors import ClientError, NotFound
from leadroute.runtime import Runtime
from leadroute.store.owners import Id, OwnerIn, PoolIn, put_owner, put_pool
from leadroute.store.queries import QUERIES

__all__ = ["OwnerController", "PoolController"]

T = TypeVar("T")
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]


class OwnerBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """An owner's fields; the id is in the path."""

    name: Name
    email: Annotated[str, msgspec.Meta(max_length=320)] | None = None
    active: bool = True


class OwnerPatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The fields to change; absent ones keep their value."""

    name: Name | None = None
    email: Annotated[str, msgspec.Meta(max_length=320)] | None = None
    active: bool | None = None


class PoolBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A pool's members (owner ids), strategy and fallback (another pool or a queue name)."""

    members: list[Id] = msgspec.field(default_factory=list)
    strategy: Literal["round_robin"] = "round_robin"
    fallback: Id = "unassigned"


def _with_id(kind: type[T], ident: str, data: msgspec.Struct) -> T:
    """Merge the path's id into the body; an id that breaks the id rules is a 422 naming it."""
    try:
        return msgspec.convert({"id": ident, **msgspec.to_builtins(data)}, kind)
    except msgspec.ValidationError as exc:
        raise ClientError(str(exc), errors=[{"field": "id", "message": str(exc)}]) from None


def _owner(row: Any) -> dict[str, Any]:
    return {k: row[k] for k in ("id", "name", "email", "active", "created_at", "updated_at")}


class OwnerController(Controller):
    path = "/v1/owners"
    tags = ["admin"]  # noqa: RUF012

    @get("/", summary="List owners")
    async def list_owners(self, rt: NamedDependency[Runtime]) -> list[dict[str, Any]]:
        """Every owner, by id."""
        return [_owner(r) for r in await rt.db.fetch(QUERIES["owner_list"])]

    @get("/{owner_id:str}", summary="One owner")
    async def get_owner(self, rt: NamedDependency[Runtime], owner_id: FromPath[str]) -> dict[str, Any]:
        """One owner by id."""
        row = await rt.db.fetchrow(QUERIES["owner_get"], owner_id)
        if row is None:
            raise NotFound("owner", owner_id)
        return _owner(row)

    @put("/{owner_id:str}", summary="Create or replace an owner")
    async def put_owner(
        self, rt: NamedDependency[Runtime], owner_id: FromPath[str], data: JSONBody[OwnerBody]
    ) -> dict[str, Any]:
        """Create the owner, or replace its fields; sending the same body twice changes nothing."""
        owner = _with_id(OwnerIn, owner_id, data)
        async with rt.db.acquire() as conn:
            return _owner(await put_owner(conn, owner))

    @patch("/{owner_id:str}", summary="Change some fields of an owner (e.g. deactivate)")
    async def patch_owner(
        self, rt: NamedDependency[Runtime], owner_id: FromPath[str], data: JSONBody[OwnerPatch]
    ) -> dict[str, Any]:
        """Change only the given fields; ``{"active": false}`` takes the owner out of routing."""
        row = await rt.db.fetchrow(QUERIES["owner_update"], owner_id, data.name, data.email, data.active)
        if row is None:
            raise NotFound("owner", owner_id)
        return _owner(row)


class PoolController(Controller):
    path = "/v1/pools"
    tags = ["admin"]  # noqa: RUF012

    @get("/", summary="List pools with their members")
    async def list_pools(self, rt: NamedDependency[Runtime]) -> list[dict[str, Any]]:
        """Every pool, by id, with its members' ids."""
        return [dict(r) for r in await rt.db.fetch(QUERIES["pool_list"], None)]

    @get("/{pool_id:str}", summary="One pool")
    async def get_pool(self, rt: NamedDependency[Runtime], pool_id: FromPath[str]) -> dict[str, Any]:
        """One pool with its members' ids."""
        rows = await rt.db.fetch(QUERIES["pool_list"], pool_id)
        if not rows:
            raise NotFound("pool", pool_id)
        return dict(rows[0])

    @put("/{pool_id:str}", summary="Create or replace a pool")
    async def put_pool(
        self, rt: NamedDependency[Runtime], pool_id: FromPath[str], data: JSONBody[PoolBody]
    ) -> dict[str, Any]:
        """Create the pool or replace its members, strategy and fallback; members must exist."""
        pool = _with_id(PoolIn, pool_id, data)
        async with rt.db.acquire() as conn, conn.transaction():
            await put_pool(conn, pool)
            rows = await conn.fetch(QUERIES["pool_list"], pool_id)
        return dict(rows[0])
