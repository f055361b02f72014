"""The floor: what a durable lead costs at minimum on leadroute's stack, against the hello-world.

    .venv/bin/python -m benchmarks.bench_floor --rounds 3 --seconds 15 --connections 64
    .venv/bin/python -m benchmarks.bench_floor --rounds 1 --targets txn --profile txn=txn.raw

Serves, each on uvicorn with uvloop and httptools, no access log, one worker, and runs ``wrk``
against each in turn, round by round, posting the same unique ~1 KB lead per request
(``post_leads.lua``):

- ``hello``: ``benchmarks/hello.py`` as is (msgspec decodes the body; the answer).
- ``commit``, ``txn``, ``group``: ``benchmarks/floor_app.py``, hello's app plus a durable write per
  request: one autocommit INSERT; the least transaction a routed lead needs (idempotency claim,
  one Redis EVALSHA, the lead's INSERT, COMMIT, asyncpg's reset on release); group commit (many
  requests' rows in one statement and one commit, each answered after it). See that module.
- ``intake``: ``leadroute serve`` started exactly as ``bench_intake`` starts it (admin key, 20
  owners in one pool, an SLA on every lead).

All on the local PostgreSQL (127.0.0.1:5432, one database made for the run and dropped after it)
and Redis (127.0.0.1:6379). It prints each run, each target's median req/s over hello's, and CPU
per answered request: the service process's, the PostgreSQL backends' of the run's own database
(processes titled with its name: the connections of the target's pool), and every ``postgres``
process's (with the WAL writer, checkpointer and other databases' backends: the machine is
shared). Then the correctness check of ``commit``/``txn``/``group``: the rows in each target's
table equal the 201s the app counted (each given after its commit), and lie between the 2xx
answers wrk counted and those plus the requests in flight when each run stopped (at most
``--connections`` per run: wrk drops them, the app finishes them). Exits 1 if any answer was not
2xx, a request got no answer (wrk's socket errors; its timeout is 30 s) or a count does not
match. ``--profile TARGET=PATH`` runs ``py-spy record`` (200 Hz, raw format) on that target's
process during its first run. Needs ``wrk`` (Debian package ``wrk``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import asyncpg
import httpx
import psutil
from redis import Redis

sys.path.insert(0, str(Path(__file__).resolve().parent))  # its siblings, as bench_batch imports them
from bench_intake import (
    ROOT,
    Run,
    _cpu,
    _database,
    _free_port,
    _wait,
    _wrk,
    intake_env,
)
from floor_app import BATCH, FLUSHERS, POOL_MAX, POOL_MIN
from floor_app import TARGETS as FLOOR_TARGETS

__all__ = ["main"]

TARGETS = ("hello", *FLOOR_TARGETS, "intake")
REDIS_URL = "redis://127.0.0.1:6379/0"


class Served(NamedTuple):
    port: int
    proc: subprocess.Popen[bytes]
    ready: str  # the path answered once the app is up


class Cpu(NamedTuple):
    service: float
    backends: float
    postgres: float


def _postgres(database: str | None = None) -> dict[int, float]:
    """CPU seconds of each ``postgres`` process: those serving ``database`` (by their process
    title: its pooled connections) or, without one, all of them."""
    title = f" {database} " if database else ""
    found = {}
    for proc in psutil.process_iter(["name", "cmdline"]):
        if proc.info["name"] == "postgres" and title in " ".join(proc.info["cmdline"] or ()):
            try:
                times = proc.cpu_times()
            except psutil.Error:
                continue
            found[proc.pid] = times.user + times.system
    return found


def _grown(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def _measure(
    target: str, served: Served, database: str, args: argparse.Namespace, profile: Path | None
) -> tuple[Run, Cpu]:
    service = psutil.Process(served.proc.pid)
    before = _cpu(service), _postgres(database), _postgres()
    spy = None
    if profile is not None:
        spy = subprocess.Popen(
            [
                *(str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(served.proc.pid)),
                *("-d", str(max(args.seconds - 2, 1)), "-r", "200", "-f", "raw", "-o", str(profile)),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
        )
    run = _wrk(
        target,
        f"http://127.0.0.1:{served.port}",
        seconds=args.seconds,
        connections=args.connections,
        key=args.key,
    )
    after = _cpu(service), _postgres(database), _postgres()
    if spy is not None:
        spy.wait(60)
    # a process that appeared during the run counts whole (a pool growing under load); one that
    # went away is lost (the pools close idle connections only after the run, 10 s idle)
    return run, Cpu(after[0] - before[0], _grown(before[1], after[1]), _grown(before[2], after[2]))


def _check(name: str, runs: list[Run], served: dict[str, Served], connections: int) -> list[str]:
    """The correctness lines: every answer 2xx, and each floor target's rows against its answers."""

    async def rows() -> dict[str, int]:
        conn = await asyncpg.connect(f"postgresql://127.0.0.1:5432/{name}")
        try:
            return {
                t: await conn.fetchval(f"SELECT count(*) FROM floor_{t}.floor_leads")
                for t in FLOOR_TARGETS
                if t in served
            }
        finally:
            await conn.close()

    time.sleep(2)  # the requests wrk dropped at the end of each run finish in the apps
    written = asyncio.run(rows())
    lines = []
    for target, count in written.items():
        stats = httpx.get(f"http://127.0.0.1:{served[target].port}/floor/stats").json()
        ok_wrk = sum(r.requests - r.errors for r in runs if r.target == target)
        in_flight = connections * sum(1 for r in runs if r.target == target)
        ok = count == stats["answered"] and stats["failed"] == 0 and ok_wrk <= count <= ok_wrk + in_flight
        lines.append(
            f"{'ok' if ok else 'MISMATCH':<8} {target:<7} rows {count}, 201s given by the app "
            f"{stats['answered']}, failed in the app {stats['failed']}, 2xx counted by wrk {ok_wrk} "
            f"(+{count - ok_wrk} finished after wrk stopped, at most {in_flight})"
        )
        if stats["flushes"]:
            lines.append(
                f"{'':<8} {target:<7} {stats['flushes']} flushes, {count / stats['flushes']:.1f} rows each"
            )
    for what, field in (("non-2xx answers", "errors"), ("socket errors", "socket_errors")):
        by_target = {t: sum(getattr(r, field) for r in runs if r.target == t) for t in served}
        bad = ", ".join(f"{t} {n}" for t, n in by_target.items() if n) or "none"
        lines.append(f"{'ok' if bad == 'none' else 'MISMATCH':<8} {what} over all runs: {bad}")
    return lines


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0912, PLR0915  (one story, told in order)
    """Run the benchmark; print each run, the ratios, CPU per request and the correctness check."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--targets",
        default=",".join(TARGETS[1:]),
        help=f"comma-separated, of {', '.join(TARGETS[1:])} (hello always runs); default all",
    )
    parser.add_argument("--profile", metavar="TARGET=PATH", help="py-spy record TARGET's first run into PATH")
    args = parser.parse_args(argv)
    chosen = ["hello", *(t for t in TARGETS[1:] if t in args.targets.split(","))]
    if unknown := set(args.targets.split(",")) - set(TARGETS):
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    profile_target, _, profile_path = (args.profile or "").partition("=")
    if args.profile and (profile_target not in chosen or not profile_path):
        parser.error("--profile: TARGET=PATH, with TARGET one of the targets that run")
    if shutil.which("wrk") is None:
        print("bench_floor needs wrk (apt-get install wrk)", file=sys.stderr)
        return 2
    from leadroute.access import format_key, new_secret

    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per readiness poll

    name = f"leadroute_floor_{secrets.token_hex(4)}"
    args.key = format_key(secrets.token_hex(4), new_secret())  # intake's admin key, sent by wrk
    asyncio.run(_database(name, drop=False))
    work = Path(tempfile.mkdtemp(prefix="leadroute-floor-"))
    served: dict[str, Served] = {}
    runs: list[Run] = []
    cpu = {t: Cpu(0.0, 0.0, 0.0) for t in chosen}
    try:
        for target in chosen:
            port = _free_port()
            if target == "hello":
                command, env, ready = [str(ROOT / "benchmarks/hello.py"), str(port)], dict(os.environ), "/"
            elif target == "intake":
                command, env, ready = (
                    ["-m", "leadroute", "serve"],
                    intake_env(name, args.key, work, port),
                    "/health/ready",
                )
            else:
                command, ready = [str(ROOT / "benchmarks/floor_app.py"), str(port)], "/floor/stats"
                env = os.environ | {
                    "FLOOR_TARGET": target,
                    "FLOOR_DATABASE_URL": f"postgresql://127.0.0.1:5432/{name}",
                    "FLOOR_REDIS_URL": REDIS_URL,
                    "FLOOR_REDIS_PREFIX": name,
                }
            proc = subprocess.Popen([sys.executable, *command], env=env, cwd=ROOT)
            served[target] = Served(port, proc, ready)
        for s in served.values():
            _wait(f"http://127.0.0.1:{s.port}{s.ready}", s.proc)
        for round_ in range(args.rounds):
            for target, s in served.items():
                profile = Path(profile_path) if target == profile_target and round_ == 0 else None
                run, used = _measure(target, s, name, args, profile)
                runs.append(run)
                cpu[target] = Cpu(*(a + b for a, b in zip(cpu[target], used, strict=True)))
        checks = _check(name, runs, served, args.connections)
    finally:
        for s in served.values():
            s.proc.terminate()
        for s in served.values():
            s.proc.wait(30)
        asyncio.run(_database(name, drop=True))
        with Redis.from_url(REDIS_URL) as redis:
            for stale in redis.scan_iter(f"{name}*"):
                redis.delete(stale)
        shutil.rmtree(work, ignore_errors=True)
    _report(runs, chosen, cpu)
    print("\ncorrectness:")
    print("\n".join(checks))
    return 1 if any(line.startswith("MISMATCH") for line in checks) else 0


def _report(runs: list[Run], targets: list[str], cpu: dict[str, Cpu]) -> None:
    print(
        f"\npools of {POOL_MIN}-{POOL_MAX} connections; group commit: up to {BATCH} rows a flush, "
        f"{FLUSHERS} flushes at once"
    )
    print(
        f"{'target':<8} {'req/s':>9} {'requests':>9} {'non-2xx':>8} {'socket':>7} {'p50 ms':>8} {'p99 ms':>8}"
    )
    for r in runs:
        print(
            f"{r.target:<8} {r.rps:>9.0f} {r.requests:>9} {r.errors:>8} {r.socket_errors:>7}"
            f" {r.p50_ms:>8.1f} {r.p99_ms:>8.1f}"
        )
    print(f"\nload average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end, {os.cpu_count()} CPUs")
    median = {t: statistics.median(r.rps for r in runs if r.target == t) for t in targets}
    print(
        f"\n{'target':<8} {'median req/s':>12} {'/ hello':>8}   CPU ms per request: "
        f"{'service':>8} {'PG backends':>12} {'all postgres':>13}"
    )
    for target in targets:
        answered = sum(r.requests - r.errors for r in runs if r.target == target)
        per = [x / answered * 1000 if answered else float("nan") for x in cpu[target]]
        print(
            f"{target:<8} {median[target]:>12.0f} {median[target] / median['hello']:>8.3f}"
            f"   {'':>20}{per[0]:>8.2f} {per[1]:>12.2f} {per[2]:>13.2f}"
        )


if __name__ == "__main__":
    raise SystemExit(main())
