"""Owners and pools: the rows routing draws from, and the owners-file import."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import asyncpg
import msgspec
import yaml

from leadroute.errors import OwnersFileError, UnknownOwners
from leadroute.store.db import Connection
from leadroute.store.queries import QUERIES

__all__ = [
    "OwnerIn",
    "OwnersFile",
    "PoolIn",
    "import_owners",
    "load_owners_file",
    "put_owner",
    "put_pool",
]

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")]
"""Owner and pool ids: short, URL-safe, stable (they appear in rule files and history)."""


class _Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Owners files are edited by hand: an unknown key is a typo, so it is an error."""


class OwnerIn(_Strict):
    """An owner (sales rep) as an admin or an owners file describes it."""

    id: Id
    name: str
    email: str | None = None
    active: bool = True


class PoolIn(_Strict):
    """A pool of owners that routing rules send leads to."""

    id: Id
    members: list[Id] = msgspec.field(default_factory=list)
    strategy: Literal["round_robin"] = "round_robin"
    fallback: str = "unassigned"


class OwnersFile(_Strict):
    """The owners file: owners first, then pools naming them."""

    owners: list[OwnerIn] = msgspec.field(default_factory=list)
    pools: list[PoolIn] = msgspec.field(default_factory=list)


def load_owners_file(path: Path) -> OwnersFile:
    """Read a YAML owners file; errors name the file and the offending entry."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise OwnersFileError(f"{path}: {exc}") from None
    try:
        parsed = msgspec.convert(raw or {}, OwnersFile)
    except msgspec.ValidationError as exc:
        raise OwnersFileError(f"{path}: {exc}") from None
    return parsed


async def put_owner(conn: Connection, owner: OwnerIn) -> asyncpg.Record:
    """Create or update one owner."""
    row = await conn.fetchrow(QUERIES["owner_upsert"], owner.id, owner.name, owner.email, owner.active)
    assert row is not None
    return row


async def put_pool(conn: Connection, pool: PoolIn) -> None:
    """Create or update one pool and set its members exactly; every member must exist."""
    missing = [r["id"] for r in await conn.fetch(QUERIES["owners_missing"], pool.members)]
    if missing:
        raise UnknownOwners(pool.id, sorted(missing))
    await conn.execute(QUERIES["pool_upsert"], pool.id, pool.strategy, pool.fallback)
    await conn.execute(QUERIES["pool_members_set"], pool.id, sorted(set(pool.members)))


async def import_owners(conn: Connection, data: OwnersFile) -> tuple[int, int]:
    """Load an owners file in one transaction; importing twice changes nothing."""
    async with conn.transaction():
        for owner in data.owners:
            await put_owner(conn, owner)
        for pool in data.pools:
            await put_pool(conn, pool)
    return len(data.owners), len(data.pools)
