"""Batch intake against single intake, per lead: ``POST /v1/leads:batch`` vs ``POST /v1/leads``.

    .venv/bin/python benchmarks/bench_batch.py                          # 3 rounds of 2,000 leads each way
    .venv/bin/python benchmarks/bench_batch.py --rounds 5 --leads 3000 --batch-size 1000

Starts ``leadroute serve`` as ``bench_intake.py`` does (one worker, the local
PostgreSQL and Redis, a database of its own dropped afterwards, 20 owners in one round-robin pool,
an SLA on every lead). Each round posts ``--leads`` unique ~1 KB leads one per request from
``--connections`` concurrent connections, then as many in batches of ``--batch-size`` from
``--batch-connections`` connections (the two alternate, so both see the same machine). For each
way it prints leads per second, and the service's and PostgreSQL's CPU per lead (the service
process, and the PostgreSQL backends connected to the benchmark's database, over its runs), then
the batch/single ratios. The client
runs in this process, so wall time on a 2-core machine also pays for it: the CPU figures are the
ones to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import asyncpg
import httpx
import psutil
from bench_intake import ADMIN_DSN, ROOT, RULES, _database, _free_port, _wait  # this directory

__all__ = ["main"]

ADMIN_KEY = "lr_live_0be0c401_" + "benchmark-admin-secret-0123456789abcdef"


class Run(NamedTuple):
    way: str
    leads: int
    seconds: float
    service_cpu: float
    postgres_cpu: float

    @property
    def per_second(self) -> float:
        return self.leads / self.seconds


_counter = 0


def _leads(n: int) -> list[dict[str, Any]]:
    """``n`` unique leads of about 1 KB, each with its own event_id (as imports and CRMs send)."""
    global _counter  # noqa: PLW0603  (unique across rounds)
    out = []
    for _ in range(n):
        _counter += 1
        i = _counter
        out.append(
            {
                "event_id": f"bench-{i}",
                "email": f"person{i}@company-{i % 5000}.example",
                "first_name": "Pat",
                "last_name": f"Person{i}",
                "title": "VP Sales" if i % 3 else "Engineer",
                "company": f"Company {i % 5000}",
                "country": "US",
                "employees": 50 + i % 5000,
                "utm_source": "benchmark",
                "attributes": {"notes": "x" * 700},
            }
        )
    return out


async def _single(client: httpx.AsyncClient, leads: list[dict[str, Any]], connections: int) -> None:
    queue = iter(leads)

    async def worker() -> None:
        for lead in queue:
            r = await client.post("/v1/leads", json=lead)
            if r.status_code not in (200, 201, 202):
                raise SystemExit(f"POST /v1/leads answered {r.status_code}: {r.text[:200]}")

    await asyncio.gather(*(worker() for _ in range(connections)))


async def _batched(
    client: httpx.AsyncClient, leads: list[dict[str, Any]], size: int, connections: int
) -> None:
    queue = iter([leads[i : i + size] for i in range(0, len(leads), size)])

    async def worker() -> None:
        for batch in queue:
            r = await client.post("/v1/leads:batch", json=batch)
            if r.status_code != 200 or set(r.json()["counts"]) - {"201", "202"}:
                raise SystemExit(f"POST /v1/leads:batch answered {r.status_code}: {r.text[:200]}")

    await asyncio.gather(*(worker() for _ in range(connections)))


async def _postgres_cpu(database: str) -> float:
    """CPU seconds of the PostgreSQL backends serving ``database`` (the service's pooled
    connections, which live for the whole run): other sessions' work on a shared machine, and
    backends that come and go, stay out of the figure."""
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        pids = [
            r["pid"]
            for r in await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", database)
        ]
    finally:
        await conn.close()
    total = 0.0
    for pid in pids:
        try:
            total += sum(psutil.Process(pid).cpu_times()[:2])
        except psutil.Error:
            continue
    return total


async def _rounds(base: str, served: psutil.Process, database: str, args: argparse.Namespace) -> list[Run]:
    runs: list[Run] = []
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    limits = httpx.Limits(max_connections=max(args.connections, args.batch_connections))
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=300, limits=limits) as client:
        await _single(client, _leads(200), args.connections)  # warm-up: caches, connections
        await _batched(client, _leads(200), 100, 1)
        for _ in range(args.rounds):
            for way in ("single", "batch"):
                leads = _leads(args.leads)
                before_service = sum(served.cpu_times()[:2])
                before_postgres = await _postgres_cpu(database)
                started = time.perf_counter()
                if way == "single":
                    await _single(client, leads, args.connections)
                else:
                    await _batched(client, leads, args.batch_size, args.batch_connections)
                seconds = time.perf_counter() - started
                runs.append(
                    Run(
                        way,
                        len(leads),
                        seconds,
                        sum(served.cpu_times()[:2]) - before_service,
                        await _postgres_cpu(database) - before_postgres,
                    )
                )
    return runs


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print each run and the batch/single ratios."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--leads", type=int, default=2000, help="leads per run (each way)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent single posts")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--batch-connections", type=int, default=2, help="concurrent batch posts")
    parser.add_argument("--chunk", type=int, default=50, help="LEADROUTE_BATCH_CHUNK of the service")
    args = parser.parse_args(argv)

    name = f"leadroute_bench_{secrets.token_hex(4)}"
    asyncio.run(_database(name, drop=False))
    work = Path(tempfile.mkdtemp(prefix="leadroute-bench-"))
    (work / "rules.yaml").write_text(RULES)
    owners = "\n".join(
        f"  - {{id: rep{i}, name: Rep {i}, capacity: {{max_open: 100000}}}}" for i in range(20)
    )
    members = ", ".join(f"rep{i}" for i in range(20))
    (work / "owners.yaml").write_text(f"owners:\n{owners}\npools:\n  - {{id: sales, members: [{members}]}}\n")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADROUTE_")} | {
        "LEADROUTE_DATABASE_URL": f"postgresql://127.0.0.1:5432/{name}",
        "LEADROUTE_REDIS_URL": "redis://127.0.0.1:6379/0",
        "LEADROUTE_REDIS_PREFIX": name,
        "LEADROUTE_RULES_PATH": str(work / "rules.yaml"),
        "LEADROUTE_PORT": str(port),
        "LEADROUTE_LOG_LEVEL": "WARNING",
        "LEADROUTE_SEED_DEMO": "false",
        "LEADROUTE_ADMIN_KEY": ADMIN_KEY,
        "LEADROUTE_BATCH_CHUNK": str(args.chunk),
    }
    subprocess.run(
        [sys.executable, "-m", "leadroute", "owners", "import", str(work / "owners.yaml")],
        env=env,
        check=True,
        capture_output=True,
    )
    service = subprocess.Popen([sys.executable, "-m", "leadroute", "serve"], env=env, cwd=ROOT)
    try:
        _wait(f"http://127.0.0.1:{port}/health/ready", service)
        runs = asyncio.run(_rounds(f"http://127.0.0.1:{port}", psutil.Process(service.pid), name, args))
    finally:
        service.terminate()
        service.wait(30)
        asyncio.run(_database(name, drop=True))
        shutil.rmtree(work, ignore_errors=True)

    print(f"{'way':<7} {'leads':>6} {'leads/s':>8} {'service ms/lead':>16} {'postgres ms/lead':>17}")
    for r in runs:
        print(
            f"{r.way:<7} {r.leads:>6} {r.per_second:>8.0f} "
            f"{r.service_cpu / r.leads * 1000:>16.2f} {r.postgres_cpu / r.leads * 1000:>17.2f}"
        )

    def median(way: str, value: Callable[[Run], float]) -> float:
        return statistics.median(value(r) for r in runs if r.way == way)

    def ratio(value: Callable[[Run], float]) -> float:
        return median("batch", value) / median("single", value)

    rate = ratio(lambda r: r.per_second)
    service_cpu = ratio(lambda r: r.service_cpu / r.leads)
    postgres_cpu = ratio(lambda r: r.postgres_cpu / r.leads)
    print(
        f"\nbatch / single (medians): leads/s {rate:.2f}x, service CPU per lead {service_cpu:.2f}, "
        f"PostgreSQL CPU per lead {postgres_cpu:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
