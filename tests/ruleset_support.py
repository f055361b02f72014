"""Helpers for the ruleset version tests: small rule files that differ by version and points."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

YAML = {"content-type": "application/yaml"}


def rules_text(
    version: int, points: int = 10, *, expect: float | None = None, pool: str = "sales", note: str = ""
) -> str:
    """A ruleset scoring every lead ``points``, routing all to ``pool``, with one test of the score.

    ``expect`` (default: ``points``) is what its test expects, so a wrong one makes it fail;
    ``note`` changes the content (the description) without changing behaviour.
    """
    expected = points if expect is None else expect
    return f"""version: {version}
description: version {version}{note}
scoring:
  groups:
    fit: {{max: 1000}}
  rules:
    - {{id: base, group: fit, when: 'true', points: {points}}}
qualification:
  - {{id: rest, stage: lead}}
routing:
  rules:
    - {{id: everyone, when: 'true', pool: {pool}}}
  fallback: unassigned
tests:
  - name: every lead scores {expected}
    lead: {{email: test@example.com}}
    expect: {{score: {expected}}}
"""


async def upload(client: AsyncTestClient[Litestar], text: str, **headers: str) -> Any:
    return await client.post("/v1/rulesets", content=text.encode(), headers=YAML | headers)


async def active_version(client: AsyncTestClient[Litestar]) -> int:
    r = await client.get("/v1/rulesets/active")
    assert r.status_code == 200, r.text
    version: int = r.json()["version"]
    return version


async def wait_for_version(client: AsyncTestClient[Litestar], version: int, *, within: float = 1.0) -> float:
    """Poll ``GET /v1/rulesets/active`` until it shows ``version``; the seconds it took.

    Fails if it does not within ``within`` seconds.
    """
    start = time.monotonic()
    while True:
        seen = await active_version(client)
        elapsed = time.monotonic() - start
        if seen == version:
            return elapsed
        assert elapsed < within, f"still v{seen} after {elapsed:.2f}s, expected v{version}"
        await asyncio.sleep(0.01)
