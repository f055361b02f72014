"""PostgreSQL connections: the only place leadroute opens one, so every connection has the codecs.

``create_pool`` for the service, ``connect`` for a single connection (CLI commands, LISTEN, tests).
Both install the same JSON codecs: ``json``/``jsonb`` columns and parameters are Python values,
encoded and decoded by msgspec, so no query needs a ``::text::jsonb`` cast and no caller encodes.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import asyncpg
import msgspec
from asyncpg.pool import PoolConnectionProxy

__all__ = ["Connection", "connect", "create_pool", "init_connection"]

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


async def connect(dsn: str, *, timeout: float = 60) -> asyncpg.Connection:  # noqa: ASYNC109 (asyncpg's own connect timeout)
    """One connection of its own, with the JSON codecs installed; the caller closes it."""
    conn = await asyncpg.connect(dsn, timeout=timeout)
    try:
        await init_connection(conn)
    except BaseException:
        await conn.close()
        raise
    return conn


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 20) -> asyncpg.Pool:
    """A pool whose connections have the JSON codecs installed.

    asyncpg's reset query runs on every release (a round trip). Skipping it was measured and
    withdrawn: the reset is also what finds a connection a server shutdown left half-broken, and
    without it such a connection went back to the pool and failed the next request.

    A pooled connection that PostgreSQL closed (a restart, ``pg_terminate_backend``) is replaced
    when it is next acquired (asyncpg checks ``is_closed()`` on acquire), so a server restart is
    not surfaced to requests. ``timeout=5`` bounds each (re)connect: while PostgreSQL is down or
    unreachable a request answers 503 within seconds instead of waiting out asyncpg's 60 s.
    """
    from leadroute.outage import quiet_driver_logs

    quiet_driver_logs()  # asyncpg's reconnect warnings join the one outage line
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=init_connection,
        command_timeout=30,
        timeout=5,
    )
    assert pool is not None  # create_pool only returns None when awaited without init
    return pool
