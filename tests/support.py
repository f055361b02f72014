"""What most tests build the same way: owners and pools over HTTP, lead bodies, database and
Redis reads.

More specific helpers live beside it: ``sla_support`` (several instances, timers),
``ruleset_support`` (rule files by version) and ``process_support`` (the CLI and ``leadroute
serve`` in child processes). Every connection the tests open goes through
:func:`leadroute.store.db.connect`, so ``json``/``jsonb`` values come back as Python values.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from leadroute.config import Settings
from leadroute.store.db import connect

Client = AsyncTestClient[Litestar]

ADMIN_KEY = "lr_live_00ad0001_" + "test-admin-secret-0123456789abcdefghijklmnop"
"""The admin key every test app is started with (``LEADROUTE_ADMIN_KEY`` in the test settings)."""
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
SECRET_KEY = "dGVzdC1zZWNyZXQta2V5LTAxMjM0NTY3ODlhYmNkZWY="
"""The ``LEADROUTE_SECRET_KEY`` of the test settings (webhook secrets are stored under it)."""
ADMIN_ACTOR = "key:00ad0001"
"""The actor recorded for changes made with :data:`ADMIN_KEY`."""


def authed(app: Litestar, key: str | None = ADMIN_KEY) -> Client:
    """A test client of ``app`` that sends ``key`` (the admin key by default; None: no key)."""
    client = AsyncTestClient(app)
    if key is not None:
        client.headers["Authorization"] = f"Bearer {key}"
    return client


POOL_RULES = """
version: 1
description: everything to one pool
scoring:
  groups:
    fit: {max: 100}
  rules:
    - {id: senior, group: fit, when: 'title =~~ "(?i)\\\\bvp\\\\b"', points: 60}
qualification:
  - {id: rest, stage: lead}
routing:
  rules:
    - {id: everyone, when: 'true', pool: sales}
  fallback: unassigned
"""

ACCOUNT_RULES = """
version: 1
description: the account owner first, then the pool
scoring:
  groups:
    fit: {max: 100}
  rules:
    - {id: senior, group: fit, when: 'title =~~ "(?i)\\\\bvp\\\\b"', points: 60}
qualification:
  - {id: rest, stage: lead}
routing:
  rules:
    - {id: existing-account, when: 'true', route: account_owner}
    - {id: everyone, when: 'true', pool: sales}
  fallback: unassigned
"""


# -- leads ------------------------------------------------------------------------------------


def lead(n: int, domain: str | None = None, **fields: Any) -> dict[str, Any]:
    """The body of lead ``n``: a VP with a company domain of its own (``company-<n>.example``),
    so account-owner routing does not group leads unless a test names the same ``domain``."""
    return {"email": f"person{n}@{domain or f'company-{n}.example'}", "title": "VP Sales"} | fields


async def post_one(client: Client, body: dict[str, Any]) -> dict[str, Any]:
    """Post one lead; it must be accepted. Its decision."""
    r = await client.post("/v1/leads", json=body)
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


async def post_leads(
    client: Client, leads: Sequence[dict[str, Any]], *, limit: int = 40
) -> list[dict[str, Any]]:
    """Post leads concurrently (at most ``limit`` in flight); every one must be accepted."""
    gate = asyncio.Semaphore(limit)

    async def one(body: dict[str, Any]) -> dict[str, Any]:
        async with gate:
            return await post_one(client, body)

    return list(await asyncio.gather(*(one(b) for b in leads)))


async def get_lead(client: Client, lead_id: str) -> dict[str, Any]:
    """``GET /v1/leads/{lead_id}``: the lead with its decision, assignment and workflow."""
    r = await client.get(f"/v1/leads/{lead_id}")
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


async def explain(client: Client, lead_id: str) -> dict[str, Any]:
    r = await client.get(f"/v1/leads/{lead_id}/explain")
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


def owners_of(decisions: Sequence[dict[str, Any]]) -> collections.Counter[str | None]:
    return collections.Counter(d["owner"] for d in decisions)


# -- owners and pools -------------------------------------------------------------------------


async def owner(client: Client, ident: str, **fields: Any) -> dict[str, Any]:
    """Create or replace owner ``ident`` (named ``ident.title()`` unless ``fields`` say otherwise)."""
    r = await client.put(f"/v1/owners/{ident}", json={"name": ident.title()} | fields)
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


async def pool(client: Client, ident: str, members: Sequence[str], **fields: Any) -> dict[str, Any]:
    """Create or replace pool ``ident`` with these members (who must exist) and settings."""
    r = await client.put(f"/v1/pools/{ident}", json={"members": list(members)} | fields)
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


_put_pool = pool  # ``setup_pool`` takes a ``pool`` argument


async def setup_pool(
    client: Client,
    owners: Sequence[str] = ("olive",),
    *,
    pool: str = "sales",
    inactive: Collection[str] = (),
    **pool_fields: Any,
) -> None:
    """Owners ``owners`` (those in ``inactive`` deactivated) and a pool ``pool`` of them.

    ``pool_fields`` are the pool's other settings (``fallback``, ``escalate_to``, ``strategy``...).
    """
    assert not isinstance(owners, str), "owners is a list of owner ids"
    for ident in owners:
        await owner(client, ident, **({"active": False} if ident in inactive else {}))
    await _put_pool(client, pool, owners, **pool_fields)


# -- PostgreSQL -------------------------------------------------------------------------------


@asynccontextmanager
async def connection(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A connection of its own to the test database (JSON codecs installed), closed afterwards."""
    assert settings.database_url is not None
    conn = await connect(settings.database_url)
    try:
        yield conn
    finally:
        await conn.close()


async def fetch(settings: Settings, sql: str, *args: Any) -> list[asyncpg.Record]:
    async with connection(settings) as conn:
        return list(await conn.fetch(sql, *args))


async def count(settings: Settings, sql: str, *args: Any) -> int:
    """The one value ``sql`` selects (a ``count(*)``)."""
    async with connection(settings) as conn:
        value: int = await conn.fetchval(sql, *args)
        return value


async def open_per_owner(settings: Settings) -> dict[str, int]:
    """Open leads per owner as PostgreSQL records them (current assignments)."""
    rows = await fetch(
        settings,
        "SELECT owner_id, count(*) AS n FROM assignments"
        " WHERE ended_at IS NULL AND owner_id IS NOT NULL GROUP BY owner_id",
    )
    return {r["owner_id"]: r["n"] for r in rows}


# -- Redis ------------------------------------------------------------------------------------


async def redis_state(settings: Settings) -> dict[bytes, bytes | None]:
    """Every routing key of this run with its serialized value: equal means untouched."""
    assert settings.redis_url is not None
    redis = Redis.from_url(settings.redis_url)
    try:
        keys = sorted([k async for k in redis.scan_iter(match=f"{settings.redis_prefix}:*")])
        return {k: await redis.dump(k) for k in keys}
    finally:
        await redis.aclose()
