"""Two `leadroute serve` processes sharing PostgreSQL and Redis: rotation, weights and capacity stay exact.

Each process is a real service started by the CLI (as in production), on its own port, against
this test run's database and Redis prefix.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from leadroute.config import Settings
from process_support import Served, serve_on
from support import AUTH, POOL_RULES, fetch


@pytest.fixture
def two_services(settings: Settings, clean: None, tmp_path: Path) -> Iterator[tuple[Served, Served]]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(POOL_RULES)
    one = serve_on(settings, rules, tmp_path / "one.log")
    two = serve_on(settings, rules, tmp_path / "two.log")
    try:
        one.wait_ready()
        two.wait_ready()
        yield one, two
    finally:
        one.stop()
        two.stop()


class TestTwoProcesses:
    async def test_1000_concurrent_leads_into_a_pool_of_7_give_142_or_143_each(
        self, two_services: tuple[Served, Served], settings: Settings
    ) -> None:
        one, two = two_services
        names = [f"rep{i}" for i in range(7)]
        async with httpx.AsyncClient(timeout=60, headers=AUTH) as http:
            for name in names:
                r = await http.put(f"{one.base}/v1/owners/{name}", json={"name": name})
                assert r.status_code == 200, r.text
            r = await http.put(f"{two.base}/v1/pools/sales", json={"members": names})
            assert r.status_code == 200, r.text

            gate = asyncio.Semaphore(48)

            async def post(i: int) -> dict[str, Any]:
                base = one.base if i % 2 else two.base
                async with gate:
                    r = await http.post(f"{base}/v1/leads", json={"email": f"p{i}@c{i}.example"})
                assert r.status_code == 201, r.text
                result: dict[str, Any] = r.json()
                return result

            decisions = await asyncio.gather(*(post(i) for i in range(1000)))
        counts = collections.Counter(d["owner"] for d in decisions)
        assert set(counts) == set(names)
        assert set(counts.values()) <= {142, 143}, counts
        rows = await fetch(settings, "SELECT owner_id, count(*) AS n FROM assignments GROUP BY owner_id")
        assert {r["owner_id"]: r["n"] for r in rows} == counts

    async def test_weighted_and_capacity_across_two_processes(
        self, two_services: tuple[Served, Served], settings: Settings
    ) -> None:
        one, two = two_services
        async with httpx.AsyncClient(timeout=60, headers=AUTH) as http:
            for name, weight in (("ann", 3), ("ben", 2), ("cat", 1)):
                r = await http.put(f"{one.base}/v1/owners/{name}", json={"name": name, "weight": weight})
                assert r.status_code == 200, r.text
            r = await http.put(
                f"{two.base}/v1/pools/sales", json={"members": ["ann", "ben", "cat"], "strategy": "weighted"}
            )
            assert r.status_code == 200, r.text
            gate = asyncio.Semaphore(48)

            async def post(i: int) -> dict[str, Any]:
                async with gate:
                    r = await http.post(
                        f"{(one, two)[i % 2].base}/v1/leads", json={"email": f"p{i}@c{i}.example"}
                    )
                assert r.status_code == 201, r.text
                result: dict[str, Any] = r.json()
                return result

            weighted = collections.Counter(
                d["owner"] for d in await asyncio.gather(*(post(i) for i in range(600)))
            )
            assert abs(weighted["ann"] - 300) <= 1
            assert abs(weighted["ben"] - 200) <= 1
            assert abs(weighted["cat"] - 100) <= 1

            names = [f"rep{i}" for i in range(6)]
            for name in names:
                r = await http.put(
                    f"{one.base}/v1/owners/{name}", json={"name": name, "capacity": {"max_open": 5}}
                )
                assert r.status_code == 200, r.text
            r = await http.put(f"{two.base}/v1/pools/sales", json={"members": names, "fallback": "overflow"})
            assert r.status_code == 200, r.text
            capped = await asyncio.gather(*(post(1000 + i) for i in range(40)))
        assigned = collections.Counter(d["owner"] for d in capped if d["owner"] is not None)
        assert assigned == dict.fromkeys(names, 5)
        assert sum(1 for d in capped if d["status"] == "unassigned") == 10
        rows = await fetch(
            settings,
            "SELECT owner_id, count(*) AS n FROM assignments WHERE owner_id LIKE 'rep%' GROUP BY owner_id",
        )
        assert {r["owner_id"]: r["n"] for r in rows} == dict.fromkeys(names, 5)


class TestQueueDrainAcrossProcesses:
    """Two `leadroute serve` processes drain one queue: every waiting lead is placed once, oldest
    first, and no owner ever holds more than their capacity."""

    async def test_freed_capacity_places_each_queued_lead_once_in_order(
        self, settings: Settings, clean: None, tmp_path: Path
    ) -> None:
        rules = tmp_path / "rules.yaml"
        rules.write_text(POOL_RULES)
        one, two = (
            Served(
                tmp_path / log, settings, rules_path=str(rules), sla_poll_seconds="0.2", log_level="WARNING"
            )
            for log in ("one.log", "two.log")
        )
        try:
            one.wait_ready()
            two.wait_ready()
            async with httpx.AsyncClient(timeout=60, headers=AUTH) as http:
                names = [f"rep{i}" for i in range(4)]
                for name in names:
                    r = await http.put(
                        f"{one.base}/v1/owners/{name}", json={"name": name, "capacity": {"max_open": 2}}
                    )
                    assert r.status_code == 200, r.text
                r = await http.put(f"{two.base}/v1/pools/sales", json={"members": names})
                assert r.status_code == 200, r.text
                leads = []
                for i in range(32):  # one at a time: their arrival order is their queue order
                    r = await http.post(
                        f"{(one, two)[i % 2].base}/v1/leads", json={"email": f"q{i}@c{i}.example"}
                    )
                    assert r.status_code == 201, r.text
                    leads.append(r.json()["lead_id"])

                for _ in range(3):  # close whatever is open, through both processes: 8 more placed each time
                    held = await fetch(
                        settings, "SELECT id FROM leads WHERE status IN ('assigned', 'accepted') ORDER BY id"
                    )
                    assert len(held) == 8
                    closed = await asyncio.gather(
                        *(
                            http.post(f"{(one, two)[n % 2].base}/v1/assignments/{row['id']}/close", json={})
                            for n, row in enumerate(held)
                        )
                    )
                    assert [r.status_code for r in closed] == [200] * 8
                    await _until(settings, "SELECT count(*) = 8 FROM leads WHERE status = 'assigned'")
                    over = await fetch(
                        settings,
                        "SELECT owner_id, count(*) FROM leads WHERE status = 'assigned'"
                        " GROUP BY owner_id HAVING count(*) > 2",
                    )
                    assert over == []
        finally:
            one.stop()
            two.stop()
        drained = await fetch(
            settings,
            "SELECT lead_id, count(*) AS n, min(id) AS seq FROM lead_events"
            " WHERE kind = 'lead.assigned' AND payload ->> 'cause' = 'queue_drain' GROUP BY lead_id",
        )
        assert [r["n"] for r in drained] == [1] * 24  # 8 placed at intake, the other 24 once each
        order = [str(r["lead_id"]) for r in sorted(drained, key=lambda r: r["seq"])]
        assert order == leads[8:]  # oldest first

    async def test_an_owner_reactivated_takes_the_oldest_waiting_leads_once(
        self, settings: Settings, clean: None, tmp_path: Path
    ) -> None:
        rules = tmp_path / "rules.yaml"
        rules.write_text(POOL_RULES)
        one, two = (
            Served(
                tmp_path / log, settings, rules_path=str(rules), sla_poll_seconds="0.2", log_level="WARNING"
            )
            for log in ("one.log", "two.log")
        )
        try:
            one.wait_ready()
            two.wait_ready()
            async with httpx.AsyncClient(timeout=60, headers=AUTH) as http:
                r = await http.put(
                    f"{one.base}/v1/owners/rep",
                    json={"name": "Rep", "active": False, "capacity": {"max_open": 4}},
                )
                assert r.status_code == 200, r.text
                r = await http.put(f"{two.base}/v1/pools/sales", json={"members": ["rep"]})
                assert r.status_code == 200, r.text
                leads = []
                for i in range(10):
                    r = await http.post(
                        f"{(one, two)[i % 2].base}/v1/leads", json={"email": f"w{i}@c{i}.example"}
                    )
                    assert r.status_code == 201, r.text
                    assert r.json()["owner"] is None
                    leads.append(r.json()["lead_id"])
                r = await http.patch(f"{two.base}/v1/owners/rep", json={"active": True})
                assert r.status_code == 200, r.text
                await _until(settings, "SELECT count(*) = 4 FROM leads WHERE status = 'assigned'")
                await asyncio.sleep(1)  # several more passes of both processes: nothing more moves
        finally:
            one.stop()
            two.stop()
        rows = await fetch(settings, "SELECT id FROM leads WHERE status = 'assigned'")
        assert sorted(str(r["id"]) for r in rows) == sorted(leads[:4])  # the four oldest
        drained = await fetch(
            settings,
            "SELECT lead_id, count(*) AS n FROM lead_events"
            " WHERE kind = 'lead.assigned' AND payload ->> 'cause' = 'queue_drain' GROUP BY lead_id",
        )
        assert sorted(r["n"] for r in drained) == [1, 1, 1, 1]


async def _until(settings: Settings, sql: str, seconds: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        if (await fetch(settings, sql))[0][0]:
            return
        await asyncio.sleep(0.1)
    states = await fetch(settings, "SELECT status, owner_id, count(*) FROM leads GROUP BY 1, 2 ORDER BY 1, 2")
    raise AssertionError(f"not true within {seconds}s: {sql}; leads now: {[tuple(r) for r in states]}")
