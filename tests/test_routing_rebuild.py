"""Redis loses everything (a real FLUSHALL) and routing rebuilds from PostgreSQL.

FLUSHALL would wipe every other test run's keys on the shared Redis, so these tests start a Redis
server of their own (the Valkey binary the embedded mode ships) and flush that one.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from redis.crc import key_slot

from leadroute.app import create_app
from leadroute.config import Settings
from leadroute.embedded import _valkey_binary
from leadroute.routing import Assignment, PoolTarget, Router, snapshot_from_pg
from leadroute.rules import parse_ruleset
from leadroute.store.db import connect
from leadroute.store.owners import OwnerIn, PoolIn, put_owner, put_pool
from process_support import cli_env, free_port, leadroute, serve_on
from support import AUTH, POOL_RULES, authed, connection, fetch, lead, open_per_owner, owner, pool, post_one


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[str]:
    """A Redis (Valkey) server for this test alone, so FLUSHALL touches nobody else."""
    port = free_port()
    proc = subprocess.Popen(
        [
            str(_valkey_binary()),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("private Redis did not start")
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def private(settings: Settings, clean: None, private_redis: str) -> Settings:
    """This run's database with the private Redis."""
    return msgspec.structs.replace(settings, redis_url=private_redis)


@pytest.fixture
async def flusher(private_redis: str) -> AsyncIterator[Redis]:
    redis: Redis = Redis.from_url(private_redis)
    yield redis
    await redis.aclose()


async def state_matches_pg(settings: Settings, now: Any = None) -> tuple[Any, Any]:
    """(Redis state, state rebuilt from PostgreSQL), compared on counts, cursors and accounts."""
    redis: Redis = Redis.from_url(str(settings.redis_url))
    try:
        async with connection(settings) as conn:
            router = Router(redis, settings.redis_prefix, database_url=settings.database_url)
            live = await router.state.read()
            rebuilt = await snapshot_from_pg(conn, now or datetime.now(UTC))
    finally:
        await redis.aclose()
    return (
        (live.open, live.rr, live.account, live.seq),
        (rebuilt.open, rebuilt.rr, rebuilt.account, rebuilt.seq),
    )


class TestFlushAll:
    async def test_flush_mid_stream_rebuilds_and_keeps_capacity_exact(
        self, private: Settings, flusher: Redis
    ) -> None:
        app = create_app(private, ruleset=parse_ruleset(POOL_RULES, path=Path("t.yaml")))
        async with authed(app) as client:
            names = [f"rep{i}" for i in range(6)]
            for name in names:
                await owner(client, name, capacity={"max_open": 5})
            await pool(client, "sales", names, fallback="overflow")
            gate = asyncio.Semaphore(12)
            done = 0

            async def post(i: int) -> dict[str, Any]:
                nonlocal done
                async with gate:
                    r = await client.post("/v1/leads", json=lead(i))
                    done += 1
                    if done == 12:  # others are in flight right now
                        # A blocking client: the flush happens now, between this request and the next.
                        with SyncRedis.from_url(str(private.redis_url)) as sync:
                            sync.flushall()
                assert r.status_code == 201, r.text
                result: dict[str, Any] = r.json()
                return result

            decisions = await asyncio.gather(*(post(i) for i in range(40)))
            rebuilds = app.state.runtime.routing.rebuilds
        assert rebuilds >= 2  # start-up, and after the flush
        assert len(decisions) == 40
        assigned = [d for d in decisions if d["status"] == "assigned"]
        assert len(assigned) == 30
        assert all(d["reason"] for d in decisions if d["status"] == "unassigned")
        assert await open_per_owner(private) == dict.fromkeys(names, 5)
        live, rebuilt = await state_matches_pg(private)
        assert live == rebuilt
        rows = await fetch(
            private,
            "SELECT count(*) AS n FROM leads l WHERE NOT EXISTS"
            " (SELECT 1 FROM assignments a WHERE a.lead_id = l.id AND a.ended_at IS NULL"
            "  AND (a.owner_id IS NOT NULL OR a.reason IS NOT NULL))",
        )
        assert rows[0]["n"] == 0  # every lead has a current owner or a recorded reason

    async def test_round_robin_continues_where_it_was(self, private: Settings, flusher: Redis) -> None:
        app = create_app(private, ruleset=parse_ruleset(POOL_RULES, path=Path("t.yaml")))
        async with authed(app) as client:
            for name in ("ann", "ben", "cat"):
                await owner(client, name)
            await pool(client, "sales", ["ann", "ben", "cat"])
            before = [(await post_one(client, lead(i)))["owner"] for i in range(4)]
            await flusher.flushall()
            after = [(await post_one(client, lead(10 + i)))["owner"] for i in range(5)]
        assert before == ["ann", "ben", "cat", "ann"]
        assert after == ["ben", "cat", "ann", "ben", "cat"]
        live, rebuilt = await state_matches_pg(private)
        assert live == rebuilt

    async def test_cli_rebuild_repairs_a_wrong_state(self, private: Settings, flusher: Redis) -> None:
        app = create_app(private, ruleset=parse_ruleset(POOL_RULES, path=Path("t.yaml")))
        async with authed(app) as client:
            for name in ("ann", "ben"):
                await owner(client, name)
            await pool(client, "sales", ["ann", "ben"])
            for i in range(3):
                await post_one(client, lead(i))
        await flusher.hset(f"{private.redis_prefix}:{{routing}}:open", mapping={"ann": 99, "zed": 4})
        live, rebuilt = await state_matches_pg(private)
        assert live != rebuilt
        proc = await asyncio.to_thread(leadroute, "routing", "rebuild", env=cli_env(private))
        assert proc.returncode == 0, proc.stderr
        assert "rebuilt" in proc.stdout
        live, rebuilt = await state_matches_pg(private)
        assert live == rebuilt
        assert live[0] == {"ann": 2, "ben": 1}

    async def test_routing_keys_have_no_ttl(self, private: Settings, flusher: Redis) -> None:
        app = create_app(private, ruleset=parse_ruleset(POOL_RULES, path=Path("t.yaml")))
        async with authed(app) as client:
            await owner(client, "ann", capacity={"max_per_day": 10})
            await pool(client, "sales", ["ann"])
            await post_one(client, lead(1, "acme.example"))
        keys = [k async for k in flusher.scan_iter(match=f"{private.redis_prefix}:*")]
        assert len(keys) >= 6
        assert all("{routing}" in k.decode() for k in keys)
        assert [await flusher.ttl(k) for k in keys] == [-1] * len(keys)
        assert len({key_slot(k) for k in keys}) == 1  # one Cluster slot: every script is Cluster-safe


class TestFlushAllAcrossProcesses:
    async def test_two_services_keep_capacity_and_rotation_through_a_flush(
        self, private: Settings, flusher: Redis, tmp_path: Path
    ) -> None:
        rules = tmp_path / "rules.yaml"
        rules.write_text(POOL_RULES)
        one = serve_on(private, rules, tmp_path / "one.log")
        two = serve_on(private, rules, tmp_path / "two.log")
        try:
            await asyncio.to_thread(one.wait_ready)
            await asyncio.to_thread(two.wait_ready)
            names = [f"rep{i}" for i in range(5)]
            async with httpx.AsyncClient(timeout=60, headers=AUTH) as http:
                for name in names:
                    r = await http.put(
                        f"{one.base}/v1/owners/{name}", json={"name": name, "capacity": {"max_open": 28}}
                    )
                    assert r.status_code == 200, r.text
                r = await http.put(
                    f"{two.base}/v1/pools/sales", json={"members": names, "fallback": "overflow"}
                )
                assert r.status_code == 200, r.text
                gate = asyncio.Semaphore(24)
                done = 0

                async def post(i: int) -> dict[str, Any]:
                    nonlocal done
                    async with gate:
                        r = await http.post(f"{(one, two)[i % 2].base}/v1/leads", json=lead(i))
                    done += 1
                    if done == 50:  # 24 requests are in flight right now
                        await flusher.flushall()
                    assert r.status_code == 201, r.text
                    result: dict[str, Any] = r.json()
                    return result

                decisions = await asyncio.gather(*(post(i) for i in range(150)))
        finally:
            await asyncio.to_thread(one.stop)
            await asyncio.to_thread(two.stop)
        assigned = collections.Counter(d["owner"] for d in decisions if d["owner"] is not None)
        assert sum(assigned.values()) == 140
        assert assigned == dict.fromkeys(names, 28)  # nobody over capacity, nobody short
        assert sum(1 for d in decisions if d["status"] == "unassigned" and d["reason"]) == 10
        assert await open_per_owner(private) == dict.fromkeys(names, 28)
        live, rebuilt = await state_matches_pg(private)
        assert live == rebuilt
        logs = (tmp_path / "one.log").read_text() + (tmp_path / "two.log").read_text()
        # Both instances noticed the flush; exactly one rebuilt (the start-up build logs at INFO).
        rebuilt = [ln for ln in logs.splitlines() if "WARNING" in ln and "routing state rebuilt" in ln]
        assert len(rebuilt) == 1, logs

    async def test_rotation_is_even_before_capacity_binds(self, private: Settings, flusher: Redis) -> None:
        app = create_app(private, ruleset=parse_ruleset(POOL_RULES, path=Path("t.yaml")))
        async with authed(app) as client:
            for name in ("ann", "ben", "cat", "dan"):
                await owner(client, name)
            await pool(client, "sales", ["ann", "ben", "cat", "dan"])
            first = [(await post_one(client, lead(i)))["owner"] for i in range(10)]
            await flusher.flushall()
            second = [(await post_one(client, lead(100 + i)))["owner"] for i in range(10)]
        counts = collections.Counter(first + second)
        assert counts == {"ann": 5, "ben": 5, "cat": 5, "dan": 5}


class TestFailedTransaction:
    """A claim whose transaction rolls back is undone -- unless a rebuild already recounted."""

    async def test_unclaim_restores_the_count_and_skips_after_a_rebuild(
        self, settings: Settings, clean: None
    ) -> None:
        redis: Redis = Redis.from_url(str(settings.redis_url))
        assert settings.database_url is not None
        conn = await connect(settings.database_url)
        router = Router(redis, f"{settings.redis_prefix}:unclaim", database_url=settings.database_url)
        try:
            await put_owner(conn, msgspec.convert({"id": "ann", "name": "Ann"}, OwnerIn))
            await put_pool(conn, PoolIn(id="p", members=["ann"]))
            await router.rebuild(conn)
            claims: list[Assignment] = []

            async def failing() -> None:
                async with conn.transaction():
                    claims.append(
                        await router.assign(
                            conn,
                            lead_id=uuid.uuid4(),
                            company_domain=None,
                            targets=[PoolTarget(rule="r", pool="p")],
                            fallback="unassigned",
                            now=datetime.now(UTC),
                        )
                    )
                    assert (await router.state.read()).open == {"ann": 1}
                    raise RuntimeError("boom")

            for rebuild_between in (False, True):
                with pytest.raises(RuntimeError, match="boom"):
                    await failing()
                placed = claims[-1]
                if rebuild_between:
                    await router.rebuild(conn)  # counts PostgreSQL: nothing open
                await router.unclaim(placed)
                assert (await router.state.read()).open == {}
        finally:
            keys = [k async for k in redis.scan_iter(match=f"{settings.redis_prefix}:unclaim:*")]
            if keys:
                await redis.delete(*keys)
            await redis.aclose()
            await conn.close()
