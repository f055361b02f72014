"""Where a worker's CPU goes, by part of the stack, from a py-spy raw profile.

    .venv/bin/py-spy record -p PID -d 25 -r 200 -f raw -o intake.raw --nonblocking
    .venv/bin/python benchmarks/profile_shares.py intake.raw

Each sample is counted once, under the first group (below) that a frame of its stack belongs to,
walking from the innermost frame outwards: time in asyncpg called from the writer is the
PostgreSQL client's, time in the writer's own code is the workflow's. Prints each group's share of
the samples (multiply by the CPU per lead of the same run for milliseconds per lead).
"""

from __future__ import annotations

import collections
import sys
from pathlib import Path

__all__ = ["GROUPS", "main", "shares"]

GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("PostgreSQL client (asyncpg)", ("asyncpg/",)),
    ("Redis client (redis-py)", ("redis/",)),
    (
        "normalization (email-validator, phonenumbers, tldextract, parsing)",
        ("email_validator", "phonenumbers", "tldextract", "leadroute/intake/"),
    ),
    ("rules (compiled scoring, qualification, routing)", ("leadroute/scoring/", "leadroute/rules/", "re2")),
    ("routing eligibility and the pick's arguments", ("leadroute/routing/",)),
    ("workflow (runner, writer, event payloads)", ("leadroute/workflow/", "leadroute/store/", "msgspec")),
    ("metrics and tracing hooks", ("prometheus_client", "leadroute/telemetry", "opentelemetry", "trace/")),
    (
        "access check, rate-limit and admission middleware",
        ("leadroute/access/", "leadroute/limits/", "leadroute/api/admission"),
    ),
    (
        "HTTP server and Litestar (uvicorn, httptools, Litestar, anyio)",
        ("uvicorn/", "litestar/", "httptools", "anyio/", "leadroute/server.py", "leadroute/api/"),
    ),
    ("event loop (uvloop, asyncio)", ("asyncio/", "uvloop")),
)


def shares(lines: list[str]) -> tuple[collections.Counter[str], int]:
    """Samples per group, and all samples, of a py-spy raw profile's lines."""
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in lines:
        stack, _, n = line.rstrip().rpartition(" ")
        if not stack:
            continue
        samples = int(n)
        total += samples
        group = next(
            (
                name
                for frame in reversed(stack.split(";"))
                for name, marks in GROUPS
                if any(mark in frame for mark in marks)
            ),
            "other",
        )
        counts[group] += samples
    return counts, total


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    counts, total = shares(Path(args[0]).read_text(encoding="utf-8").splitlines())
    for name, samples in counts.most_common():
        print(f"{100 * samples / total:5.1f} %  {name}")
    print(f"{total} samples")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
