"""Dependencies handlers receive: the runtime built by the lifespan, and a pooled connection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated, TypeAlias

from asyncpg.pool import PoolConnectionProxy
from litestar.datastructures import State
from litestar.params import HeaderParameter

from leadroute.runtime import Runtime

__all__ = ["IdempotencyKey", "PooledConnection", "provide_connection", "provide_runtime"]

IdempotencyKey: TypeAlias = Annotated[
    str | None, HeaderParameter(name="Idempotency-Key", max_length=255, required=False)
]
"""The ``Idempotency-Key`` header of a write that clients retry (wins over a body's ``event_id``)."""

if TYPE_CHECKING:  # the stubs make it generic; at run time it is a plain class
    import asyncpg

    PooledConnection: TypeAlias = PoolConnectionProxy[asyncpg.Record]
else:
    PooledConnection = PoolConnectionProxy
"""What a handler's ``conn`` is: borrowed from the pool for the request, with the JSON codecs."""


def provide_runtime(state: State) -> Runtime:
    """The instance's Runtime, stored on the app state at start-up."""
    runtime: Runtime = state.runtime
    return runtime


async def provide_connection(state: State) -> AsyncIterator[PooledConnection]:
    """A connection from the pool for one request, given back when the response is sent.

    Store functions take it and open a transaction where they need one; a handler that asks for
    ``conn`` holds one pooled connection for its whole run, so only routes that use PostgreSQL do.
    """
    runtime: Runtime = state.runtime
    async with runtime.db.acquire() as conn:
        yield conn
