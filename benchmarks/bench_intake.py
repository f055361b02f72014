"""Intake against the HTTP stack's ceiling: ``POST /v1/leads`` vs a hello-world, interleaved.

    .venv/bin/python -m benchmarks.bench_intake                      # 3 rounds of 15 s, 64 connections
    .venv/bin/python -m benchmarks.bench_intake --rounds 5 --seconds 30 --connections 64
    .venv/bin/python -m benchmarks.bench_intake --no-tracing         # without the traced instance

Starts ``leadroute serve`` (one worker, on the local PostgreSQL and Redis at 127.0.0.1:5432 and
6379, in a database of its own that is dropped afterwards) with 20 owners in one round-robin pool
and an SLA on every lead, and ``benchmarks/hello.py`` (Litestar + msgspec decoding a lead-sized
body, served the same way: uvicorn, uvloop, httptools, no access log). Each round runs ``wrk``
against one, then the other, posting a unique ~1 KB lead per request (``post_leads.lua``). It
prints each run, the ratio of the medians (intake / hello-world), and CPU per lead: the service
process's and PostgreSQL's (every ``postgres`` process) CPU seconds over the intake runs divided
by the leads written.

Tracing: a second ``leadroute serve`` on the same database runs with
``OTEL_EXPORTER_OTLP_ENDPOINT`` set to a local OTLP/HTTP receiver in this process (it reads each
export and answers 200, as a collector would), and each round also runs ``wrk`` against it
("intake+otel"), so tracing on and off are interleaved in one run; the ratio of their medians and
the CPU per lead of each are printed. The machine is shared: compare the ratio within one run,
not numbers across runs. Needs ``wrk`` (Debian package ``wrk``).
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple

import asyncpg
import httpx
import psutil

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent
ADMIN_DSN = "postgresql://127.0.0.1:5432/postgres"

RULES = """
version: 1
description: every lead to one pool of 20, with an SLA
scoring:
  groups:
    fit: {max: 100}
  rules:
    - {id: senior, group: fit, when: 'title =~~ "(?i)\\\\bvp\\\\b"', points: 60}
qualification:
  - {id: hot, stage: mql, when: 'score >= 40'}
  - {id: rest, stage: lead}
routing:
  rules:
    - {id: everyone, when: 'true', pool: sales}
  fallback: unassigned
  sla: {accept_within_minutes: 30, on_breach: reassign}
"""


class Run(NamedTuple):
    target: str
    rps: float
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float
    socket_errors: int = 0  # connect, read, write errors and timeouts: requests without an answer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: the server exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit(f"{url}: not answering after {timeout}s")


_DURATION = re.compile(r"([\d.]+)(us|ms|s)\b")


def _ms(text: str) -> float:
    match = _DURATION.match(text)
    if match is None:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def _wrk(target: str, base: str, *, seconds: int, connections: int, key: str) -> Run:
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",  # a slow answer is an answer (wrk's default, 2 s, drops it from every count)
            "30s",
            "--latency",
            "-s",
            str(ROOT / "benchmarks/post_leads.lua"),
            base,
        ],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ | {"LEADROUTE_BENCH_KEY": key},  # post_leads.lua sends it
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    # the latency distribution's own lines: "+/- Stdev" columns end in % too ("70.50%")
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    socket_errors = sum(int(n) for n in sockets.groups()) if sockets else 0
    return Run(target, rps, requests, errors, p50, p99, socket_errors)


class _Receiver(BaseHTTPRequestHandler):
    """An OTLP/HTTP trace receiver that reads each export, counts it, and answers 200."""

    exports = 0
    received = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        type(self).exports += 1
        type(self).received += len(body)
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        del format, args


def _cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def _postgres_cpu() -> float:
    total = 0.0
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] == "postgres":
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                continue
    return total


async def _database(name: str, *, drop: bool) -> None:
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(
            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' if drop else f'CREATE DATABASE "{name}"'
        )
    finally:
        await conn.close()


def intake_env(name: str, key: str, work: Path, port: int) -> dict[str, str]:
    """The environment of a ``leadroute serve`` on database ``name`` with admin key ``key``,
    listening on ``port``, with the benchmark's ruleset and 20 owners (imported here) in ``work``."""
    (work / "rules.yaml").write_text(RULES)
    owners = "\n".join(f"  - {{id: rep{i}, name: Rep {i}}}" for i in range(20))
    members = ", ".join(f"rep{i}" for i in range(20))
    (work / "owners.yaml").write_text(f"owners:\n{owners}\npools:\n  - {{id: sales, members: [{members}]}}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADROUTE_")} | {
        "LEADROUTE_DATABASE_URL": f"postgresql://127.0.0.1:5432/{name}",
        "LEADROUTE_REDIS_URL": "redis://127.0.0.1:6379/0",
        "LEADROUTE_REDIS_PREFIX": name,
        "LEADROUTE_RULES_PATH": str(work / "rules.yaml"),
        "LEADROUTE_PORT": str(port),
        "LEADROUTE_LOG_LEVEL": "WARNING",
        "LEADROUTE_SEED_DEMO": "false",
        "LEADROUTE_ADMIN_KEY": key,
    }
    subprocess.run(
        [sys.executable, "-m", "leadroute", "owners", "import", str(work / "owners.yaml")],
        env=env,
        check=True,
        capture_output=True,
    )
    return env


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0915  (one story, told in order)
    """Run the benchmark; print each run and the ratio."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--no-tracing", action="store_true", help="leave out the instance with OTLP tracing on"
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:VAR=VALUE[,VAR=VALUE]",
        help="one more instance with these environment variables, interleaved with the others "
        "(e.g. alone:LEADROUTE_GROUP_COMMIT=1): a lever measured on and off in one run",
    )
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("bench_intake needs wrk (apt-get install wrk)", file=sys.stderr)
        return 2
    import asyncio

    from leadroute.access import format_key, new_secret

    name = f"leadroute_bench_{secrets.token_hex(4)}"
    key = format_key(secrets.token_hex(4), new_secret())  # the service's admin key, sent by wrk
    asyncio.run(_database(name, drop=False))
    work = Path(tempfile.mkdtemp(prefix="leadroute-bench-"))
    port, hello_port = _free_port(), _free_port()
    env = intake_env(name, key, work, port)
    service = subprocess.Popen([sys.executable, "-m", "leadroute", "serve"], env=env, cwd=ROOT)
    hello = subprocess.Popen([sys.executable, str(ROOT / "benchmarks/hello.py"), str(hello_port)], cwd=ROOT)
    targets = {"intake": (port, service)}
    receiver = None
    if not args.no_tracing:
        receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
        threading.Thread(target=receiver.serve_forever, daemon=True).start()
        traced_port = _free_port()
        traced_env = env | {
            "LEADROUTE_PORT": str(traced_port),
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.server_address[1]}",
        }
        traced = subprocess.Popen([sys.executable, "-m", "leadroute", "serve"], env=traced_env, cwd=ROOT)
        targets["intake+otel"] = (traced_port, traced)
    for variant in args.variant:
        label, _, assignments = variant.partition(":")
        extra = dict(item.split("=", 1) for item in assignments.split(",") if item)
        variant_port = _free_port()
        variant_env = env | extra | {"LEADROUTE_PORT": str(variant_port)}
        proc = subprocess.Popen([sys.executable, "-m", "leadroute", "serve"], env=variant_env, cwd=ROOT)
        targets[f"intake[{label}]"] = (variant_port, proc)
    runs: list[Run] = []
    cpu_service = dict.fromkeys(targets, 0.0)
    cpu_postgres = dict.fromkeys(targets, 0.0)
    leads = dict.fromkeys(targets, 0)
    try:
        for target_port, proc in targets.values():
            _wait(f"http://127.0.0.1:{target_port}/health/ready", proc)
        _wait(f"http://127.0.0.1:{hello_port}/", hello)
        for _ in range(args.rounds):
            runs.append(
                _wrk(
                    "hello-world",
                    f"http://127.0.0.1:{hello_port}",
                    seconds=args.seconds,
                    connections=args.connections,
                    key=key,
                )
            )
            for target, (target_port, proc) in targets.items():
                served = psutil.Process(proc.pid)
                before = _cpu(served), _postgres_cpu()
                run = _wrk(
                    target,
                    f"http://127.0.0.1:{target_port}",
                    seconds=args.seconds,
                    connections=args.connections,
                    key=key,
                )
                postgres = _postgres_cpu()
                if receiver is not None:  # the last spans are exported (and counted); both alike
                    time.sleep(6)
                cpu_service[target] += _cpu(served) - before[0]
                cpu_postgres[target] += postgres - before[1]
                leads[target] += run.requests - run.errors
                runs.append(run)
    finally:
        for proc in (hello, *(p for _, p in targets.values())):
            proc.terminate()
            proc.wait(30)
        if receiver is not None:
            receiver.shutdown()
        asyncio.run(_database(name, drop=True))
        shutil.rmtree(work, ignore_errors=True)
    _report(runs, list(targets), leads, cpu_service, cpu_postgres)
    return 0


def _report(
    runs: list[Run],
    targets: list[str],
    leads: dict[str, int],
    cpu_service: dict[str, float],
    cpu_postgres: dict[str, float],
) -> None:
    print(f"{'target':<16} {'req/s':>9} {'requests':>9} {'non-2xx':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for r in runs:
        print(f"{r.target:<16} {r.rps:>9.0f} {r.requests:>9} {r.errors:>8} {r.p50_ms:>8.1f} {r.p99_ms:>8.1f}")
    refused = sum(r.errors for r in runs)
    if refused:
        print(f"\nWARNING: {refused} non-2xx answers (see the table): the ratios below count them as work")
    if unanswered := sum(r.socket_errors for r in runs):
        print(f"\nWARNING: {unanswered} requests without an answer (wrk's socket errors): not counted above")
    median = {t: statistics.median(r.rps for r in runs if r.target == t) for t in ("hello-world", *targets)}
    print(f"\nload average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end, {os.cpu_count()} CPUs")
    print(f"intake / hello-world (medians): {median['intake'] / median['hello-world']:.2f}")
    if "intake+otel" in median:
        print(
            "tracing on / off (intake+otel / intake, medians): "
            f"{median['intake+otel'] / median['intake']:.2f}"
            f" ({_Receiver.exports} OTLP exports, {_Receiver.received / 2**20:.1f} MiB received)"
        )
    for target in targets:
        if target.startswith("intake["):
            print(f"{target} / intake (medians): {median[target] / median['intake']:.2f}")
    for target in targets:
        if leads[target]:
            service_ms = cpu_service[target] / leads[target] * 1000
            postgres_ms = cpu_postgres[target] / leads[target] * 1000
            print(f"CPU per lead, {target}: service {service_ms:.2f} ms, PostgreSQL {postgres_ms:.2f} ms")


if __name__ == "__main__":
    raise SystemExit(main())
