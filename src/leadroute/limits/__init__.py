"""Rate limits that hold across the fleet: GCRA buckets in Redis, checked in one script per request.

Every ``/v1`` request is counted against two buckets at once: its client address, and (when it
carries a key) the key for the scope of the route it calls. Both live in Redis under one hash tag
and one Lua script (:file:`gcra.lua`) admits the request only if both have room, and counts it in
both, atomically: the limits are exact however many workers and instances serve. (A request
whose key the instance has not verified lately has its address checked on its own first, before
the key is looked up: :mod:`leadroute.limits.middleware`.) A refused
request gets ``429`` with ``Retry-After``; every answer carries the IETF ``RateLimit-*`` headers
of its tightest bucket. Nothing is written for a refused request: a form or CRM retrying after
``Retry-After`` loses no lead.

Limits are written ``N/s``, ``N/m`` or ``N/h``: ``N`` requests may arrive at once, then one per
``window / N`` (GCRA's burst is the limit itself). ``0`` turns a limit off.
If Redis cannot be reached the request is admitted (and the outage is logged by the rest of the
service): a rate limit must not become a second way to be down.
"""

from __future__ import annotations

import hashlib
import re
from importlib import resources
from typing import Final

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from leadroute.errors import SettingsError
from leadroute.structs import FrozenStruct

__all__ = ["Limit", "RateLimiter", "Verdict", "parse_limit", "parse_scope_limits"]

_SCRIPT: Final = resources.files("leadroute.limits").joinpath("gcra.lua").read_text(encoding="utf-8")
_LIMIT = re.compile(r"^\s*(\d+)\s*/\s*(s|m|h)\s*$")
_WINDOW = {"s": 1, "m": 60, "h": 3600}


class Limit(FrozenStruct, frozen=True, kw_only=True):
    """``count`` requests per ``window`` seconds (that many may come at once, then one per
    ``window / count``)."""

    count: int
    window: int

    @property
    def interval_us(self) -> int:
        """Microseconds between requests at the sustained rate."""
        return max(1, self.window * 1_000_000 // self.count)

    def policy(self) -> str:
        """The ``RateLimit-Policy`` item: ``<count>;w=<window>``."""
        return f"{self.count};w={self.window}"


class Verdict(FrozenStruct, frozen=True, kw_only=True):
    """Whether a request is admitted, and the headers that say how much room is left."""

    admitted: bool
    limit: Limit
    remaining: int
    retry_after: int
    """Seconds until the request would be admitted (0 when it is)."""
    reset: int
    """Seconds until the bucket is full again."""

    def headers(self) -> list[tuple[bytes, bytes]]:
        """``RateLimit-Limit``, ``-Remaining``, ``-Reset``, ``-Policy`` (and ``Retry-After`` if refused)."""
        headers = [
            (b"ratelimit-limit", str(self.limit.count).encode()),
            (b"ratelimit-remaining", str(self.remaining).encode()),
            (b"ratelimit-reset", str(self.reset).encode()),
            (b"ratelimit-policy", self.limit.policy().encode()),
        ]
        if not self.admitted:
            headers.append((b"retry-after", str(max(1, self.retry_after)).encode()))
        return headers


def parse_limit(text: str, *, setting: str) -> Limit | None:
    """``"100/s"``, ``"6000/m"`` → a :class:`Limit`; ``"0"`` → None (no limit)."""
    if text.strip() == "0":
        return None
    match = _LIMIT.match(text)
    if match is None or int(match.group(1)) == 0:
        raise SettingsError(f"{setting}: {text!r} is not a rate; write it as N/s, N/m or N/h (0: no limit)")
    return Limit(count=int(match.group(1)), window=_WINDOW[match.group(2)])


def parse_scope_limits(text: str, *, setting: str) -> dict[str, Limit | None]:
    """``"leads:write=100/s, default=20/s"`` → per scope (``default``: every other scope)."""
    limits: dict[str, Limit | None] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        scope, sep, rate = item.partition("=")
        if not sep or not scope.strip():
            raise SettingsError(f"{setting}: {item!r} is not scope=rate (e.g. leads:write=100/s)")
        limits[scope.strip()] = parse_limit(rate, setting=setting)
    return limits


def _seconds(microseconds: int) -> int:
    return -(-int(microseconds) // 1_000_000)  # rounded up


class RateLimiter:
    """The buckets of one deployment (one key prefix), checked together in one script."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._sha = hashlib.sha1(_SCRIPT.encode(), usedforsecurity=False).hexdigest()  # its Redis name
        self._tag = f"{prefix}:{{ratelimit}}"

    def bucket(self, kind: str, name: str) -> str:
        """The Redis key of a bucket (all share one hash tag)."""
        return f"{self._tag}:{kind}:{name}"

    async def admit(self, buckets: list[tuple[str, Limit]]) -> Verdict | None:
        """Admit a request against every bucket at once (None: no bucket applies).

        The verdict is the tightest bucket's: when admitted, the one with the least room left (the
        first of equals); when refused, the one to wait longest for.
        """
        if not buckets:
            return None
        command: list[str | int] = [len(buckets)]
        command += [key for key, _ in buckets]
        for _, limit in buckets:
            command += [limit.interval_us, limit.count]
        try:
            # EVALSHA itself, not redis-py's Script object: that one costs a Pipeline isinstance
            # check and two wrappers per call (measured in docs/benchmarks.md)
            raw = await self._redis.execute_command("EVALSHA", self._sha, *command)  # type: ignore[no-untyped-call]
        except NoScriptError:  # a new or flushed Redis: load it, once
            raw = await self._redis.execute_command("EVAL", _SCRIPT, *command)  # type: ignore[no-untyped-call]
        admitted = bool(raw[0])
        if admitted:
            remaining = [int(raw[1 + 3 * i]) for i in range(len(buckets))]
            at = remaining.index(min(remaining))
        else:
            waits = [int(raw[2 + 3 * i]) for i in range(len(buckets))]
            at = waits.index(max(waits))
        return Verdict(
            admitted=admitted,
            limit=buckets[at][1],
            remaining=int(raw[1 + 3 * at]),
            retry_after=_seconds(raw[2 + 3 * at]),
            reset=_seconds(raw[3 + 3 * at]),
        )
