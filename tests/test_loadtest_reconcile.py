"""The workflow load test's own machinery: a tiny real run passes, and its reconciliation catches
every kind of damage it claims to (run against the run's kept database and Redis keys)."""

from __future__ import annotations

import asyncio
import math
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from types import SimpleNamespace

import pytest
from loadtests import identity
from loadtests import reconcile as rc
from loadtests.serverstats import Histogram, difference, quantile
from loadtests.workflows import Options, RunResult, run
from redis.asyncio import Redis

from conftest import Servers
from leadroute.routing import RoutingKeys
from leadroute.store.db import Connection, connect

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture(scope="module")
def tiny_run(servers: Servers) -> Iterator[RunResult]:
    """20 workflows for 15 s from two Locust processes, against a fresh database (kept for the tests)."""
    result = run(
        Options(
            workflows=20,
            seconds=15,
            processes=2,
            pace="0.3-1",
            poll_seconds=1,
            database_url=servers.admin_dsn,
            redis_url=servers.redis_url,
            keep=True,
        )
    )
    try:
        yield result
    finally:

        async def drop() -> None:
            admin = await connect(servers.admin_dsn)
            name = result.database_url.rsplit("/", 1)[-1]
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
            redis = Redis.from_url(result.redis_url)
            keys = [k async for k in redis.scan_iter(match=f"{result.redis_prefix}:*")]
            if keys:
                await redis.delete(*keys)
            await redis.aclose()

        asyncio.run(drop())
        shutil.rmtree(result.records.parent, ignore_errors=True)


class _Rollback(Exception):
    pass


@asynccontextmanager
async def _database(result: RunResult) -> AsyncIterator[Connection]:
    conn = await connect(result.database_url)
    try:
        yield conn
    finally:
        await conn.close()


async def _damaged(
    result: RunResult, damage: str, check: Callable[[Connection], Awaitable[list[rc.Check]]]
) -> list[rc.Check]:
    """The checks run after ``damage`` (SQL), in a transaction that is rolled back."""
    async with _database(result) as conn:
        found: list[rc.Check] = []
        try:
            async with conn.transaction():
                await conn.execute(damage)
                found = await check(conn)
                raise _Rollback
        except _Rollback:
            pass
        return found


def _failed(checks: list[rc.Check]) -> set[str]:
    return {c.name for c in checks if not c.ok}


class TestTinyRun:
    """A real run of the whole command passes, from two Locust processes of their own."""

    def test_passes(self, tiny_run: RunResult) -> None:
        assert tiny_run.ok, tiny_run.table
        assert tiny_run.recorded.leads
        assert tiny_run.recorded.actions["close"] > 0
        assert "step intake" in tiny_run.stats["latency"]

    def test_two_processes_have_their_own_seeds_and_leads(self, tiny_run: RunResult) -> None:
        processes = tiny_run.recorded.processes
        assert sorted(p["worker"] for p in processes) == [0, 1]
        seeds = {p["seed"] for p in processes}
        assert len(seeds) == 2
        posted_under = {key.split("-")[1] for key in tiny_run.recorded.sent}
        assert posted_under == {str(s) for s in seeds}  # both posted, each under its own seed


class TestReconciliationCatches:
    """Each check fails on the damage it is there to find (the damage is rolled back after)."""

    async def test_a_lead_answered_but_not_stored(self, tiny_run: RunResult) -> None:
        recorded = tiny_run.recorded._replace(leads={**tiny_run.recorded.leads, "lg-0-0": str(uuid.uuid4())})
        async with _database(tiny_run) as conn:
            assert "every 2xx lead is stored" in _failed(await rc.reconcile(conn, recorded))

    async def test_a_lead_stored_twice(self, tiny_run: RunResult) -> None:
        lead = next(iter(tiny_run.recorded.leads.values()))
        damage = f"""INSERT INTO lead_events (lead_id, kind, payload)
                     VALUES ('{lead}', 'lead.received', '{{}}'::jsonb)"""
        found = await _damaged(tiny_run, damage, lambda c: rc.reconcile(c, tiny_run.recorded))
        assert _failed(found) == {"every lead is stored exactly once"}

    async def test_an_event_answered_but_not_stored(self, tiny_run: RunResult) -> None:
        recorded = tiny_run.recorded._replace(events={**tiny_run.recorded.events, "nope": "x"})
        async with _database(tiny_run) as conn:
            assert _failed(await rc.reconcile(conn, recorded)) == {"every 2xx event is stored once"}

    async def test_a_lead_without_owner_or_queue(self, tiny_run: RunResult) -> None:
        damage = """UPDATE leads SET status = 'assigned', owner_id = NULL
                     WHERE id = (SELECT id FROM leads LIMIT 1)"""
        found = await _damaged(tiny_run, damage, lambda c: rc.reconcile(c, tiny_run.recorded))
        assert "every lead has an owner, a queue with a reason, or is closed" in _failed(found)

    async def test_an_owner_over_capacity(self, tiny_run: RunResult) -> None:
        damage = """UPDATE owners SET max_open = 0 WHERE id IN (
                        SELECT a.owner_id FROM assignments a JOIN leads l ON l.id = a.lead_id
                         WHERE a.ended_at IS NULL AND l.status NOT IN ('closed', 'unassigned'))"""
        open_leads = await _open_leads(tiny_run)
        if not open_leads:
            pytest.skip("every workflow of the run was closed")
        found = await _damaged(tiny_run, damage, lambda c: rc.reconcile(c, tiny_run.recorded))
        assert _failed(found) == {"no owner over capacity"}

    async def test_a_timer_overdue_or_fired_twice(self, tiny_run: RunResult) -> None:
        columns = "lead_id, assignment_id, owner_id, pool_id, minutes, on_breach, started_at, due_at, status"
        closed = "lead_id IN (SELECT id FROM leads WHERE status = 'closed')"
        overdue = f"""INSERT INTO sla_timers ({columns})
            SELECT lead_id, assignment_id, owner_id, pool_id, minutes, on_breach,
                   now() - interval '2 hours', now() - interval '1 hour', 'pending'
              FROM sla_timers WHERE {closed} LIMIT 1"""
        fired = f"""INSERT INTO sla_timers ({columns})
            SELECT lead_id, assignment_id, owner_id, pool_id, minutes, on_breach, started_at, due_at, 'fired'
              FROM sla_timers WHERE {closed} LIMIT 1"""
        twice = f"{fired}; {fired}"

        async def timers(c: Connection) -> list[rc.Check]:
            return await rc.reconcile_timers(c, slack_seconds=5)

        assert _failed(await _damaged(tiny_run, overdue, timers)) == {"every due SLA timer fired"}
        assert _failed(await _damaged(tiny_run, twice, timers)) == {"each SLA timer fired at most once"}

    async def test_redis_disagreeing_with_postgres(self, tiny_run: RunResult) -> None:
        redis = Redis.from_url(tiny_run.redis_url)
        key = RoutingKeys(tiny_run.redis_prefix).open
        try:
            async with _database(tiny_run) as conn:
                assert (await rc.reconcile_routing(conn, redis, tiny_run.redis_prefix)).ok
                await redis.hincrby(key, "inb-050", 1)
                try:
                    check = await rc.reconcile_routing(conn, redis, tiny_run.redis_prefix)
                finally:
                    await redis.hincrby(key, "inb-050", -1)
            assert not check.ok
            assert "inb-050" in check.detail
        finally:
            await redis.aclose()


async def _open_leads(result: RunResult) -> int:
    async with _database(result) as conn:
        return int(
            await conn.fetchval("SELECT count(*) FROM leads WHERE status NOT IN ('closed', 'unassigned')")
        )


class TestProcessIdentity:
    """Each forked Locust process gets its own seed and user numbers, never its parent's."""

    def test_seeds_differ_per_worker(self) -> None:
        seeds = {identity.process_seed(7, worker) for worker in range(100)}
        assert len(seeds) == 100
        assert identity.process_seed(7, 0) != identity.process_seed(8, 0)

    def test_a_fork_makes_a_new_identity(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv(identity.RUN_SEED_VARIABLE, "42")
        monkeypatch.setattr(identity, "_IDENTITY", None)
        parent = identity.process_identity(SimpleNamespace(runner=SimpleNamespace(worker_index=0)))
        assert next(parent.users) == 1
        monkeypatch.setattr("loadtests.identity.os.getpid", lambda: -1)  # as in a forked child
        child = identity.process_identity(SimpleNamespace(runner=SimpleNamespace(worker_index=1)))
        assert child.seed != parent.seed
        assert (child.worker, next(child.users)) == (1, 1)


class TestQuantiles:
    """Quantiles come from bucket differences, interpolated like PromQL's histogram_quantile."""

    def test_difference_and_interpolation(self) -> None:
        key = ("leadroute_step_seconds", "intake")
        before: dict[tuple[str, str], Histogram] = {
            key: Histogram(((0.01, 5), (0.1, 5), (math.inf, 5)), 5, 0.02)
        }
        after = {key: Histogram(((0.01, 5), (0.1, 105), (math.inf, 105)), 105, 5.0)}
        h = difference(after, before)[key]
        assert h.observed == 100
        assert quantile(0.5, h) == pytest.approx(0.055)
        assert quantile(0.99, h) == pytest.approx(0.0991)
