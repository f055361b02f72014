"""With LEADROUTE_WORKERS=2, one scrape of /metrics counts what every worker did."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx
import pytest

from leadroute.config import Settings
from process_support import Served
from support import AUTH, POOL_RULES, lead

LEADS = 30


def leads_total(text: str) -> float:
    """The sum of ``leadroute_leads_total`` over its labels, from one scrape."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("leadroute_leads_total{")
    )


async def post_leads(base: str, first: int, n: int) -> None:
    """``n`` leads, each on a connection of its own (so the kernel spreads them over the workers)."""
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, timeout=30, headers=AUTH, limits=limits) as http:
        posts = (http.post("/v1/leads", json=lead(i)) for i in range(first, first + n))
        answers = await asyncio.gather(*posts)
    assert [a.status_code for a in answers] == [201] * n


def scrapes(base: str, n: int) -> list[float]:
    """``n`` scrapes, each on a new connection (any worker may answer)."""
    return [leads_total(httpx.get(base + "/metrics", headers=AUTH, timeout=30).text) for _ in range(n)]


def served(tmp_path: Path, settings: Settings) -> Served:
    rules = tmp_path / "rules.yaml"
    rules.write_text(POOL_RULES)
    return Served(tmp_path / "serve.log", settings, rules_path=str(rules), workers="2", sla_poll_seconds="0")


class TestMultiprocessMetrics:
    def test_every_scrape_sums_both_workers(
        self, settings: Settings, clean: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)  # the server makes its own
        service = served(tmp_path, settings)
        try:
            service.wait_ready()
            asyncio.run(post_leads(service.base, 1, LEADS))
            assert scrapes(service.base, 8) == [LEADS] * 8
        finally:
            assert service.stop() == 0

    def test_a_given_directory_is_emptied_at_start(
        self, settings: Settings, clean: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        metrics = tmp_path / "metrics"
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(metrics))
        first = served(tmp_path, settings)
        try:
            first.wait_ready()
            asyncio.run(post_leads(first.base, 1, 5))
            assert scrapes(first.base, 3) == [5] * 3
        finally:
            assert first.stop() == 0
        assert any(f.suffix == ".db" for f in metrics.iterdir())  # the first run's samples
        second = served(tmp_path, settings)
        try:
            second.wait_ready()
            asyncio.run(post_leads(second.base, 100, 2))
            assert scrapes(second.base, 3) == [2] * 3  # not 7: the first run's files were removed
        finally:
            assert second.stop() == 0
        assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(metrics)
