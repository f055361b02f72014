"""Liveness and readiness: whether this instance serves, and whether its dependencies answer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from leadroute.outage import OUTAGES
from leadroute.runtime import Runtime
from leadroute.store.queries import QUERIES
from leadroute.structs import Struct

__all__ = ["Liveness", "Readiness", "readiness"]


class Liveness(Struct, kw_only=True):
    """The process is up and serving requests."""

    status: Literal["ok"] = "ok"


class Readiness(Struct, kw_only=True):
    """Whether PostgreSQL and Redis answer (the body of the 200 and of the 503)."""

    status: Literal["ok", "unavailable"]
    """``ok`` when every check is ``ok``."""
    checks: dict[str, str]
    """Dependency (``postgres``, ``redis``) → ``ok`` or ``unavailable: <exception type>``."""
    ruleset: int
    """The version of the ruleset this instance runs."""
    ruleset_file_conflict: int = 0
    """1 (a gauge: alert on it) while the instance runs the last good ruleset because its rules
    file changed under a stored version; ``detail`` says what to do. The instance still serves,
    so it stays ready."""
    detail: str | None = None
    mapping_file_problems: int = 0
    """How many inbound mapping files this instance does not run (they do not load, or changed
    under a stored version) while it runs their last good version instead; an alert gauge like
    ``ruleset_file_conflict``. ``mapping_problems`` names each file with its first problem."""
    mapping_problems: dict[str, str] | None = None

    @property
    def ready(self) -> bool:
        return self.status == "ok"


async def readiness(rt: Runtime) -> Readiness:
    """Check each dependency within the ready timeout; one that fails or is late is named."""
    timeout = rt.settings.ready_timeout

    async def postgres() -> None:
        async with rt.db.acquire(timeout=timeout) as conn:
            await conn.fetchval(QUERIES["ping"], timeout=timeout)

    async def redis() -> None:
        await rt.redis.ping()

    checks: dict[str, str] = {}
    probes: tuple[tuple[str, Callable[[], Awaitable[None]]], ...] = (("postgres", postgres), ("redis", redis))
    for name, check in probes:
        try:
            await asyncio.wait_for(check(), timeout)
            checks[name] = "ok"
            OUTAGES.up(name)
        except Exception as exc:
            checks[name] = f"unavailable: {type(exc).__name__}"
            OUTAGES.down(name, exc, "/health/ready")
    ok = all(v == "ok" for v in checks.values())
    return Readiness(
        status="ok" if ok else "unavailable",
        checks=checks,
        ruleset=rt.rules.ruleset.version,
        ruleset_file_conflict=int(rt.file_conflict is not None),
        detail=rt.file_conflict,
        **_mapping_problems(rt),
    )


def _mapping_problems(rt: Runtime) -> dict[str, Any]:
    problems = rt.inbound.mappings.problems if rt.inbound is not None else {}
    if not problems:
        return {}
    return {
        "mapping_file_problems": len(problems),
        "mapping_problems": {name: text.splitlines()[0] for name, text in problems.items()},
    }
