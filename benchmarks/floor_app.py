"""The apps of ``bench_floor``: ``benchmarks/hello.py`` plus a durable write per request, in three shapes.

    FLOOR_TARGET=commit FLOOR_DATABASE_URL=postgresql://127.0.0.1:5432/DB \\
        .venv/bin/python benchmarks/floor_app.py PORT

Each is hello.py's app (Litestar, msgspec decoding the ~1 KB lead into ``hello.Body``) served the
same way (uvicorn, uvloop, httptools, no access log, one worker), with an asyncpg pool sized as
leadroute's default (``LEADROUTE_DB_POOL_MIN`` 2 to ``LEADROUTE_DB_POOL_MAX`` 20; connections idle
for 10 s close, so the apps waiting for their turn hold few). ``POST /v1/leads`` answers 201 only after
PostgreSQL has committed the lead (``synchronous_commit`` as the server has it):

- ``commit``: one ``INSERT INTO floor_leads (id, body) VALUES ($1, $2)`` in autocommit, on a pool
  without asyncpg's reset on release: one round trip per request.
- ``txn``: the least a routed lead with a durable commit needs: acquire, BEGIN, claim the
  idempotency key (``INSERT ... ON CONFLICT DO NOTHING RETURNING``), one Redis ``EVALSHA`` of a
  script that ``HINCRBY``s a counter (the routing claim), the lead row's INSERT, COMMIT, release
  with asyncpg's default reset. Five PostgreSQL round trips and one Redis round trip per request.
- ``group``: group commit. A request queues its row and awaits a future; up to ``FLUSHERS`` flusher
  tasks each take whatever is queued (at most ``BATCH`` rows) once they hold a connection, write it
  with ONE statement (``unnest`` of arrays: one statement in autocommit is one transaction) and
  resolve the futures after the commit. A failed flush retries each of its rows alone, so only a
  row that fails alone answers an error.

Each target keeps its tables in a schema of its own (``floor_<target>``, set as the connections'
``search_path``) so the rows of each can be counted against its answers; ``GET /floor/stats``
answers the count of 201s the app has given, of the requests it failed and (``group``) of the
flushes that wrote them.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import msgspec
import uvicorn
from asyncpg.pool import PoolConnectionProxy
from hello import Body  # this directory
from litestar import Litestar, Request, get, post
from litestar.datastructures import State
from redis.asyncio import Redis

from leadroute.config import Settings
from leadroute.store.redis_client import redis_client

__all__ = ["BATCH", "FLUSHERS", "POOL_MAX", "POOL_MIN", "TARGETS", "GroupCommit", "app"]

TARGETS = ("commit", "txn", "group")
BATCH = 256  # rows per group-commit flush, at most
FLUSHERS = 4  # group-commit flushes in flight, at most
DEFAULTS = {f.name: f.default for f in msgspec.structs.fields(Settings)}
POOL_MIN: int = DEFAULTS["db_pool_min"]  # leadroute's default pool, LEADROUTE_DB_POOL_MIN/_MAX
POOL_MAX: int = DEFAULTS["db_pool_max"]
IDLE_SECONDS = 10.0  # an idle app gives its connections back while the other targets run

SCHEMA = """
CREATE TABLE IF NOT EXISTS floor_leads (id uuid PRIMARY KEY, body jsonb NOT NULL, owner text);
CREATE TABLE IF NOT EXISTS floor_keys (key text PRIMARY KEY, lead_id uuid NOT NULL);
"""
INSERT_ONE = "INSERT INTO floor_leads (id, body) VALUES ($1, $2)"
INSERT_MANY = "INSERT INTO floor_leads (id, body) SELECT * FROM unnest($1::uuid[], $2::jsonb[])"
CLAIM_KEY = "INSERT INTO floor_keys (key, lead_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING lead_id"
INSERT_ROUTED = "INSERT INTO floor_leads (id, body, owner) VALUES ($1, $2, $3)"
CLAIM_LUA = "return redis.call('HINCRBY', KEYS[1], ARGV[1], 1)"  # the routing claim: one counter

TARGET = os.environ.get("FLOOR_TARGET", "")
CLAIMS_KEY = f"{os.environ.get('FLOOR_REDIS_PREFIX', 'floor')}:claims"


class Stats:
    """The answers the app gave: 201s (each after its commit) and failures."""

    answered = 0
    failed = 0
    flushes = 0  # group commit: statements that wrote a flush's rows together


class GroupCommit:
    """Concurrent requests share one INSERT and its commit; each is answered after that commit."""

    def __init__(self, pool: asyncpg.Pool, *, batch: int = BATCH, flushers: int = FLUSHERS) -> None:
        self._pool = pool
        self._batch = batch
        self._flushers = flushers
        self._queue: list[tuple[uuid.UUID, str, asyncio.Future[None]]] = []
        self._running: set[asyncio.Task[None]] = set()

    async def write(self, lead_id: uuid.UUID, body: str) -> None:
        """Return once the row is committed; raise what its write raised if it failed alone."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((lead_id, body, done))
        if len(self._running) < self._flushers:
            task = asyncio.create_task(self._flush())
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        await done

    async def _flush(self) -> None:
        while self._queue:
            rows: list[tuple[uuid.UUID, str, asyncio.Future[None]]] = []
            try:
                async with self._pool.acquire() as conn:
                    rows, self._queue[: self._batch] = self._queue[: self._batch], []
                    if not rows:  # another flusher took them while this one waited for a connection
                        return
                    try:
                        await conn.execute(INSERT_MANY, [r[0] for r in rows], [r[1] for r in rows])
                        Stats.flushes += 1
                    except (asyncpg.PostgresError, asyncpg.InterfaceError):
                        await self._one_by_one(conn, rows)
                        continue
                    for _, _, done in rows:
                        if not done.done():
                            done.set_result(None)
            except Exception as error:  # no connection, or it broke: every taken row fails
                for _, _, done in rows:
                    if not done.done():
                        done.set_exception(error)
                if not rows:  # the acquire failed before anything was taken: fail what waits
                    rows, self._queue[:] = self._queue[:], []
                    for _, _, done in rows:
                        done.set_exception(error)
                return

    @staticmethod
    async def _one_by_one(
        conn: PoolConnectionProxy[asyncpg.Record], rows: list[tuple[uuid.UUID, str, asyncio.Future[None]]]
    ) -> None:
        for lead_id, body, done in rows:
            try:
                await conn.execute(INSERT_ONE, lead_id, body)
            except (asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                if not done.done():
                    done.set_exception(error)
            else:
                if not done.done():
                    done.set_result(None)


def _answer(lead_id: uuid.UUID, data: Body) -> dict[str, str]:
    Stats.answered += 1
    return {"lead_id": str(lead_id), "email_domain": data.email.rpartition("@")[2]}


@post("/v1/leads", status_code=201)
async def create(data: Body, request: Request[Any, Any, State], state: State) -> dict[str, str]:
    """The lead, answered 201 after its row is committed (the write depends on FLOOR_TARGET)."""
    body = (await request.body()).decode()  # Litestar keeps the bytes it decoded ``data`` from
    lead_id = uuid.uuid4()
    pool: asyncpg.Pool = state.pool
    try:
        if TARGET == "commit":
            await pool.execute(INSERT_ONE, lead_id, body)
        elif TARGET == "group":
            await state.group.write(lead_id, body)
        else:
            await _routed(
                pool=pool, redis=state.redis, claim_sha=state.claim_sha, lead_id=lead_id, data=data, body=body
            )
    except BaseException:
        Stats.failed += 1
        raise
    return _answer(lead_id, data)


async def _routed(
    *, pool: asyncpg.Pool, redis: Redis, claim_sha: str, lead_id: uuid.UUID, data: Body, body: str
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        if await conn.fetchval(CLAIM_KEY, data.email.lower(), lead_id) is None:
            raise RuntimeError("idempotency key already claimed: post_leads.lua sends unique leads")
        claims = await redis.evalsha(claim_sha, 1, CLAIMS_KEY, "sales")
        await conn.execute(INSERT_ROUTED, lead_id, body, f"rep{int(claims) % 20}")


@get("/floor/stats")
async def stats() -> dict[str, int]:
    """The 201s given (each after its commit), the requests that failed, group commit's flushes."""
    return {"answered": Stats.answered, "failed": Stats.failed, "flushes": Stats.flushes}


@asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    if TARGET not in TARGETS:
        raise SystemExit(f"FLOOR_TARGET: one of {', '.join(TARGETS)}, not {TARGET!r}")
    schema = f"floor_{TARGET}"
    conn = await asyncpg.connect(os.environ["FLOOR_DATABASE_URL"])
    try:
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}; SET search_path = {schema};{SCHEMA}")
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(
        os.environ["FLOOR_DATABASE_URL"],
        min_size=POOL_MIN,
        max_size=POOL_MAX,
        max_inactive_connection_lifetime=IDLE_SECONDS,
        server_settings={"search_path": schema},
        # ``txn`` keeps asyncpg's reset on release (a round trip), as leadroute does; the others
        # release without one (their single statement leaves no session state behind)
        reset=None if TARGET == "txn" else _no_reset,
    )
    assert pool is not None
    app.state.pool = pool
    app.state.group = GroupCommit(pool)
    redis = redis_client(os.environ.get("FLOOR_REDIS_URL", "redis://127.0.0.1:6379/0"))
    app.state.redis = redis
    app.state.claim_sha = await redis.script_load(CLAIM_LUA)
    try:
        yield
    finally:
        await pool.close()
        await redis.aclose()


async def _no_reset(conn: asyncpg.Connection) -> None:
    del conn


app = Litestar([create, stats], lifespan=[lifespan])

if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )
