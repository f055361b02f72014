"""Routing state in Redis: round-robin cursors, claimed atomically by a Lua script.

Keys are built in one place (``RoutingKeys``) and every key of one pool carries the pool's hash
tag, ``{pool:<id>}``, so each script touches a single Redis Cluster slot. Nothing here has a TTL:
an evicted cursor would silently restart a rotation.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from redis.asyncio import Redis

from leadroute.routing.eligibility import Roster

__all__ = ["RoutingKeys", "RoutingState"]

_ROUND_ROBIN = resources.files("leadroute.routing").joinpath("round_robin.lua").read_text(encoding="utf-8")


class RoutingKeys:
    """Builds every Redis key leadroute uses, under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def cursor(self, pool: str) -> str:
        """The id of the owner who got the pool's last lead."""
        return f"{self.prefix}:{{pool:{pool}}}:rr"


class RoutingState:
    """Atomic owner picks over one Redis connection pool."""

    def __init__(self, redis: Redis[Any] | Redis, prefix: str) -> None:  # type: ignore[type-arg]
        self.redis = redis
        self.keys = RoutingKeys(prefix)
        self._round_robin = redis.register_script(_ROUND_ROBIN)

    async def next_round_robin(self, pool: str, roster: Roster) -> str | None:
        """Claim the pool's next eligible owner, or None when nobody is eligible."""
        if not roster.eligible:
            return None
        args: list[str] = []
        for member in roster.members:
            args += (member.id, "1" if member.id in roster.eligible else "0")
        owner = await self._round_robin(keys=[self.keys.cursor(pool)], args=args)
        if owner is None:
            return None
        return owner.decode() if isinstance(owner, bytes) else str(owner)
