"""Capacity stays exact when a transaction fails after Redis was touched.

The failures are real PostgreSQL errors, raised by triggers this module installs for one test
(and drops afterwards): a write that fails mid-transaction, and a commit that fails.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import msgspec
from redis.asyncio import Redis

from conftest import FakeClock
from leadroute.config import Settings
from leadroute.routing import PoolTarget, Router, snapshot_from_pg
from leadroute.store.db import connect
from leadroute.store.owners import OwnerIn, PoolIn, put_owner, put_pool
from sla_support import fire, open_counts, sla_rules
from support import POOL_RULES, authed, connection, lead, open_per_owner, owner, pool, post_one


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
    async with connection(settings) as conn:
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


class TestClaimThenFailure:
    """Recording the account owner fails after the Redis claim: the slot is given back."""

    async def test_new_lead_whose_account_owner_cannot_be_recorded(
        self, make_app: Any, settings: Settings
    ) -> None:
        async with authed(make_app(POOL_RULES)) as client:
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
        async with authed(make_app(POOL_RULES)) as client:
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


class TestCommitFails:
    """The commit that ends an owner's lead fails: their slot must stay taken, as PostgreSQL
    still has the lead open. (It used to be freed in Redis before the commit, so the owner could
    then be given more than max_open until the next rebuild.)"""

    async def test_close_whose_commit_fails_keeps_the_slot(self, make_app: Any, settings: Settings) -> None:
        async with authed(make_app(POOL_RULES)) as client:
            await owner(client, "ann", capacity={"max_open": 1})
            await pool(client, "sales", ["ann"], fallback="overflow")
            first = await post_one(client, lead(1))
            assert first["owner"] == "ann"
            async with failing(settings, "leads", at_commit=True):
                r = await client.post(f"/v1/assignments/{first['lead_id']}/close", json={})
                assert r.status_code == 500
            assert (await client.get(f"/v1/leads/{first['lead_id']}")).json()["status"] == "assigned"
            assert await open_counts(client) == {"ann": 1} == await open_per_owner(settings)
            # ann is full: the next lead goes to the fallback, not to ann a second time
            second = await post_one(client, lead(2))
            assert (second["owner"], second["status"]) == (None, "unassigned")
            # a close that commits frees the slot (after the commit)
            r = await client.post(f"/v1/assignments/{first['lead_id']}/close", json={})
            assert r.status_code == 200, r.text
            assert await open_counts(client) == {}

    async def test_reassign_whose_commit_fails_keeps_both_counts(
        self, make_app: Any, settings: Settings
    ) -> None:
        async with authed(make_app(POOL_RULES)) as client:
            for ident in ("ann", "ben"):
                await owner(client, ident)
            await pool(client, "sales", ["ann", "ben"])
            first = await post_one(client, lead(1))
            assert first["owner"] == "ann"
            async with failing(settings, "leads", at_commit=True):
                r = await client.post(
                    f"/v1/assignments/{first['lead_id']}/reassign", json={"owner_id": "ben"}
                )
                assert r.status_code == 500
            # ann keeps her slot (the lead is still hers), ben's claim was given back
            assert await open_counts(client) == {"ann": 1} == await open_per_owner(settings)
            r = await client.post(f"/v1/assignments/{first['lead_id']}/reassign", json={"owner_id": "ben"})
            assert r.status_code == 200, r.text
            assert await open_counts(client) == {"ben": 1} == await open_per_owner(settings)

    async def test_sla_breach_whose_commit_fails_keeps_the_slot(
        self, make_app: Any, settings: Settings, clock: FakeClock
    ) -> None:
        async with authed(make_app(sla_rules(30), clock=clock)) as client:
            for ident in ("ann", "ben"):
                await owner(client, ident)
            await pool(client, "sales", ["ann", "ben"])
            first = await post_one(client, lead(1))
            assert first["owner"] == "ann"
            clock.advance(minutes=31)
            async with failing(settings, "leads", at_commit=True):
                assert await fire(client) == 0  # the breach could not be recorded; tried again later
            assert await open_counts(client) == {"ann": 1} == await open_per_owner(settings)


class TestReleaseAfterCommit:
    """The slot is freed after the commit, in the generation the transaction saw: a rebuild in
    between already counted the commit, so the late release must not subtract it again."""

    async def test_a_rebuild_between_commit_and_release_is_not_counted_twice(
        self, settings: Settings, clean: None
    ) -> None:
        redis: Redis = Redis.from_url(str(settings.redis_url))
        assert settings.database_url is not None
        conn = await connect(settings.database_url)
        router = Router(redis, f"{settings.redis_prefix}:late", database_url=settings.database_url)
        now = datetime.now(UTC)
        try:
            for ident in ("ann", "ben"):
                await put_owner(conn, msgspec.convert({"id": ident, "name": ident}, OwnerIn))
            await put_pool(conn, PoolIn(id="p", members=["ann", "ben"]))
            await router.rebuild(conn)
            leads = []
            for _ in range(3):  # round robin: ann, ben, ann
                lead_id = uuid.uuid4()
                async with conn.transaction():
                    await conn.execute(
                        "INSERT INTO leads (id, stage, score, status, normalized)"
                        " VALUES ($1, 'lead', 0, 'assigned', '{}')",
                        lead_id,
                    )
                    placed = await router.assign(
                        conn,
                        lead_id=lead_id,
                        company_domain=None,
                        targets=[PoolTarget(rule="r", pool="p")],
                        fallback="unassigned",
                        now=now,
                    )
                    await conn.execute(
                        "INSERT INTO assignments (lead_id, owner_id, pool_id, status, created_at, claim_seq)"
                        " VALUES ($1, $2, 'p', 'assigned', $3, $4)",
                        lead_id,
                        placed.owner,
                        now,
                        placed.seq,
                    )
                leads.append((lead_id, placed.owner))
            assert [o for _, o in leads] == ["ann", "ben", "ann"]
            assert (await router.state.read()).open == {"ann": 2, "ben": 1}

            async def close(lead_id: uuid.UUID, owner_id: str | None) -> Any:
                assert owner_id is not None
                async with conn.transaction():
                    await conn.execute("UPDATE leads SET status = 'closed' WHERE id = $1", lead_id)
                    return await router.prepare_release(conn, owner_id=owner_id)

            late = await close(*leads[0])
            assert (await router.state.read()).open == {"ann": 2, "ben": 1}  # nothing before the commit
            await router.rebuild(conn)  # counts PostgreSQL: one of ann's leads is closed already
            assert (await router.state.read()).open == {"ann": 1, "ben": 1}
            await router.release([late])  # prepared in the old generation: does nothing
            assert (await router.state.read()).open == {"ann": 1, "ben": 1}

            plain = await close(*leads[1])
            await router.release([plain])  # no rebuild in between: frees ben's slot
            assert (await router.state.read()).open == (await snapshot_from_pg(conn, now)).open == {"ann": 1}
        finally:
            keys = [k async for k in redis.scan_iter(match=f"{settings.redis_prefix}:late:*")]
            if keys:
                await redis.delete(*keys)
            await redis.aclose()
            await conn.close()
