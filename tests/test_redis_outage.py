"""Redis down does not stop intake: leads are stored, scored and answered 202 ``pending``, then
routed in arrival order, exactly once, when Redis is back. Runs its own Redis on a free port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.exceptions

from conftest import FakeClock
from fault_support import OwnRedis
from leadroute.config import Settings
from sla_support import assert_routing_consistent, instance, sla_rules
from support import connection, get_lead, lead, owner, pool, post_one
from test_workflow_log import drain


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.close()


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
