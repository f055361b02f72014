"""Admission control: past a bound on requests in flight, a worker answers 503 at once.

Without it an overloaded worker queues every request it accepts (on the event loop, then on the
connection pool) and answers a minute later, for clients that have long given up. With it, each
worker serves at most ``LEADROUTE_MAX_IN_FLIGHT`` ``/v1`` requests at a time; the next one gets a
``503`` problem+json with ``Retry-After`` in microseconds, so clients (and load balancers) back off
or go elsewhere. Health checks and ``/schema`` are never refused.
"""

from __future__ import annotations

from typing import Final

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPResponseBodyEvent, HTTPResponseStartEvent, Receive, Scope, Send

__all__ = ["AdmissionControl", "InFlight"]

_BODY: Final = msgspec.json.encode(
    {
        "type": "https://leadroute.dev/problems/overloaded",
        "title": "Overloaded",
        "status": 503,
        "detail": "this instance is serving as many requests as it can; retry after the given seconds",
    }
)


class InFlight:
    """The count of ``/v1`` requests in flight in this worker, and its bound: one per app, shared by
    the middleware of every route (Litestar builds a middleware stack per route handler)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0


class AdmissionControl:
    """ASGI middleware: at most ``gate.limit`` ``/v1`` requests in flight in this worker."""

    def __init__(self, app: ASGIApp, *, gate: InFlight, retry_after: int = 1) -> None:
        self.app = app
        self.gate = gate
        self._headers = [
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(_BODY)).encode()),
            (b"retry-after", str(retry_after).encode()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        gate = self.gate
        if gate.count >= gate.limit:
            start: HTTPResponseStartEvent = {
                "type": "http.response.start",
                "status": 503,
                "headers": self._headers,
            }
            body: HTTPResponseBodyEvent = {"type": "http.response.body", "body": _BODY, "more_body": False}
            await send(start)
            await send(body)
            return
        gate.count += 1
        try:
            await self.app(scope, receive, send)
        finally:
            gate.count -= 1
