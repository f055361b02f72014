"""Capacity stays exact when a transaction fails after Redis was touched.

The failures are real PostgreSQL errors, raised by triggers this module installs for one test
(and drops afterwards): a write that fails mid-transaction, and a commit that fails.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from litestar.testing import AsyncTestClient

from leadroute.config import Settings
from routing_support import POOL_RULES, lead, open_per_owner, owner, pool, post_one
from sla_support import open_counts


@asynccontextmanager
async def failing(settings: Settings, table: str, *, at_commit: bool = False) -> AsyncIterator[None]:
    """While inside: every INSERT or UPDATE on ``table`` fails, at once or (``at_commit``) when
    the transaction commits (a deferred constraint trigger: the commit itself fails)."""
    name = f"lr_test_fail_{table}"
    when = (
        "AFTER INSERT OR UPDATE ON {t} DEFERRABLE INITIALLY DEFERRED"
        if at_commit
        else "BEFORE INSERT OR UPDATE ON {t}"
    ).format(t=table)
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$"
            f" BEGIN RAISE EXCEPTION 'test: writes to {table} fail'; END $$"
        )
        kind = "CONSTRAINT TRIGGER" if at_commit else "TRIGGER"
        await conn.execute(f"CREATE {kind} {name} {when} FOR EACH ROW EXECUTE FUNCTION {name}()")
        yield
    finally:
        await conn.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        await conn.execute(f"DROP FUNCTION IF EXISTS {name}()")
        await conn.close()


class TestClaimThenFailure:
    """Recording the account owner fails after the Redis claim: the slot is given back."""

    async def test_new_lead_whose_account_owner_cannot_be_recorded(
        self, make_app: Any, settings: Settings
    ) -> None:
        async with AsyncTestClient(make_app(POOL_RULES)) as client:
            await owner(client, "ann", capacity={"max_open": 1})
            await pool(client, "sales", ["ann"])
            async with failing(settings, "account_owners"):
                r = await client.post("/v1/leads", json=lead(1, "acme.example"))
                assert r.status_code == 500
            # the claim was undone: the count is what PostgreSQL holds (nothing), and ann's
            # only slot is free for the next lead instead of lost until a rebuild
            assert await open_counts(client) == {}
            assert await open_per_owner(settings) == {}
            assert (await post_one(client, lead(2, "acme.example")))["owner"] == "ann"
            assert await open_counts(client) == {"ann": 1}

    async def test_reassignment_whose_account_owner_cannot_be_recorded(
        self, make_app: Any, settings: Settings
    ) -> None:
        async with AsyncTestClient(make_app(POOL_RULES)) as client:
            for ident in ("ann", "ben"):
                await owner(client, ident)
            await pool(client, "sales", ["ann", "ben"])
            first = await post_one(client, lead(1))  # company-1.example: no account owner yet
            assert first["owner"] == "ann"
            async with failing(settings, "account_owners"):
                # the pool's next owner (ben) is claimed, then recording him as the account owner
                # of company-1.example fails (ann's row is there, but the INSERT still runs)
                r = await client.post(f"/v1/assignments/{first['lead_id']}/reassign", json={})
                assert r.status_code == 500
            assert await open_counts(client) == {"ann": 1}
            assert await open_per_owner(settings) == {"ann": 1}
