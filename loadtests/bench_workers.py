"""Throughput of ``leadroute serve`` with 1 and with N worker processes, measured in one run.

    .venv/bin/python -m loadtests.bench_workers                    # 1 vs 2 workers, 3 rounds
    .venv/bin/python -m loadtests.bench_workers --workers 4 --rounds 2 --seconds 30 --users 64

Each round starts the service once per worker count (interleaved: 1, N, 1, N...) on the same
embedded PostgreSQL and Valkey in a temporary data directory, waits until it is ready, and
runs the Locust scenario (``loadtests/locustfile.py``) headless with no think time, so each
simulated client posts its next lead as soon as the last one is answered: the requests per
second are what the service sustains. It prints each run and the median of N-worker runs
divided by the median of 1-worker runs. Locust runs on the same machine and takes CPU of its
own, so the ratio understates what more cores would give; the machine is shared, so compare
ratios from one run, not numbers across runs.
"""

from __future__ import annotations

import argparse
import csv
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import httpx

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent


class Result(NamedTuple):
    workers: int
    requests: int
    failures: int
    rps: float
    p50_ms: float
    p99_ms: float


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _run(data_dir: Path, workers: int, *, users: int, seconds: int) -> Result:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADROUTE_")}
    env |= {
        "LEADROUTE_DATA_DIR": str(data_dir),
        "LEADROUTE_PORT": str(port),
        "LEADROUTE_WORKERS": str(workers),
        "LEADROUTE_LOG_LEVEL": "WARNING",
        "LEADROUTE_SLA_POLL_SECONDS": "0",
    }
    log = (data_dir.parent / f"serve-{workers}.log").open("ab")
    serve = subprocess.Popen(
        [sys.executable, "-m", "leadroute", "serve"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            if serve.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"leadroute serve did not start; see {log.name}")
            try:
                if httpx.get(base + "/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        prefix = data_dir.parent / f"locust-{workers}-{time.monotonic_ns()}"
        subprocess.run(
            [
                *(sys.executable, "-m", "locust", "-f", "loadtests/locustfile.py", "--headless"),
                *("-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--host", base),
                *("--csv", str(prefix), "--only-summary", "--loglevel", "ERROR"),
            ],
            cwd=ROOT,
            env=os.environ
            | {
                "LEADROUTE_LOADTEST_THINK_TIME": "0",
                "LR_API_KEY": (data_dir / "admin.key").read_text().strip(),
            },
            check=False,
            capture_output=True,
            timeout=seconds + 120,
        )
        return _summary(Path(f"{prefix}_stats.csv"), workers)
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=60)
        log.close()


def _summary(stats: Path, workers: int) -> Result:
    with stats.open(newline="") as f:
        rows = {row["Name"]: row for row in csv.DictReader(f)}
    total = rows["Aggregated"]
    return Result(
        workers=workers,
        requests=int(total["Request Count"]),
        failures=int(total["Failure Count"]),
        rps=float(total["Requests/s"]),
        p50_ms=float(total["50%"]),
        p99_ms=float(total["99%"]),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--workers", type=int, default=2, help="the worker count compared with 1")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=20, help="length of each Locust run")
    parser.add_argument("--users", type=int, default=32, help="concurrent clients, each without think time")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    print(f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} before the run")
    print(f"{args.users} clients without think time, {args.seconds} s per run, {args.rounds} rounds\n")
    print(f"{'workers':>7} {'requests':>9} {'failures':>8} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7}")
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="leadroute-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        for _ in range(args.rounds):
            for workers in (1, args.workers):
                r = _run(data_dir, workers, users=args.users, seconds=args.seconds)
                results.append(r)
                row = f"{r.workers:>7} {r.requests:>9} {r.failures:>8} {r.rps:>8.1f}"
                print(f"{row} {r.p50_ms:>7.0f} {r.p99_ms:>7.0f}")
    one = statistics.median(r.rps for r in results if r.workers == 1)
    many = statistics.median(r.rps for r in results if r.workers == args.workers)
    print(f"\nmedian req/s: 1 worker {one:.1f}, {args.workers} workers {many:.1f}: ratio {many / one:.2f}x")
    return 1 if any(r.failures for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
