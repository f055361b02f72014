"""The rate limit middleware: every ``/v1`` request against its address and key buckets."""

from __future__ import annotations

import logging
from typing import Final

import msgspec
from litestar.enums import ScopeType
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Message,
    Receive,
    Scope,
    Send,
)
from redis.exceptions import RedisError

from leadroute.limits import Limit, RateLimiter, Verdict

__all__ = ["RateLimitMiddleware", "RateLimits"]

log = logging.getLogger(__name__)

IDENTITY: Final = "leadroute.identity"
"""Where the access middleware leaves the caller's ``(key id, scope of the route)`` in the ASGI
scope's ``state``, once the key is verified; the per-key bucket uses it."""


class RateLimits:
    """The limits of one app and the limiter (set when the app starts: it needs Redis)."""

    def __init__(self, *, per_address: Limit | None, per_scope: dict[str, Limit | None]) -> None:
        self.per_address = per_address
        self.per_scope = per_scope
        self.limiter: RateLimiter | None = None

    def for_scope(self, scope: str) -> Limit | None:
        return self.per_scope.get(scope, self.per_scope.get("default"))


def _refusal(verdict: Verdict) -> tuple[HTTPResponseStartEvent, HTTPResponseBodyEvent]:
    body = msgspec.json.encode(
        {
            "type": "https://leadroute.dev/problems/rate-limited",
            "title": "Too many requests",
            "status": 429,
            "detail": f"the rate limit ({verdict.limit.count} per {verdict.limit.window} s) is reached; "
            f"retry after {max(1, verdict.retry_after)} s",
        }
    )
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": 429,
        "headers": [
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(body)).encode()),
            *verdict.headers(),
        ],
    }
    return start, {"type": "http.response.body", "body": body, "more_body": False}


class RateLimitMiddleware:
    """ASGI middleware: admit the request against its buckets, or answer 429 with ``Retry-After``."""

    def __init__(self, app: ASGIApp, *, limits: RateLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limiter = self.limits.limiter
        if scope["type"] != ScopeType.HTTP or not scope["path"].startswith("/v1/") or limiter is None:
            await self.app(scope, receive, send)
            return
        buckets: list[tuple[str, Limit]] = []
        if self.limits.per_address is not None and scope.get("client"):
            address = scope["client"][0]  # type: ignore[index]
            buckets.append((limiter.bucket("address", address), self.limits.per_address))
        identity = scope.get("state", {}).get(IDENTITY)
        if identity is not None:
            key_id, route_scope = identity
            if (limit := self.limits.for_scope(route_scope)) is not None:
                buckets.append((limiter.bucket("key", f"{key_id}:{route_scope}"), limit))
        try:
            verdict = await limiter.admit(buckets)
        except RedisError:  # unreachable: admit (the outage is the dependency checks' to report)
            verdict = None
        if verdict is None:
            await self.app(scope, receive, send)
            return
        if not verdict.admitted:
            start, body = _refusal(verdict)
            await send(start)
            await send(body)
            return
        extra = verdict.headers()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
