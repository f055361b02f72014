"""Outbound in real processes and under load: a relay killed mid-delivery loses nothing, and a slow
receiver never slows intake down (delivery is never on the request path)."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from leadroute.config import Settings
from leadroute.runtime import utc_now
from outbound_support import Answer, Request, create_endpoint, receiver, verified
from process_support import Served
from sla_support import instance
from support import AUTH, POOL_RULES, Client, lead, owner, pool


def serve(settings: Settings, rules: Path, log: Path) -> Served:
    """``leadroute serve`` whose relay runs every 0.2 s, with 2 s requests (so an 11 s lease)."""
    return Served(
        log,
        settings,
        rules_path=str(rules),
        db_pool_min="2",
        db_pool_max="10",
        log_level="WARNING",
        outbound_poll_seconds="0.2",
        webhook_timeout="2",
        webhook_allow_private="true",
    )


class TestKilledMidDelivery:
    """kill -9 while a receiver holds the request: another instance sends it again, same webhook-id."""

    def test_kill_9_during_delivery_is_delivered_again_later(
        self, settings: Settings, clean: None, tmp_path: Path
    ) -> None:
        rules = tmp_path / "rules.yaml"
        rules.write_text(POOL_RULES)
        release = threading.Event()

        def answer(_req: Request, n: int) -> Answer:
            return Answer(200, hold=release) if n == 0 else Answer(200)

        with receiver(answer) as got:
            first = serve(settings, rules, tmp_path / "first.log")
            try:
                first.wait_ready()
                with httpx.Client(base_url=first.base, timeout=10, headers=AUTH) as http:
                    assert http.put("/v1/owners/ann", json={"name": "Ann"}).status_code == 200
                    assert http.put("/v1/pools/sales", json={"members": ["ann"]}).status_code == 200
                    made = http.post(
                        "/v1/webhooks", json={"url": got.url, "events": ["lead.assigned"]}
                    ).json()
                    assert http.post("/v1/leads", json=lead(1)).status_code == 201
                got.wait_for(1, timeout=30)  # the relay is waiting on the receiver now
                first.proc.kill()
                assert first.proc.wait(timeout=10) == -9
            finally:
                first.stop()

            second = serve(settings, rules, tmp_path / "second.log")
            try:
                second.wait_ready()
                killed, again = got.wait_for(2, timeout=60)
                assert again.headers["webhook-id"] == killed.headers["webhook-id"]
                assert verified(again, made["secret"])["type"] == "lead.assigned"
                with httpx.Client(base_url=second.base, timeout=10, headers=AUTH) as http:
                    deliveries = http.get(f"/v1/webhooks/{made['id']}/deliveries").json()
                assert [(d["status"], d["attempts"]) for d in deliveries] == [("delivered", 2)]
            finally:
                release.set()
                second.stop()


async def _latencies(client: Client, start: int, count: int, limit: int = 20) -> list[float]:
    gate = asyncio.Semaphore(limit)
    took: list[float] = []

    async def one(n: int) -> None:
        async with gate:
            began = time.perf_counter()
            r = await client.post("/v1/leads", json=lead(n))
            took.append(time.perf_counter() - began)
            assert r.status_code == 201, r.text

    await asyncio.gather(*(one(n) for n in range(start, start + count)))
    return took


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


class TestSlowReceiver:
    """1,000 leads through intake while the only endpoint takes 1 s per webhook."""

    async def test_intake_latency_is_unaffected_by_a_slow_endpoint(
        self, settings: Settings, clean: None
    ) -> None:
        with receiver(lambda _r, _n: Answer(200, delay=1.0)) as slow:
            overrides: dict[str, Any] = {"outbound_poll_seconds": 0.05, "webhook_allow_private": True}
            async with instance(settings, POOL_RULES, utc_now, **overrides) as client:
                await owner(client, "ann")
                await pool(client, "sales", ["ann"])
                baseline = await _latencies(client, 0, 500)  # no endpoint yet: nothing to send
                await create_endpoint(client, slow.url, ["lead.scored", "lead.assigned"])
                loaded = await _latencies(client, 500, 500)
                sent_meanwhile = len(slow.requests)
        base_p95, loaded_p95 = _p95(baseline), _p95(loaded)
        print(  # recorded in docs/benchmarks.md
            f"intake p50/p95 without endpoint "
            f"{statistics.median(baseline) * 1000:.1f}/{base_p95 * 1000:.1f} ms, "
            f"with a 1 s endpoint {statistics.median(loaded) * 1000:.1f}/{loaded_p95 * 1000:.1f} ms; "
            f"{sent_meanwhile} webhooks sent meanwhile"
        )
        assert sent_meanwhile > 0  # the relay was busy with the slow receiver all along
        assert loaded_p95 < 2 * base_p95 + 0.1  # loose: shared CI cores make timings noisy
