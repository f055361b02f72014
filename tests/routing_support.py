"""Helpers shared by the routing tests: rule files, owners and pools over HTTP, database reads."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Sequence
from typing import Any

import asyncpg
from litestar import Litestar
from litestar.testing import AsyncTestClient

from leadroute.config import Settings

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

Client = AsyncTestClient[Litestar]


def lead(n: int, domain: str | None = None, **fields: Any) -> dict[str, Any]:
    """A lead with its own company domain (so account-owner routing does not group them)."""
    return {"email": f"person{n}@{domain or f'company-{n}.example'}", "title": "VP Sales"} | fields


async def owner(client: Client, ident: str, **fields: Any) -> dict[str, Any]:
    r = await client.put(f"/v1/owners/{ident}", json={"name": ident.title()} | fields)
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


async def pool(client: Client, ident: str, members: Sequence[str], **fields: Any) -> dict[str, Any]:
    r = await client.put(f"/v1/pools/{ident}", json={"members": list(members)} | fields)
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


async def post_leads(
    client: Client, leads: Sequence[dict[str, Any]], *, limit: int = 40
) -> list[dict[str, Any]]:
    """Post leads concurrently (at most ``limit`` in flight); every one must be accepted."""
    gate = asyncio.Semaphore(limit)

    async def one(body: dict[str, Any]) -> dict[str, Any]:
        async with gate:
            r = await client.post("/v1/leads", json=body)
        assert r.status_code == 201, r.text
        result: dict[str, Any] = r.json()
        return result

    return list(await asyncio.gather(*(one(b) for b in leads)))


async def post_one(client: Client, body: dict[str, Any]) -> dict[str, Any]:
    r = await client.post("/v1/leads", json=body)
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


async def explain(client: Client, lead_id: str) -> dict[str, Any]:
    r = await client.get(f"/v1/leads/{lead_id}/explain")
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


def owners_of(decisions: Sequence[dict[str, Any]]) -> collections.Counter[str | None]:
    return collections.Counter(d["owner"] for d in decisions)


async def fetch(settings: Settings, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def open_per_owner(settings: Settings) -> dict[str, int]:
    """Open leads per owner as PostgreSQL records them (current assignments)."""
    rows = await fetch(
        settings,
        "SELECT owner_id, count(*) AS n FROM assignments"
        " WHERE ended_at IS NULL AND owner_id IS NOT NULL GROUP BY owner_id",
    )
    return {r["owner_id"]: r["n"] for r in rows}
