"""API keys and the admin audit trail in PostgreSQL (queries in ``sql/keys.sql``).

Functions take the connection, so the caller owns the transaction; a key change and its audit
row (:func:`leadroute.store.audit.audit`) commit together.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg
import msgspec

from leadroute.errors import NotFound
from leadroute.store.audit import audit
from leadroute.store.db import Connection
from leadroute.store.queries import QUERIES
from leadroute.structs import Struct

__all__ = [
    "KeyRow",
    "StoredKey",
    "any_keys",
    "find_key",
    "get_key",
    "insert_key",
    "key_origins",
    "list_keys",
    "revoke_key",
    "rotate_key",
    "seed_key",
]


class StoredKey(Struct, kw_only=True):
    """A key as ``leadroute keys list`` and ``GET /v1/keys`` show it: never its secret."""

    id: str
    name: str
    scopes: list[str]
    origins: list[str]
    created_at: datetime
    created_by: str
    rotated_at: datetime | None = None
    revoked_at: datetime | None = None
    revoked_by: str | None = None


class KeyRow(msgspec.Struct, frozen=True, kw_only=True):
    """What a request's key may do, with the hash its secret must match."""

    id: str
    scopes: frozenset[str]
    origins: frozenset[str]
    secret_sha256: bytes


def _stored(row: asyncpg.Record) -> StoredKey:
    return StoredKey(**dict(row))


async def insert_key(
    conn: Connection,
    key_id: str,
    *,
    name: str,
    scopes: Sequence[str],
    origins: Sequence[str],
    secret_sha256: bytes,
    actor: str,
) -> StoredKey | None:
    """Store a new key and its audit row; None when ``key_id`` is taken (draw another)."""
    async with conn.transaction():
        try:
            async with conn.transaction():  # a savepoint: a taken id leaves the outer one usable
                row = await conn.fetchrow(
                    QUERIES["key_insert"], key_id, name, list(scopes), list(origins), secret_sha256, actor
                )
        except asyncpg.UniqueViolationError:
            return None
        detail = {"name": name, "scopes": list(scopes), "origins": list(origins)}
        await audit(conn, actor, "key.create", f"key:{key_id}", detail)
    assert row is not None
    return _stored(row)


async def seed_key(conn: Connection, key_id: str, secret_sha256: bytes) -> None:
    """Create (or re-secret) the admin key given by ``LEADROUTE_ADMIN_KEY``; a revoked one stays so."""
    await conn.execute(QUERIES["key_seed"], key_id, secret_sha256)


async def any_keys(conn: Connection) -> bool:
    """Whether a key that is not revoked exists."""
    found: bool = await conn.fetchval(QUERIES["key_any"])
    return found


async def find_key(conn: Connection, key_id: str) -> KeyRow | None:
    """The live key with this id, for verifying a request; None when unknown or revoked."""
    row = await conn.fetchrow(QUERIES["key_verify"], key_id)
    if row is None:
        return None
    return KeyRow(
        id=row["id"],
        scopes=frozenset(row["scopes"]),
        origins=frozenset(row["origins"]),
        secret_sha256=bytes(row["secret_sha256"]),
    )


async def key_origins(conn: Connection) -> frozenset[str]:
    """Every origin that some live key allows."""
    return frozenset(r["origin"] for r in await conn.fetch(QUERIES["key_origins"]))


async def list_keys(conn: Connection) -> list[StoredKey]:
    """Every key, newest first, revoked ones included."""
    return [_stored(r) for r in await conn.fetch(QUERIES["key_list"])]


async def get_key(conn: Connection, key_id: str) -> StoredKey:
    """One key; :class:`NotFound` when there is none."""
    row = await conn.fetchrow(QUERIES["key_get"], key_id)
    if row is None:
        raise NotFound("key", key_id)
    return _stored(row)


async def rotate_key(conn: Connection, key_id: str, secret_sha256: bytes, *, actor: str) -> StoredKey:
    """Give a live key a new secret (same id, scopes, origins); the old secret stops working."""
    async with conn.transaction():
        row = await conn.fetchrow(QUERIES["key_rotate"], key_id, secret_sha256)
        if row is None:
            raise NotFound("key", key_id, detail=f"no live key with id {key_id!r} (unknown or revoked)")
        await audit(conn, actor, "key.rotate", f"key:{key_id}")
    return _stored(row)


async def revoke_key(conn: Connection, key_id: str, *, actor: str) -> StoredKey:
    """Revoke a key for good; revoking again answers the same."""
    async with conn.transaction():
        row = await conn.fetchrow(QUERIES["key_revoke"], key_id, actor)
        if row is None:
            raise NotFound("key", key_id)
        await audit(conn, actor, "key.revoke", f"key:{key_id}")
    return _stored(row)
