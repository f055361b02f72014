"""What a running instance holds: connections and the active ruleset. Built by the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from redis.asyncio import Redis

from leadroute.config import Settings
from leadroute.routing.state import RoutingState
from leadroute.rules import Ruleset

__all__ = ["ActiveRuleset", "Runtime"]


@dataclass(frozen=True, slots=True)
class ActiveRuleset:
    """A loaded ruleset and its row in ``rulesets``; swapped as one reference, never mutated."""

    ruleset: Ruleset
    id: int


@dataclass(slots=True)
class Runtime:
    """The I/O edges shared by request handlers."""

    settings: Settings
    db: asyncpg.Pool
    redis: Redis
    routing: RoutingState
    rules: ActiveRuleset
