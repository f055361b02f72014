"""Liveness and readiness."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Response, get
from litestar.di import NamedDependency

from leadroute.outage import OUTAGES
from leadroute.runtime import Runtime

__all__ = ["live", "ready"]


@get("/health/live", summary="The process is up", tags=["health"])
async def live() -> dict[str, str]:
    """Always 200 while the process serves requests."""
    return {"status": "ok"}


@get("/health/ready", summary="PostgreSQL and Redis answer", tags=["health"])
async def ready(rt: NamedDependency[Runtime]) -> Response[dict[str, Any]]:
    """200 when both dependencies answer within the ready timeout, else 503 naming the one that did not.

    ``ruleset_file_conflict`` is 1 (a gauge: alert on it) while the instance runs the last good
    ruleset because its rules file changed under a stored version; ``detail`` says what to do.
    The instance still serves, so it stays ready.
    """
    timeout = rt.settings.ready_timeout

    async def postgres() -> None:
        async with rt.db.acquire(timeout=timeout) as conn:
            await conn.fetchval("SELECT 1", timeout=timeout)

    async def redis() -> None:
        await rt.redis.ping()

    checks: dict[str, str] = {}
    for name, check in (("postgres", postgres), ("redis", redis)):
        try:
            await asyncio.wait_for(check(), timeout)
            checks[name] = "ok"
            OUTAGES.up(name)
        except Exception as exc:
            checks[name] = f"unavailable: {type(exc).__name__}"
            OUTAGES.down(name, exc, "/health/ready")
    ok = all(v == "ok" for v in checks.values())
    body: dict[str, Any] = {"status": "ok" if ok else "unavailable", "checks": checks}
    body["ruleset"] = rt.rules.ruleset.version
    body["ruleset_file_conflict"] = int(rt.file_conflict is not None)
    if rt.file_conflict is not None:
        body["detail"] = rt.file_conflict
    return Response(body, status_code=200 if ok else 503)
