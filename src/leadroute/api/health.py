"""Liveness and readiness."""

from __future__ import annotations

from litestar import Response, get
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec

from leadroute.health import Liveness, Readiness, readiness
from leadroute.runtime import Runtime

__all__ = ["live", "ready"]


@get("/health/live", summary="The process is up", tags=["health"])
async def live() -> Liveness:
    """Always 200 while the process serves requests."""
    return Liveness()


@get(
    "/health/ready",
    summary="PostgreSQL and Redis answer",
    tags=["health"],
    responses={503: ResponseSpec(Readiness, description="A dependency does not answer; ``checks`` names it")},
)
async def ready(rt: NamedDependency[Runtime]) -> Response[Readiness]:
    """200 when both dependencies answer within the ready timeout, else 503 naming the one that did not."""
    report = await readiness(rt)
    return Response(report, status_code=200 if report.ready else 503)
