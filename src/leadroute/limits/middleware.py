"""The rate limit middleware: every ``/v1`` request against its address and key buckets.

Two stages of one middleware class, around the access check (:class:`leadroute.access.AccessMiddleware`):
``by="address"`` before it, ``by="key"`` after it. A request whose key this instance verified
recently (a hit in :class:`leadroute.access.KeyCache`, which the access check will answer without
I/O) is checked against both buckets in **one** script call, by the key stage: the address stage
leaves its bucket in the scope for it. Any other request (no key, a key not in the cache, an
unknown one) has its address checked first, before the access check looks the key up, so a flood
of bad keys is limited as before; its key bucket is then checked on its own. One round trip to
Redis per request on the common path instead of two (measured in docs/benchmarks.md).

A deferred address bucket is still counted when the access check refuses the request (403, 415):
the address stage counts it as the refusal passes, and answers 429 instead if the address has no
room left, as it would have before the access check.
"""

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

from leadroute.access import KeyCache, required_scope
from leadroute.limits import Limit, RateLimiter, Verdict

__all__ = ["RateLimitMiddleware", "RateLimits"]

log = logging.getLogger(__name__)

_DEFERRED = "leadroute.ratelimit.address"
"""The scope entry where the address stage leaves its bucket for the key stage."""


class RateLimits:
    """The limits of one app, and the limiter and key cache (set when the app starts: they need
    Redis and PostgreSQL)."""

    def __init__(self, *, per_address: Limit | None, per_scope: dict[str, Limit | None]) -> None:
        self.per_address = per_address
        self.per_scope = per_scope
        self.limiter: RateLimiter | None = None
        self.keys: KeyCache | None = None
        """The access check's cache: a request whose key it holds has both buckets checked at once."""

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


def _bearer(scope: Scope) -> str | None:
    """The token of an ``Authorization: Bearer`` header, as the access check reads it."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            kind, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if kind.lower() == "bearer" and token.strip() else None
    return None


class RateLimitMiddleware:
    """ASGI middleware: admit the request against its buckets, or answer 429 with ``Retry-After``.

    ``by="address"`` runs before the access check (so a flood of bad keys is limited too);
    ``by="key"`` after it, on the verified key and the scope of the route it calls (a key id is
    public: counting unverified ones would let anyone spend another client's limit). See the
    module docstring for when the address bucket is checked by the key stage instead.
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
            if self.limits.per_address is None or not scope.get("client"):
                await self.app(scope, receive, send)
                return
            address = limiter.bucket("address", scope["client"][0])  # type: ignore[index]
            if scope["method"] != "OPTIONS" and self._known_key(scope):  # a preflight: the access check's
                await self._deferred(limiter, (address, self.limits.per_address), scope, receive, send)
                return
            buckets.append((address, self.limits.per_address))
        else:
            if (principal := scope.get("auth")) is not None:
                route_scope = required_scope(scope["method"], scope.get("path_template", ""))
                if route_scope is not None and (limit := self.limits.for_scope(route_scope)) is not None:
                    buckets.append((limiter.bucket("key", f"{principal.key_id}:{route_scope}"), limit))
            if (deferred := scope.pop(_DEFERRED, None)) is not None:  # type: ignore[misc]
                buckets.append(deferred)  # after the key's: of equal room left, the key's headers
        verdict = await _admit(limiter, buckets)
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

    def _known_key(self, scope: Scope) -> bool:
        """Whether the access check will find this request's key verified in its cache (no I/O)."""
        keys = self.limits.keys
        if keys is None:
            return False
        token = _bearer(scope)
        return token is not None and keys.cached(token) is not None

    async def _deferred(
        self, limiter: RateLimiter, bucket: tuple[str, Limit], scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Leave the address bucket to the key stage; count it here if the request never got there."""
        scope[_DEFERRED] = bucket  # type: ignore[literal-required]
        try:
            await self.app(scope, receive, send)
        except Exception:
            if scope.pop(_DEFERRED, None) is None:  # type: ignore[misc]
                raise  # counted by the key stage: the error came later
            verdict = await _admit(limiter, [bucket])
            if verdict is None or verdict.admitted:
                raise
            start, body = _refusal(verdict)  # as the address stage would have answered first
            await send(start)
            await send(body)
            return
        if scope.pop(_DEFERRED, None) is not None:  # type: ignore[misc]
            await _admit(limiter, [bucket])  # answered without reaching the key stage: still counted


async def _admit(limiter: RateLimiter, buckets: list[tuple[str, Limit]]) -> Verdict | None:
    try:
        return await limiter.admit(buckets)
    except RedisError:  # unreachable: admit (the outage is the dependency checks' to report)
        return None
