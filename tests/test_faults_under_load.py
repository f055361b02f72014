"""Faults under load, each ending with a reconciliation of every answer against PostgreSQL and Redis.

`leadroute serve` (two workers) takes a steady stream of leads from clients that behave as forms
and CRMs do (an ``Idempotency-Key`` per lead; after a 503, a 429 or a dropped connection they send
the same lead again after ``Retry-After``) while the test kills a worker with -9, stops
PostgreSQL, stops Redis, or restarts Redis, on servers of its own. Then:

- every lead answered 2xx is in PostgreSQL exactly once (its key names it; no email twice);
- every lead has an owner, or a queue with a reason (none is left pending);
- no owner holds more than their capacity;
- Redis' open counts agree with PostgreSQL.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest

from fault_support import Deps, own_servers
from process_support import ROOT, Served
from support import AUTH

CLIENTS = 12
"""Clients posting at once, each one lead after another."""

_numbers = itertools.count()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deps]:
    with own_servers(tmp_path_factory, prefix="load") as found:
        yield found


@pytest.fixture
def service(servers: Deps, tmp_path: Path) -> Iterator[Served]:
    servers.ensure_up()
    served = Served(
        tmp_path / "serve.log",
        servers.settings,
        rules_path=str(ROOT / "rules"),
        workers="2",
        db_pool_min="1",
        sla_poll_seconds="0.2",
        reconcile_minutes="0.05",
        log_level="WARNING",
    )
    try:
        served.wait_ready()
        yield served
    finally:
        served.stop()
        servers.ensure_up()


class Load:
    """Clients posting new leads until stopped, retrying each lead (same key) until it is answered."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.answered: dict[str, str] = {}  # idempotency key -> lead id of its 2xx answer
        self.retried = 0
        self._stop = asyncio.Event()

    async def _client(self, http: httpx.AsyncClient) -> None:
        while not self._stop.is_set():
            n = next(_numbers)
            key = f"load-{os.getpid()}-{n}"
            body = {"email": f"load{n}@firm{n % 50}.example", "title": "VP Sales", "country": "US"}
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    r = await http.post("/v1/leads", json=body, headers={"Idempotency-Key": key})
                except httpx.HTTPError:
                    r = None
                if r is not None and r.status_code in (200, 201, 202):
                    self.answered[key] = r.json()["lead_id"]
                    break
                assert r is None or r.status_code in (429, 503), r.text  # never a 500 or a 4xx
                self.retried += 1
                wait = float(r.headers.get("retry-after", "1")) if r is not None else 0.2
                await asyncio.sleep(min(wait, 1.0))
            else:
                raise AssertionError(f"lead {key} not answered in 120 s")

    async def run(self, fault: Callable[[], Awaitable[None]]) -> None:
        async with httpx.AsyncClient(base_url=self.base, timeout=30, headers=AUTH) as http:
            clients = [asyncio.create_task(self._client(http)) for _ in range(CLIENTS)]
            try:
                await asyncio.sleep(1.5)  # steady load first
                await fault()
                await asyncio.sleep(2)  # load after the fault
            finally:
                self._stop.set()
            await asyncio.gather(*clients)  # each finishes the lead it is sending


async def _until(check: Callable[[], Awaitable[bool]], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.3)


async def reconcile(servers: Deps, service: Served, load: Load) -> None:
    """The four promises in the module docstring."""
    assert load.answered, "the load posted nothing"
    conn = await asyncpg.connect(servers.pg.dsn)
    try:

        async def nothing_pending() -> bool:
            return not await conn.fetchval("SELECT count(*) FROM leads WHERE status = 'pending'")

        await _until(nothing_pending, "pending leads to be routed")
        rows = await conn.fetch(
            "SELECT key, lead_id::text AS lead FROM idempotency_keys"
            " WHERE scope = 'lead' AND key = ANY($1::text[])",
            list(load.answered),
        )
        keys = {r["key"]: r["lead"] for r in rows}
        assert keys == load.answered  # every 2xx answer names the lead its key stored
        stored = await conn.fetchval(
            "SELECT count(*) FROM leads WHERE id = ANY($1::uuid[])", list(keys.values())
        )
        assert stored == len(load.answered)
        twice = await conn.fetch("SELECT email FROM leads GROUP BY email HAVING count(*) > 1")
        assert twice == []
        unplaced = await conn.fetch(
            """SELECT l.id, l.status FROM leads AS l
                 LEFT JOIN assignments AS a ON a.lead_id = l.id AND a.ended_at IS NULL
                WHERE NOT ((l.status IN ('assigned', 'accepted', 'reassigned', 'escalated')
                            AND l.owner_id IS NOT NULL)
                        OR (l.status = 'unassigned' AND a.queue IS NOT NULL AND a.reason IS NOT NULL)
                        OR l.status = 'closed')"""
        )
        assert unplaced == []
        over = await conn.fetch(
            """SELECT o.id FROM owners AS o JOIN leads AS l ON l.owner_id = o.id
                WHERE l.status NOT IN ('closed', 'unassigned', 'pending')
                GROUP BY o.id, o.max_open HAVING o.max_open IS NOT NULL AND count(*) > o.max_open"""
        )
        assert over == []

        async def redis_agrees() -> bool:
            pg = {
                r["owner_id"]: r["n"]
                for r in await conn.fetch(
                    "SELECT owner_id, count(*) AS n FROM leads WHERE owner_id IS NOT NULL"
                    " AND status NOT IN ('closed', 'unassigned', 'pending') GROUP BY owner_id"
                )
            }
            async with httpx.AsyncClient(base_url=service.base, timeout=10, headers=AUTH) as http:
                state = (await http.get("/v1/routing/state")).json()
            return bool(state["present"]) and {o: n for o, n in state["open"].items() if n} == pg

        await _until(redis_agrees, "Redis open counts to agree with PostgreSQL (the reconcile)")
    finally:
        await conn.close()


def _workers(served: Served) -> list[int]:
    parent = psutil.Process(served.proc.pid)
    return sorted(c.pid for c in parent.children() if c.status() != psutil.STATUS_ZOMBIE)


class TestFaultsUnderLoad:
    """Whatever breaks mid-load, every answer a client got holds, and the routing state is whole."""

    async def test_kill_9_of_a_worker(self, servers: Deps, service: Served) -> None:
        load = Load(service.base)

        async def fault() -> None:
            os.kill(_workers(service)[0], signal.SIGKILL)

        await load.run(fault)
        await reconcile(servers, service, load)

    async def test_postgres_stopped_and_started(self, servers: Deps, service: Served) -> None:
        load = Load(service.base)

        async def fault() -> None:
            await asyncio.to_thread(servers.pg.stop)
            await asyncio.sleep(2)
            await asyncio.to_thread(servers.pg.start)

        await load.run(fault)
        assert load.retried > 0  # the outage was seen, and answered 503
        await reconcile(servers, service, load)

    async def test_redis_stopped_and_started(self, servers: Deps, service: Served) -> None:
        load = Load(service.base)

        async def fault() -> None:
            await asyncio.to_thread(servers.redis.stop)
            await asyncio.sleep(2)  # intake goes on: leads are answered 202 pending
            await asyncio.to_thread(servers.redis.start)

        await load.run(fault)
        await reconcile(servers, service, load)

    async def test_redis_restarted(self, servers: Deps, service: Served) -> None:
        load = Load(service.base)

        async def fault() -> None:
            await asyncio.to_thread(servers.redis.stop)
            await asyncio.to_thread(servers.redis.start)  # empty: the state is rebuilt from PostgreSQL

        await load.run(fault)
        await reconcile(servers, service, load)
