"""The rate limit middleware: every ``/v1`` request against its address and key buckets."""

from __future__ import annotations

import logging
from typing import Literal

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

from leadroute.access import required_scope
from leadroute.limits import Limit, RateLimiter, Verdict

__all__ = ["RateLimitMiddleware", "RateLimits"]

log = logging.getLogger(__name__)


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


def _tightest(
    headers: list[tuple[bytes, bytes]], ours: list[tuple[bytes, bytes]], remaining: int
) -> list[tuple[bytes, bytes]]:
    """The response's headers with the ``RateLimit-*`` set of the tighter bucket: the address's
    (added last, as its stage wraps the key's) or the key's, whichever has less room left."""
    theirs = {name: value for name, value in headers if name.startswith(b"ratelimit-")}
    if theirs and int(theirs.get(b"ratelimit-remaining", b"0")) <= remaining:
        return headers
    return [(name, value) for name, value in headers if not name.startswith(b"ratelimit-")] + ours


class RateLimitMiddleware:
    """ASGI middleware: admit the request against its buckets, or answer 429 with ``Retry-After``.

    ``by="address"`` runs before the access check (so a flood of bad keys is limited too);
    ``by="key"`` after it, on the verified key and the scope of the route it calls (a key id is
    public: counting unverified ones would let anyone spend another client's limit).
    """

    def __init__(self, app: ASGIApp, *, limits: RateLimits, by: Literal["address", "key"]) -> None:
        self.app = app
        self.limits = limits
        self.by = by

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limiter = self.limits.limiter
        if scope["type"] != ScopeType.HTTP or not scope["path"].startswith("/v1/") or limiter is None:
            await self.app(scope, receive, send)
            return
        buckets: list[tuple[str, Limit]] = []
        if self.by == "address":
            if self.limits.per_address is not None and scope.get("client"):
                address = scope["client"][0]  # type: ignore[index]
                buckets.append((limiter.bucket("address", address), self.limits.per_address))
        elif (principal := scope.get("auth")) is not None:
            route_scope = required_scope(scope["method"], scope.get("path_template", ""))
            if route_scope is not None and (limit := self.limits.for_scope(route_scope)) is not None:
                buckets.append((limiter.bucket("key", f"{principal.key_id}:{route_scope}"), limit))
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
                message["headers"] = _tightest(list(message.get("headers", [])), extra, verdict.remaining)
            await send(message)

        await self.app(scope, receive, send_with_headers)
