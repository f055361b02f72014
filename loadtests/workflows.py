"""The workflow load test in one command: serve, drive N concurrent lead workflows, reconcile.

    .venv/bin/python -m loadtests.workflows --workflows 10000 --seconds 300
    .venv/bin/python -m loadtests.workflows --workflows 1000 --seconds 90 --pace 1-5 \\
        --database-url postgresql://127.0.0.1:5432/postgres --redis-url redis://127.0.0.1:6379/0

1. Servers: given ``--database-url`` (a database it may ``CREATE DATABASE`` from) and
   ``--redis-url``, a fresh database and a fresh Redis key prefix of the run's own, removed at the
   end (``--keep`` keeps them); otherwise embedded PostgreSQL and Valkey in a temporary directory.
2. ``leadroute owners import loadtests/owners.yaml``, then ``leadroute serve`` on a free port with
   ``LEADROUTE_RULES_PATH=loadtests/rules.yaml`` (SLA one minute) and ``--workers`` workers.
3. Locust, headless, ``loadtests/locust_workflows.py`` with ``-u WORKFLOWS`` for ``--seconds``
   (``--processes`` Locust processes): each user is one lead's workflow at a time.
4. Traffic stops; the run waits two scheduler polls and a margin, scrapes ``/metrics`` again and
   checks the SLA timers while the service is up; then stops it and reconciles PostgreSQL and
   Redis with what the users were told (:mod:`loadtests.reconcile`).
5. Prints the table; exits 1 on any failed request, lost or duplicated lead, or failed check.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import math
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import psutil
from redis.asyncio import Redis

from leadroute.access import format_key, new_secret
from leadroute.store.db import connect
from loadtests import reconcile as rc
from loadtests import serverstats

__all__ = ["Options", "RunResult", "main", "run"]

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
SLA_SECONDS = 60
CATCH_UP_SECONDS = 300
"""After the traffic, how long the SLA timers may take to catch up before they are checked."""
"""The SLA of ``loadtests/rules.yaml`` (one minute), which the users wait out on the breach path."""


class Options(NamedTuple):
    workflows: int = 10_000
    seconds: int = 300
    processes: int = 1
    workers: int = 1
    pace: str = "5-30"
    spawn_rate: float | None = None
    database_url: str | None = None
    redis_url: str | None = None
    key: str | None = None
    poll_seconds: float = 2.0
    keep: bool = False
    seed: int | None = None
    connections: int = 64
    serve_env: tuple[str, ...] = ()
    """``VAR=VALUE`` settings of the service (e.g. ``LEADROUTE_GROUP_COMMIT=1``): a lever measured
    under the workflow load."""
    """Keep-alive connections per Locust process, shared by its users (as a load balancer keeps)."""


class Row(NamedTuple):
    label: str
    value: str


class RunResult(NamedTuple):
    ok: bool
    checks: list[rc.Check]
    recorded: rc.Recorded
    table: str
    database_url: str
    redis_url: str
    redis_prefix: str
    records: Path
    stats: dict[str, Any]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _with_database(dsn: str, name: str) -> str:
    if "?" in dsn:
        base, _, query = dsn.partition("?")
        return f"{base.rsplit('/', 1)[0]}/{name}?{query}"
    return f"{dsn.rsplit('/', 1)[0]}/{name}"


async def _admin(dsn: str, sql: str) -> None:
    conn = await connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _drop_keys(redis_url: str, prefix: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        keys = [k async for k in redis.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


async def _redis_pid(redis_url: str) -> int | None:
    redis = Redis.from_url(redis_url)
    try:
        info = await redis.info("server")
        return int(info["process_id"])
    except Exception:
        return None
    finally:
        await redis.aclose()


def _postgres_backends(database: str) -> list[int]:
    """PIDs of PostgreSQL backends connected to ``database`` (their process title names it)."""
    marker = f" {database} "
    pids = []
    for p in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(p.info["cmdline"] or ())
        if cmdline.startswith("postgres:") and marker in cmdline + " ":
            pids.append(p.pid)
    return pids


def _wait_ready(base: str, serve: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while True:
        if serve.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"leadroute serve did not start; see {log}")
        try:
            if httpx.get(base + "/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)


def _metrics(base: str, headers: dict[str, str]) -> dict[tuple[str, str], serverstats.Histogram]:
    return serverstats.scrape(httpx.get(base + "/metrics", headers=headers, timeout=30).text)


def _locust_csv(prefix: Path, suffix: str) -> list[dict[str, str]]:
    path = Path(f"{prefix}_{suffix}.csv")
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def run(opts: Options) -> RunResult:  # noqa: PLR0915  (one story, told in order)
    """Run the whole load test (see the module docstring); the caller prints ``table``."""
    tmp = Path(tempfile.mkdtemp(prefix="leadroute-loadtest-"))
    run_id = secrets.token_hex(4)
    records = tmp / "records"
    embedded = None
    if opts.database_url and opts.redis_url:
        database = f"leadroute_loadtest_{run_id}"
        asyncio.run(_admin(opts.database_url, f'CREATE DATABASE "{database}"'))
        database_url, redis_url = _with_database(opts.database_url, database), opts.redis_url
    elif opts.database_url or opts.redis_url:
        raise SystemExit("give both --database-url and --redis-url, or neither (embedded servers)")
    else:
        from leadroute.embedded import EmbeddedServers

        database = "leadroute"
        embedded = EmbeddedServers(tmp / "data", database=database)
        embedded.start()
        database_url, redis_url = embedded.database_url, embedded.redis_url
    prefix = f"lrload{run_id}"
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    # the service stores this admin key at start (LEADROUTE_ADMIN_KEY); the clients send it
    key = opts.key or format_key(secrets.token_hex(4), new_secret())
    headers = {"Authorization": f"Bearer {key}"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADROUTE_")}
    env |= {
        "LEADROUTE_ADMIN_KEY": key,
        "LEADROUTE_DATABASE_URL": database_url,
        "LEADROUTE_REDIS_URL": redis_url,
        "LEADROUTE_REDIS_PREFIX": prefix,
        "LEADROUTE_RULES_PATH": str(HERE / "rules.yaml"),
        "LEADROUTE_PORT": str(port),
        "LEADROUTE_WORKERS": str(opts.workers),
        "LEADROUTE_SLA_POLL_SECONDS": str(opts.poll_seconds),
        "LEADROUTE_LOG_LEVEL": "WARNING",
        "LEADROUTE_SEED_DEMO": "false",
    } | dict(item.split("=", 1) for item in opts.serve_env)
    serve: subprocess.Popen[bytes] | None = None
    log_path = tmp / "serve.log"
    try:
        subprocess.run(
            [sys.executable, "-m", "leadroute", "owners", "import", str(HERE / "owners.yaml")],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        with log_path.open("ab") as log:
            serve = subprocess.Popen(
                [sys.executable, "-m", "leadroute", "serve"], cwd=ROOT, env=env, stdout=log, stderr=log
            )
        _wait_ready(base, serve, log_path)
        before = _metrics(base, headers)
        redis_pid = asyncio.run(_redis_pid(redis_url))
        sampler = serverstats.Sampler(
            psutil.Process(serve.pid),
            postgres=lambda: _postgres_backends(database),
            others={"redis": redis_pid} if redis_pid else {},
        )
        sampler.start()

        csv_prefix = tmp / "locust"
        ramp = max(1.0, min(60.0, opts.seconds / 5))
        rate = opts.spawn_rate or max(1.0, opts.workflows / ramp)
        locust_env = os.environ | {
            "LEADROUTE_LOADTEST_PACE": opts.pace,
            "LEADROUTE_LOADTEST_SLA_SECONDS": str(SLA_SECONDS),
            "LEADROUTE_LOADTEST_POLL_SECONDS": str(opts.poll_seconds),
            "LEADROUTE_LOADTEST_RECORDS": str(records),
            "LEADROUTE_LOADTEST_SEED": str(opts.seed if opts.seed is not None else secrets.randbelow(2**31)),
        }
        locust_env["LEADROUTE_LOADTEST_KEY"] = key
        locust_env["LEADROUTE_LOADTEST_CONNECTIONS"] = str(opts.connections)
        command = [
            *(sys.executable, "-m", "locust", "-f", str(HERE / "locust_workflows.py"), "--headless"),
            *("-u", str(opts.workflows), "-r", f"{rate:g}", "-t", f"{opts.seconds}s", "--host", base),
            *("--csv", str(csv_prefix), "--only-summary", "--loglevel", "WARNING"),
        ]
        if opts.processes > 1:
            command += ["--processes", str(opts.processes)]
        started = time.monotonic()
        locust_log = tmp / "locust.log"
        with locust_log.open("ab") as out:
            locust = subprocess.Popen(command, cwd=ROOT, env=locust_env, stdout=out, stderr=out)
            sampler.add("locust", locust.pid)
            try:
                locust.wait(timeout=opts.seconds + 180)
            except subprocess.TimeoutExpired:
                locust.kill()
                locust.wait()
        elapsed = time.monotonic() - started

        settle = 2 * opts.poll_seconds + 3  # the last breaches of the run are fired within two polls
        time.sleep(settle)
        slack = 2 * opts.poll_seconds + 5
        # an overloaded service fires timers late; give it time to catch up (how long: in the table)
        catch_up = asyncio.run(_catch_up(database_url, slack, CATCH_UP_SECONDS))
        after = _metrics(base, headers)
        checks = asyncio.run(_timer_checks(database_url, slack))
        lateness = asyncio.run(_lateness(database_url))
        sampler.stop()
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=60)
        serve = None

        recorded = rc.load_recorded(records)
        checks = asyncio.run(_checks(database_url, redis_url, prefix, recorded)) + checks
        latency = serverstats.difference(after, before)
        stats = _locust_stats(csv_prefix)
        table, summary = _table(
            opts=opts,
            elapsed=elapsed,
            recorded=recorded,
            stats=stats,
            latency=latency,
            sampler=sampler,
            checks=checks,
            timers=(catch_up, lateness),
        )
        ok = all(c.ok for c in checks) and not stats["failures"] and not stats["errors"]
        summary["ok"] = ok
        return RunResult(ok, checks, recorded, table, database_url, redis_url, prefix, records, summary)
    finally:
        if serve is not None:
            serve.send_signal(signal.SIGTERM)
            serve.wait(timeout=60)
        if not opts.keep:
            if embedded is not None:
                embedded.stop()
            else:
                assert opts.database_url is not None
                asyncio.run(_admin(opts.database_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
                asyncio.run(_drop_keys(redis_url, prefix))
            shutil.rmtree(tmp, ignore_errors=True)
        elif embedded is not None:
            print(f"kept: embedded servers in {tmp / 'data'} are still running", file=sys.stderr)


async def _timer_checks(database_url: str, slack: float) -> list[rc.Check]:
    conn = await connect(database_url)
    try:
        return await rc.reconcile_timers(conn, slack_seconds=slack)
    finally:
        await conn.close()


async def _catch_up(database_url: str, slack: float, limit: float) -> float:
    """Seconds until no due timer is later than ``slack`` (at most ``limit``)."""
    started = time.monotonic()
    conn = await connect(database_url)
    try:
        while time.monotonic() - started < limit:
            late = await conn.fetchval(
                "SELECT count(*) FROM sla_timers WHERE status = 'pending'"
                " AND due_at < now() - make_interval(secs => $1)",
                slack,
            )
            if not late:
                break
            await asyncio.sleep(2)
        return time.monotonic() - started
    finally:
        await conn.close()


async def _lateness(database_url: str) -> list[float]:
    """Seconds SLA timers fired after their due time: p50, p95, p99, max (the pass's start time)."""
    conn = await connect(database_url)
    try:
        row = await conn.fetchrow(
            """SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY s) AS q, max(s) AS m
                 FROM (SELECT extract(epoch FROM resolved_at - due_at)::float8 AS s FROM sla_timers
                        WHERE status = 'fired') t"""
        )
        if row is None or row["q"] is None:
            return []
        return [*row["q"], row["m"]]
    finally:
        await conn.close()


async def _checks(database_url: str, redis_url: str, prefix: str, recorded: rc.Recorded) -> list[rc.Check]:
    conn = await connect(database_url)
    redis = Redis.from_url(redis_url)
    try:
        checks = await rc.reconcile(conn, recorded)
        checks.append(await rc.reconcile_routing(conn, redis, prefix))
        return checks
    finally:
        await redis.aclose()
        await conn.close()


def _locust_stats(prefix: Path) -> dict[str, Any]:
    rows = _locust_csv(prefix, "stats")
    by_name = {
        r["Name"]: (int(r["Request Count"]), int(r["Failure Count"]))
        for r in rows
        if r["Name"] != "Aggregated"
    }
    failures: Counter[str] = Counter()
    for r in _locust_csv(prefix, "failures"):
        failures[f"{r['Name']}: {r['Error']}"] += int(r["Occurrences"])
    errors: Counter[str] = Counter()
    for r in _locust_csv(prefix, "exceptions"):
        errors[r["Message"].strip()[:120]] += int(r["Count"])
    return {"by_name": by_name, "failures": failures, "errors": errors}


def _ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.0f}"


def _table(
    *,
    opts: Options,
    elapsed: float,
    recorded: rc.Recorded,
    stats: dict[str, Any],
    latency: dict[tuple[str, str], serverstats.Histogram],
    sampler: serverstats.Sampler,
    checks: list[rc.Check],
    timers: tuple[float, list[float]],
) -> tuple[str, dict[str, Any]]:
    by_name: dict[str, tuple[int, int]] = stats["by_name"]
    overloaded = sum(n for name, (n, _) in by_name.items() if name.endswith("[503]"))
    dropped = sum(n for name, (n, _) in by_name.items() if name.endswith("[dropped, resent]"))
    requests = sum(
        n
        for name, (n, _) in by_name.items()
        if not name.endswith(("[503]", "[dropped, resent]")) and name != "sla breach"
    )
    leads = len(recorded.leads)
    closed = recorded.actions["close"]
    load = os.getloadavg()
    lines = [
        f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end",
        f"{opts.workflows} concurrent workflows, pace {opts.pace} s per step, {elapsed:.0f} s of traffic, "
        f"{opts.processes} Locust process(es) with {opts.connections} keep-alive connections each, "
        f"{opts.workers} serve worker(s)",
        "",
        f"{'workflows started (leads posted)':<44} {len(recorded.sent):>10}",
        f"{'workflows closed':<44} {closed:>10}",
        f"{'leads answered 201/202':<44} {leads:>10}",
        f"{'client retries, same key (200, same lead)':<44} {recorded.retries:>10}",
        f"{'activity events answered 201':<44} {len(recorded.events):>10}",
        "actions: " + ", ".join(f"{k} {v}" for k, v in sorted(recorded.actions.items())),
        f"{'accepts after a breach moved the lead (409)':<44} {recorded.conflicts:>10}",
        f"{'requests (503s not counted)':<44} {requests:>10}  ({requests / max(elapsed, 1):.1f}/s)",
        f"{'503 with Retry-After, retried':<44} {overloaded:>10}",
        f"{'connections dropped, resent (same key)':<44} {dropped:>10}",
    ]
    failures: Counter[str] = stats["failures"]
    errors: Counter[str] = stats["errors"]
    lines.append(f"{'failures':<44} {sum(failures.values()) + sum(errors.values()):>10}")
    lines += [f"  {n:>8}  {kind}" for kind, n in failures.most_common(12)]
    lines += [f"  {n:>8}  exception: {kind}" for kind, n in errors.most_common(5)]
    lines += ["", "server-side latency from /metrics (ms; bucket-interpolated)"]
    lines.append(f"  {'step / route':<44} {'count':>8} {'p50':>6} {'p95':>6} {'p99':>6}")
    quantiles: dict[str, Any] = {}
    for (metric, label), h in sorted(latency.items()):
        if metric == serverstats.HTTP and not label.startswith("/v1"):
            continue
        name = f"step {label}" if metric == serverstats.STEP else label
        q = [serverstats.quantile(x, h) for x in (0.5, 0.95, 0.99)]
        quantiles[name] = {"count": int(h.observed), "p50": q[0], "p95": q[1], "p99": q[2]}
        lines.append(f"  {name:<44} {int(h.observed):>8} {_ms(q[0]):>6} {_ms(q[1]):>6} {_ms(q[2]):>6}")
    cpu = {group: sampler.cpu_seconds(group) for group in ("serve", "postgres", "redis", "locust")}
    per = max(leads, 1)
    lines += [
        "",
        f"CPU seconds over the run: serve {cpu['serve']:.1f}, PostgreSQL backends {cpu['postgres']:.1f}, "
        f"Redis {cpu['redis']:.1f}, Locust {cpu['locust']:.1f}",
        f"load generator: {cpu['locust'] / max(elapsed, 1):.2f} cores on average "
        f"({opts.processes} process(es); a process saturates at 1.0)",
        f"CPU per lead (its whole workflow): serve {cpu['serve'] / per * 1000:.1f} ms, "
        f"PostgreSQL {cpu['postgres'] / per * 1000:.1f} ms",
    ]
    for pid, peak in sorted(sampler.rss.items()):
        role = "serve" if pid == sampler.serve.pid else "worker"
        lines.append(f"RSS {role} {pid}: peak {peak.peak / 2**20:.0f} MiB, after {peak.last / 2**20:.0f} MiB")
    catch_up, lateness = timers
    if lateness:
        p50, p95, p99, worst = lateness
        lines.append(
            f"SLA breaches fired late by (s): p50 {p50:.1f}, p95 {p95:.1f}, p99 {p99:.1f}, max {worst:.1f}; "
            f"timers caught up {catch_up:.0f} s after the traffic stopped"
        )
    lines += ["", "reconciliation"]
    lines += [f"  {'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}" for c in checks]
    summary = {
        "workflows": opts.workflows,
        "seconds": elapsed,
        "leads": leads,
        "requests": requests,
        "overloaded": overloaded,
        "failures": dict(failures),
        "errors": dict(errors),
        "latency": quantiles,
        "cpu": cpu,
        "checks": [c._asdict() for c in checks],
        "breach_lateness": lateness,
        "timers_caught_up_seconds": catch_up,
    }
    return "\n".join(lines), summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.workflows", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--workflows", type=int, default=10_000, help="concurrent workflows (Locust users)")
    parser.add_argument("--seconds", type=int, default=300, help="how long traffic runs")
    parser.add_argument("--processes", type=int, default=1, help="Locust processes (--processes)")
    parser.add_argument("--workers", type=int, default=1, help="leadroute serve workers (LEADROUTE_WORKERS)")
    parser.add_argument("--pace", default="5-30", help="seconds between a workflow's steps, LOW-HIGH")
    parser.add_argument(
        "--spawn-rate",
        type=float,
        help="users started per second (default: all within --seconds/5, at most 60 s)",
    )
    parser.add_argument(
        "--database-url", help="PostgreSQL to create the run's database in (with --redis-url)"
    )
    parser.add_argument("--redis-url", help="Redis for the run's keys (with --database-url)")
    parser.add_argument(
        "--key",
        default=os.environ.get("LEADROUTE_LOADTEST_KEY"),
        help="API key sent as Authorization: Bearer",
    )
    parser.add_argument(
        "--poll-seconds", type=float, default=2.0, help="the service's LEADROUTE_SLA_POLL_SECONDS"
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=64,
        help="keep-alive connections per Locust process, shared by its users (default 64)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database, Redis keys and records")
    parser.add_argument(
        "--serve-env",
        action="append",
        default=[],
        metavar="VAR=VALUE",
        help="a setting of the service under test (repeatable), e.g. LEADROUTE_GROUP_COMMIT=1",
    )
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    result = run(
        Options(
            workflows=args.workflows,
            seconds=args.seconds,
            processes=args.processes,
            workers=args.workers,
            pace=args.pace,
            spawn_rate=args.spawn_rate,
            database_url=args.database_url,
            redis_url=args.redis_url,
            key=args.key,
            poll_seconds=args.poll_seconds,
            keep=args.keep,
            connections=args.connections,
            serve_env=tuple(args.serve_env),
        )
    )
    print(result.table)
    if args.json:
        import json

        args.json.write_text(json.dumps(result.stats, indent=2, default=str))
    print("\nload test " + ("passed" if result.ok else "FAILED"))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
