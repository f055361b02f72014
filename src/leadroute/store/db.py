"""PostgreSQL connection pool set-up: JSON codecs and the database-per-run helpers."""

from __future__ import annotations

from typing import Any, TypeAlias

import asyncpg
import msgspec
from asyncpg.pool import PoolConnectionProxy

__all__ = ["Connection", "create_pool", "init_connection"]

Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
"""A connection of its own or one borrowed from the pool: store functions take either."""

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


def _encode_json(value: Any) -> str:
    return _encode(value).decode()


async def init_connection(conn: asyncpg.Connection) -> None:
    """Exchange ``json``/``jsonb`` as Python values, encoded by msgspec."""
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=_encode_json, decoder=_decode, schema="pg_catalog")


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 20) -> asyncpg.Pool:
    """A pool whose connections have the JSON codecs installed."""
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=init_connection, command_timeout=30
    )
    assert pool is not None  # create_pool only returns None when awaited without init
    return pool
