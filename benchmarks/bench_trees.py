"""CPU per lead of several source trees of leadroute, interleaved: which change bought what.

    git worktree add --detach /tmp/before main          # the trees to compare, e.g. one per commit
    .venv/bin/python benchmarks/bench_trees.py /tmp/before . --rounds 8 --seconds 10 --connections 16

Starts one ``leadroute serve`` per tree (``PYTHONPATH=<tree>/src``, one worker each) on one
database of its own (dropped afterwards) with the owners, pool and rules of
``bench_intake.py``, then, round after round, runs ``wrk`` against each in turn (the
order rotated every round) and measures the CPU seconds of the serving process over its own run.
All trees are up the whole time, so a busy moment of a shared machine falls on all of them in turn
rather than on one: it prints each round, each tree's CPU per lead over all rounds, and the median
of its per-round ratio to the first tree (the most robust figure on a noisy machine). A connection
count below saturation keeps answers under ``wrk``'s timeout, so every request is a lead.
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
from pathlib import Path

import psutil
from bench_intake import RULES, _cpu, _database, _free_port, _wait, _wrk

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0915  (one story, told in order)
    """Run the rounds; print each, then the totals and ratios."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("trees", nargs="+", type=Path, help="source trees (each with src/leadroute)")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args(argv)
    trees = [t.resolve() for t in args.trees]
    if shutil.which("wrk") is None:
        print("bench_trees needs wrk (apt-get install wrk)", file=sys.stderr)
        return 2
    from leadroute.access import format_key, new_secret

    name = f"leadroute_trees_{secrets.token_hex(4)}"
    key = format_key(secrets.token_hex(4), new_secret())
    asyncio.run(_database(name, drop=False))
    work = Path(tempfile.mkdtemp(prefix="leadroute-trees-"))
    (work / "rules.yaml").write_text(RULES)
    owners = "\n".join(f"  - {{id: rep{i}, name: Rep {i}}}" for i in range(20))
    members = ", ".join(f"rep{i}" for i in range(20))
    (work / "owners.yaml").write_text(f"owners:\n{owners}\npools:\n  - {{id: sales, members: [{members}]}}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADROUTE_") and k != "PYTHONPATH"} | {
        "LEADROUTE_DATABASE_URL": f"postgresql://127.0.0.1:5432/{name}",
        "LEADROUTE_REDIS_URL": "redis://127.0.0.1:6379/0",
        "LEADROUTE_REDIS_PREFIX": name,
        "LEADROUTE_RULES_PATH": str(work / "rules.yaml"),
        "LEADROUTE_LOG_LEVEL": "WARNING",
        "LEADROUTE_SEED_DEMO": "false",
        "LEADROUTE_ADMIN_KEY": key,
    }
    subprocess.run(
        [sys.executable, "-m", "leadroute", "owners", "import", str(work / "owners.yaml")],
        env=env | {"PYTHONPATH": str(trees[0] / "src")},
        check=True,
        capture_output=True,
    )
    served: dict[Path, tuple[int, subprocess.Popen[bytes]]] = {}
    per_round: dict[Path, list[float]] = {t: [] for t in trees}
    cpu = dict.fromkeys(trees, 0.0)
    leads = dict.fromkeys(trees, 0)
    errors = dict.fromkeys(trees, 0)
    try:
        for tree in trees:
            port = _free_port()
            tree_env = env | {"PYTHONPATH": str(tree / "src"), "LEADROUTE_PORT": str(port)}
            served[tree] = port, subprocess.Popen([sys.executable, "-m", "leadroute", "serve"], env=tree_env)
        for port, proc in served.values():
            _wait(f"http://127.0.0.1:{port}/health/ready", proc)
        for tree, (port, _) in served.items():  # warm-up: caches, connection pools
            _wrk(str(tree), f"http://127.0.0.1:{port}", seconds=3, connections=args.connections, key=key)
        for n in range(args.rounds):
            for tree in trees[n % len(trees) :] + trees[: n % len(trees)]:
                port, proc = served[tree]
                process = psutil.Process(proc.pid)
                before = _cpu(process)
                run = _wrk(
                    str(tree),
                    f"http://127.0.0.1:{port}",
                    seconds=args.seconds,
                    connections=args.connections,
                    key=key,
                )
                used = _cpu(process) - before
                done = run.requests - run.errors
                cpu[tree] += used
                leads[tree] += done
                errors[tree] += run.errors
                per_round[tree].append(used / max(done, 1) * 1000)
            figures = "  ".join(f"{t.name} {per_round[t][-1]:.2f}" for t in trees)
            print(f"round {n + 1} (load {os.getloadavg()[0]:.1f}), ms per lead: {figures}", flush=True)
    finally:
        for _, proc in served.values():
            proc.terminate()
            proc.wait(30)
        asyncio.run(_database(name, drop=True))
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"\n{'tree':<24} {'ms/lead':>8} {'leads':>7} {'non-2xx':>8} {'ratio to first (median of rounds)':>34}"
    )
    for tree in trees:
        ratios = sorted(a / b for a, b in zip(per_round[tree], per_round[trees[0]], strict=True))
        ms = cpu[tree] / max(leads[tree], 1) * 1000
        print(
            f"{tree.name:<24} {ms:>8.2f} {leads[tree]:>7} {errors[tree]:>8} "
            f"{statistics.median(ratios):>10.3f} (rounds {ratios[0]:.2f}-{ratios[-1]:.2f})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
