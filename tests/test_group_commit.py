"""Group commit: concurrent single-lead intakes share a transaction, and one failing lead fails alone.

Real PostgreSQL and Redis; each test starts an instance with one group writer
(``db_pool_max=4``) so that concurrent posts must queue into groups.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from litestar.testing import AsyncTestClient
from prometheus_client import REGISTRY

from leadroute.config import Settings
from leadroute.errors import IdempotencyConflict
from leadroute.runtime import Runtime
from leadroute.workflow.intake import IntakeResult, submit_lead
from sla_support import assert_routing_consistent, in_app, instance
from support import POOL_RULES, count, lead, setup_pool

Client = AsyncTestClient[Any]


def _groups() -> tuple[float, float]:
    """(groups written, leads in them) so far, from the process's metrics."""
    n = REGISTRY.get_sample_value("leadroute_commit_group_leads_count") or 0.0
    leads = REGISTRY.get_sample_value("leadroute_commit_group_leads_sum") or 0.0
    return n, leads


def _splits() -> float:
    return REGISTRY.get_sample_value("leadroute_commit_group_splits_total") or 0.0


async def _submit_all(client: Client, bodies: list[dict[str, Any]], keys: list[str | None]) -> list[Any]:
    """Submit every lead at once on the app's own loop (the test client sends one request at a
    time); each result is an :class:`IntakeResult` or the exception its intake raised."""

    async def submit(rt: Runtime) -> list[Any]:
        return list(
            await asyncio.gather(
                *(submit_lead(rt, json.dumps(b).encode(), k) for b, k in zip(bodies, keys, strict=True)),
                return_exceptions=True,
            )
        )

    return await in_app(client, submit)


def _created(results: list[Any]) -> list[IntakeResult]:
    assert all(isinstance(r, IntakeResult) and r.created for r in results), results
    return results


class TestSharing:
    async def test_concurrent_leads_share_transactions_and_each_is_stored_once(
        self, settings: Settings, clean: None
    ) -> None:
        async with instance(settings, POOL_RULES, _clock(), db_pool_max=4, group_commit=16) as c:
            await setup_pool(c, ["ana", "ben", "cy"])
            groups_before, leads_before = _groups()
            bodies = [lead(i) for i in range(60)]
            keys: list[str | None] = [f"k-{i}" for i in range(60)]
            answers = _created(await _submit_all(c, bodies, keys))
            groups_after, leads_after = _groups()
            assert leads_after - leads_before == 60  # every lead went through a group
            assert groups_after - groups_before < 60  # and some shared a transaction
            ids = {a.decision.lead_id for a in answers}
            assert len(ids) == 60
            assert await count(settings, "SELECT count(*) FROM leads") == 60
            assert (
                await count(settings, "SELECT count(*) FROM idempotency_keys WHERE response IS NOT NULL")
                == 60
            )
            await assert_routing_consistent(c)
            # a retry of each gets its stored answer, from a group too
            again = await _submit_all(c, bodies, keys)
            assert [a.created for a in again] == [False] * 60
            assert [a.decision.lead_id for a in again] == [a.decision.lead_id for a in answers]
            assert await count(settings, "SELECT count(*) FROM leads") == 60

    async def test_one_group_commit_setting_writes_each_alone(self, settings: Settings, clean: None) -> None:
        async with instance(settings, POOL_RULES, _clock(), db_pool_max=4, group_commit=1) as c:
            await setup_pool(c, ["ana"])
            groups_before, _ = _groups()
            _created(await _submit_all(c, [lead(i) for i in range(10)], [None] * 10))
            assert _groups()[0] == groups_before  # no group at all: run() itself
            assert await count(settings, "SELECT count(*) FROM leads") == 10


class TestFailureIsolation:
    async def test_a_failing_lead_fails_alone_and_the_others_are_written_once(
        self, settings: Settings, clean: None
    ) -> None:
        async with instance(settings, POOL_RULES, _clock(), db_pool_max=4, group_commit=16) as c:
            await setup_pool(c, ["ana", "ben"])
            first = await c.post("/v1/leads", json=lead(1000), headers={"Idempotency-Key": "taken"})
            assert first.status_code == 201
            splits_before = _splits()
            # 30 new leads and, among them, three reusing the taken key with another body (422 each)
            bodies = [lead(i) for i in range(30)] + [lead(2000 + i) for i in range(3)]
            keys: list[str | None] = [*(f"n-{i}" for i in range(30)), "taken", "taken", "taken"]
            order = list(range(33))
            order = order[::2] + order[1::2]  # the conflicting ones land inside groups, not at an end
            results = await _submit_all(c, [bodies[i] for i in order], [keys[i] for i in order])
            by_index = dict(zip(order, results, strict=True))
            _created([by_index[i] for i in range(30)])
            for i in range(30, 33):
                assert isinstance(by_index[i], IdempotencyConflict), by_index[i]
            assert await count(settings, "SELECT count(*) FROM leads") == 31
            assert (
                await count(settings, "SELECT count(*) FROM lead_events WHERE kind = 'lead.received'") == 31
            )
            assert _splits() > splits_before  # the conflicts were inside shared transactions
            await assert_routing_consistent(c)  # the rolled-back groups gave their claims back


def _clock() -> Any:
    from conftest import FakeClock

    return FakeClock()


class TestCancelledCallers:
    async def test_callers_gone_mid_group_leave_their_leads_stored_once_and_counted(
        self, settings: Settings, clean: None
    ) -> None:
        """A caller cancelled while its group is being written (its client went away) does not stop
        the group: its lead is committed with the others, and Redis counts exactly what is stored."""
        async with instance(settings, POOL_RULES, _clock(), db_pool_max=4, group_commit=16) as c:
            await setup_pool(c, ["ana", "ben"])

            async def storm(rt: Runtime) -> int:
                tasks = [
                    asyncio.ensure_future(submit_lead(rt, json.dumps(lead(n)).encode(), f"c-{n}"))
                    for n in range(40)
                ]
                for n, task in enumerate(tasks):
                    await asyncio.sleep(0.002 * (n % 7))
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await asyncio.gather(*rt.groups.writers)  # the groups started finish on their own
                return sum(1 for t in tasks if not t.cancelled())

            answered = await in_app(c, storm)
            stored = await count(settings, "SELECT count(*) FROM leads")
            assert answered <= stored
            assert await count(settings, "SELECT count(*) FROM idempotency_keys WHERE response IS NULL") == 0
            await assert_routing_consistent(c)
