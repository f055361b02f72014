"""Advisory locks: every one leadroute takes, taken here (the statements live in ``sql/locks.sql``).

Transaction-scoped locks end with the transaction; session locks are only ever taken on a
connection of its own (never a pooled one, which is not reset on release) and released in a
``finally``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from leadroute.store.db import Connection
from leadroute.store.queries import QUERIES

__all__ = ["exclusive", "try_session_lock", "unlock", "xact_shared"]


async def xact_shared(conn: Connection, key: int) -> None:
    """Hold ``key`` shared until the caller's transaction ends."""
    await conn.execute(QUERIES["lock_xact_shared"], key)


@asynccontextmanager
async def exclusive(conn: Connection, key: int, *, wait: str) -> AsyncIterator[None]:
    """Hold ``key`` exclusively (a session lock) for the ``with`` block, waiting at most ``wait``
    (a PostgreSQL interval, e.g. ``'30s'``) for the shared holders to finish."""
    await conn.execute(QUERIES["lock_timeout_set"], wait)
    await conn.execute(QUERIES["lock_session"], key)
    try:
        yield
    finally:
        await unlock(conn, key)
        await conn.execute(QUERIES["lock_timeout_set"], "0")


async def try_session_lock(conn: Connection, key: int) -> bool:
    """Take ``key`` for the session if nobody holds it (release it with :func:`unlock`)."""
    taken: bool = await conn.fetchval(QUERIES["lock_try_session"], key)
    return taken


async def unlock(conn: Connection, key: int) -> None:
    """Release a session lock taken on ``conn``."""
    await conn.execute(QUERIES["lock_session_release"], key)
