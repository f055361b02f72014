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
