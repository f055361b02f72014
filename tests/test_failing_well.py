"""Failing well, with real processes and servers of the tests' own that the tests break.

`leadroute serve` runs against a PostgreSQL and a Redis started for this module on free ports
(:mod:`fault_support`); the tests stop and start them under it, kill its workers and its
supervisor, and SIGTERM it with a request in flight.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
import pytest

from fault_support import Deps as BaseDeps
from fault_support import own_servers
from leadroute.server import EXIT_DEPENDENCY, backoff
from process_support import ROOT, Served
from support import AUTH

_emails = itertools.count()


class Deps(BaseDeps):
    """This module's own servers, and ``leadroute serve`` on them."""

    def serve(self, log: Path, **values: str) -> Served:
        values = {"rules_path": str(ROOT / "rules"), "log_level": "INFO", "db_pool_min": "1"} | values
        return Served(log, self.settings, port=0, **values)


@pytest.fixture(scope="module")
def deps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deps]:
    with own_servers(tmp_path_factory, prefix="fault") as found:
        yield Deps(found.pg, found.redis, prefix="fault")


@pytest.fixture
def up(deps: Deps) -> Iterator[Deps]:
    """Both servers running when the test starts, and again after it (whatever it stopped)."""
    deps.ensure_up()
    yield deps
    deps.ensure_up()


def post_lead(base: str) -> httpx.Response:
    lead = {"email": f"lead{next(_emails)}@acme{os.getpid()}.example", "title": "VP Sales", "country": "US"}
    return httpx.post(base + "/v1/leads", json=lead, timeout=30, headers=AUTH)


def wait_until(condition: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if value := condition():
                return value
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def workers_of(proc: psutil.Process) -> set[int]:
    found = set()
    for child in proc.children():
        try:
            if "leadroute" in " ".join(child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE:
                found.add(child.pid)
        except psutil.Error:
            continue
    return found


@pytest.fixture
def service(up: Deps, tmp_path: Path) -> Iterator[Served]:
    served = up.serve(tmp_path / "serve.log")
    try:
        served.wait_ready()
        yield served
    finally:
        served.stop()


class TestDependencyOutages:
    """PostgreSQL or Redis down: 503 + Retry-After, one log line, ready 503, recovery by itself."""

    def test_postgres_down_answers_503_then_recovers_without_a_restart(
        self, up: Deps, service: Served
    ) -> None:
        assert post_lead(service.base).status_code == 201
        up.pg.stop()
        for _ in range(5):
            r = post_lead(service.base)
            assert r.status_code == 503, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
            assert int(r.headers["retry-after"]) > 0
            assert r.json()["type"].endswith("/dependency-unavailable")
            assert "postgres does not answer" in r.json()["detail"]
        ready = httpx.get(service.base + "/health/ready", timeout=10)
        assert ready.status_code == 503
        assert ready.json()["checks"]["postgres"].startswith("unavailable")
        assert ready.json()["checks"]["redis"] == "ok"
        log = service.log.read_text()
        assert log.count("postgres unavailable (") == 1  # one line for the outage, not one a request
        assert "Traceback" not in log

        up.pg.start()
        wait_until(lambda: post_lead(service.base).status_code == 201, what="a lead posted after recovery")
        assert httpx.get(service.base + "/health/ready", timeout=10).status_code == 200
        assert "postgres is back after" in service.log.read_text()

    def test_redis_down_answers_503_then_recovers_without_a_restart(self, up: Deps, service: Served) -> None:
        """Intake goes on (202 pending, routed once Redis is back); what needs routing now is a 503."""
        first = post_lead(service.base)
        assert first.status_code == 201
        up.redis.stop()
        started = time.monotonic()
        taken = post_lead(service.base)
        assert time.monotonic() - started < 5  # one quick retry, not redis-py's default ten
        assert (taken.status_code, taken.json()["status"]) == (202, "pending"), taken.text
        lead_id = first.json()["lead_id"]
        r = httpx.post(f"{service.base}/v1/assignments/{lead_id}/reassign", json={}, timeout=30, headers=AUTH)
        assert (r.status_code, r.json()["type"].split("/")[-1]) == (503, "dependency-unavailable"), r.text
        assert "redis does not answer" in r.json()["detail"]
        assert "retry-after" in r.headers
        ready = httpx.get(service.base + "/health/ready", timeout=10)
        assert (ready.status_code, ready.json()["checks"]["postgres"]) == (503, "ok")
        assert ready.json()["checks"]["redis"].startswith("unavailable")

        up.redis.start()  # empty: the routing state is rebuilt from PostgreSQL by the next claim
        wait_until(lambda: post_lead(service.base).status_code == 201, what="a lead posted after recovery")
        assert httpx.get(service.base + "/health/ready", timeout=10).status_code == 200
        log = service.log.read_text()
        assert log.count("redis unavailable (") == 1
        assert "Traceback" not in log

    def test_a_server_restart_is_not_surfaced_to_the_next_request(self, up: Deps, service: Served) -> None:
        """Pooled connections to a restarted server are stale: they are replaced, not reported."""
        for _ in range(3):
            assert post_lead(service.base).status_code == 201  # several pooled connections in use
        up.pg.stop()
        up.pg.start()
        time.sleep(0.5)
        assert [post_lead(service.base).status_code for _ in range(3)] == [201] * 3
        up.redis.stop()
        up.redis.start()
        assert [post_lead(service.base).status_code for _ in range(3)] == [201] * 3


class TestSupervisor:
    """LEADROUTE_WORKERS=N: backoff instead of giving up, workers die with it, SIGTERM drains."""

    def test_backoff_doubles_and_is_capped(self) -> None:
        assert [backoff(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
        assert backoff(20) == backoff(200) == 30.0

    def test_a_worker_lost_during_a_postgres_outage_comes_back_with_postgres(
        self, up: Deps, tmp_path: Path
    ) -> None:
        """The old supervisor stopped the healthy worker and exited 1 here, for good."""
        served = up.serve(tmp_path / "serve.log", workers="2")
        try:
            served.wait_ready()
            parent = psutil.Process(served.proc.pid)
            first = wait_until(lambda: len(workers_of(parent)) == 2 and workers_of(parent), what="2 workers")
            # both serving, not one serving and one still starting (which the outage would stop)
            started = "Application startup complete"
            wait_until(lambda: served.log.read_text().count(started) == 2, what="both workers started")
            up.pg.stop()
            victim = min(first)
            os.kill(victim, signal.SIGKILL)
            # replacements fail start-up (exit 75) and are retried with backoff; the survivor serves
            refused = "could not start: PostgreSQL or Redis does not answer"
            wait_until(lambda: refused in served.log.read_text(), what="a refused start-up")
            time.sleep(4)
            assert served.proc.poll() is None, served.log.read_text()
            try:
                live = httpx.get(served.base + "/health/live", timeout=15)
            except httpx.HTTPError as exc:
                pytest.fail(f"the surviving worker does not answer ({exc!r}):\n{served.log.read_text()}")
            assert live.status_code == 200
            assert post_lead(served.base).status_code == 503
            assert (max(first)) in workers_of(parent)  # the healthy worker was left alone

            up.pg.start()
            wait_until(lambda: len(workers_of(parent)) == 2, timeout=60, what="the replacement worker")
            wait_until(lambda: post_lead(served.base).status_code == 201, what="a lead after recovery")
            log = served.log.read_text()
            assert f"exit code {EXIT_DEPENDENCY}" not in log or "stopping" not in log
            assert "failed to start, none is serving" not in log
        finally:
            assert served.stop() == 0, served.log.read_text()

    def test_kill_9_of_the_supervisor_takes_its_workers_with_it(self, up: Deps, tmp_path: Path) -> None:
        served = up.serve(tmp_path / "serve.log", workers="2")
        try:
            served.wait_ready()
            parent = psutil.Process(served.proc.pid)
            workers = wait_until(lambda: len(workers_of(parent)) == 2 and workers_of(parent))
            served.proc.kill()
            served.proc.wait(timeout=10)
            procs = [psutil.Process(pid) for pid in workers]
            _, alive = psutil.wait_procs(procs, timeout=30)
            assert alive == [], "workers left running without their supervisor"
        finally:
            served.stop()

    @pytest.mark.parametrize("workers", ["1", "2"])
    async def test_sigterm_lets_a_slow_request_finish_with_connection_close(
        self, up: Deps, tmp_path: Path, workers: str
    ) -> None:
        served = up.serve(tmp_path / "serve.log", workers=workers)
        try:
            await asyncio.to_thread(served.wait_ready)
            blocker = await asyncpg.connect(up.pg.dsn)
            try:
                async with blocker.transaction():
                    # GET /v1/owners now waits for this lock: a request in flight for as long as we like
                    await blocker.execute("LOCK TABLE owners IN ACCESS EXCLUSIVE MODE")
                    slow = asyncio.create_task(
                        asyncio.to_thread(httpx.get, served.base + "/v1/owners", timeout=60, headers=AUTH)
                    )
                    await asyncio.sleep(1.0)
                    served.proc.send_signal(signal.SIGTERM)
                    await asyncio.sleep(1.5)
                    assert not slow.done()
                    assert served.proc.poll() is None  # still draining
                r = await slow
            finally:
                await blocker.close()
            assert r.status_code == 200, r.text
            assert r.headers.get("connection") == "close"
            assert await asyncio.to_thread(served.proc.wait, 30) == 0
            with pytest.raises(httpx.ConnectError):  # and nothing new is accepted
                await asyncio.to_thread(httpx.get, served.base + "/health/live", timeout=2)
        finally:
            served.stop()


class TestReconcileAfterACrash:
    """A worker killed mid-flight leaves Redis counts too high; the supervisor has them reconciled."""

    def test_kill_9_of_a_worker_triggers_a_reconcile_that_fixes_drift(self, up: Deps, tmp_path: Path) -> None:
        served = up.serve(tmp_path / "serve.log", workers="2", reconcile_minutes="0")
        try:
            served.wait_ready()
            assert post_lead(served.base).status_code == 201
            state = httpx.get(served.base + "/v1/routing/state", timeout=10, headers=AUTH).json()
            owner = next(iter(state["open"]))
            # what a worker killed after its commit but before its Redis release leaves behind
            drifted = asyncio.run(_bump_open(up.redis.url, owner, 2))
            assert drifted == state["open"][owner] + 2
            parent = psutil.Process(served.proc.pid)
            workers = wait_until(
                lambda: len(workers_of(parent)) == 2 and workers_of(parent), what="2 workers"
            )
            started = "Application startup complete"  # the survivor handles SIGUSR1 once started
            wait_until(lambda: served.log.read_text().count(started) == 2, what="both workers started")
            os.kill(min(workers), signal.SIGKILL)

            def fixed() -> bool:
                now = httpx.get(served.base + "/v1/routing/state", timeout=10, headers=AUTH).json()
                return bool(now["open"].get(owner) == state["open"][owner])

            wait_until(fixed, timeout=30, what="the reconcile")
            assert "routing counts drifted from PostgreSQL by 2 lead(s)" in served.log.read_text()
        finally:
            assert served.stop() == 0, served.log.read_text()


async def _bump_open(redis_url: str, owner: str, by: int) -> int:
    from redis.asyncio import Redis

    from leadroute.routing import RoutingKeys

    redis = Redis.from_url(redis_url)
    try:
        return int(await redis.hincrby(RoutingKeys("fault").open, owner, by))
    finally:
        await redis.aclose()
