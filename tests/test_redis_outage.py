"""Redis down does not stop intake: leads are stored, scored and answered 202 ``pending``, then
routed in arrival order, exactly once, when Redis is back. Runs its own Redis on a free port."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.exceptions
from redis import Redis as SyncRedis

from conftest import FakeClock
from leadroute.config import Settings
from process_support import free_port
from sla_support import assert_routing_consistent, instance, sla_rules
from support import connection, get_lead, lead, owner, pool, post_one
from test_workflow_log import drain


class OwnRedis:
    """A redis-server of this test's own, on a free port, that the test stops and starts."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if SyncRedis(port=self.port, socket_timeout=0.5).ping():
                    return
            except OSError:
                pass
            except Exception:
                pass
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class TestRedisDown:
    """Intake keeps taking leads while the routing state is unreachable, and nothing is lost."""

    async def test_leads_taken_while_redis_is_down_are_routed_in_order_once_it_is_back(
        self, settings: Settings, clean: None, clock: FakeClock, own_redis: OwnRedis
    ) -> None:
        rules = sla_rules(30)
        async with instance(settings, rules, clock, redis_url=own_redis.url) as client:
            await owner(client, "ann", capacity={"max_open": 2})
            await owner(client, "ben", capacity={"max_open": 1})
            await pool(client, "sales", ["ann", "ben"])
            before = await post_one(client, lead(0))
            assert before["status"] == "assigned"

            own_redis.stop()
            answers = []
            for n in (1, 2, 3):
                clock.advance(seconds=1)
                r = await client.post("/v1/leads", json=lead(n))
                assert r.status_code == 202, r.text
                answers.append(r.json())
            assert [a["status"] for a in answers] == ["pending"] * 3
            assert all(a["owner"] is None for a in answers)
            with pytest.raises(redis.exceptions.ConnectionError):  # still down: nothing routed or lost
                await drain(client)

            own_redis.start()  # empty: the state is rebuilt from PostgreSQL first
            assert await drain(client) == 2
            owners = [(await get_lead(client, a["lead_id"]))["owner"] for a in answers]
            # in arrival order: two slots were left (ann 1 of 2, ben 0 of 1); the third waits
            assert None not in owners[:2]
            assert owners[2] is None
            third = await get_lead(client, answers[2]["lead_id"])
            assert (third["status"], third["workflow"]["queue"]) == ("unassigned", "unassigned")
            assert await drain(client) == 0
            await assert_routing_consistent(client)

        async with connection(settings) as conn:
            routed = await conn.fetch(
                "SELECT lead_id, count(*) AS n FROM lead_events"
                " WHERE payload ->> 'cause' = 'queue_drain' GROUP BY lead_id"
            )
        assert sorted(r["n"] for r in routed) == [1, 1, 1]  # each pending lead routed exactly once
