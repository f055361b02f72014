"""What a running instance holds: connections and the active ruleset. Built by the app's lifespan."""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg
from redis.asyncio import Redis

from leadroute.access import KeyCache
from leadroute.config import Settings
from leadroute.inbound import Inbound
from leadroute.routing.assign import Router
from leadroute.rules import Ruleset

__all__ = [
    "CLIENT_GONE",
    "ActiveRuleset",
    "Backlog",
    "Clock",
    "CommitGroups",
    "RulesetFollower",
    "Runtime",
    "utc_now",
]

CLIENT_GONE: contextvars.ContextVar[asyncio.Event | None] = contextvars.ContextVar(
    "leadroute_client_gone", default=None
)
"""Set (by :mod:`leadroute.api.admission`) for a request whose body has arrived: the event is set
once its client closes the connection. The transaction runner drops such work before it starts."""

Clock = Callable[[], datetime]
"""What time it is (timezone-aware UTC); tests inject their own to move time."""


def utc_now() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class ActiveRuleset:
    """A loaded ruleset and its row in ``rulesets``; swapped as one reference, never mutated."""

    ruleset: Ruleset
    id: int


class RulesetFollower(Protocol):
    """What handlers use of :class:`leadroute.rulesets.RulesetSync` (a Protocol: no import cycle)."""

    async def refresh(self) -> bool: ...
    def remember(self, ruleset_id: int, ruleset: Ruleset) -> None: ...


@dataclass(slots=True)
class Backlog:
    """Whether this instance's background work is behind (due SLA timers late): set by the
    scheduler each pass, read by admission control, which then admits fewer requests so the
    timers catch up (:mod:`leadroute.api.admission`). One per app."""

    behind: bool = False
    lag_seconds: float = 0.0
    """How late the oldest due timer was at the last pass."""


@dataclass(slots=True)
class CommitGroups:
    """Single-lead changes waiting to share a transaction, and the tasks writing them
    (:func:`leadroute.workflow.runner.run_grouped`). One per runtime."""

    waiting: deque[Any] = field(default_factory=deque)
    writers: set[asyncio.Task[None]] = field(default_factory=set)


@dataclass(slots=True)
class Runtime:
    """The I/O edges shared by request handlers."""

    settings: Settings
    db: asyncpg.Pool
    """Connections for requests."""
    redis: Redis
    routing: Router
    rules: ActiveRuleset
    clock: Clock = field(default=utc_now)
    """Every "now" in routing, SLA timers and decay comes from here, never from ``datetime.now``."""
    rulesets: RulesetFollower | None = None
    """Follows the fleet's active ruleset and swaps ``rules`` (``rulesets.RulesetSync``); set at start."""
    file_conflict: str | None = None
    """Why this instance does not run its rules file (changed under a stored version), if so: it
    runs the last good version, and ``/health/ready`` says so (``store.rulesets.start_ruleset``)."""
    keys: KeyCache = field(default_factory=lambda: KeyCache(ttl=5.0))
    """Verified API keys, remembered for ``settings.key_cache_seconds`` (the lifespan sets it)."""
    background_db: asyncpg.Pool | None = None
    """Connections of the background work (SLA timers, queue drain, decay) of its own, so that an
    instance flooded with requests still fires its timers (None: it shares :attr:`db`)."""
    inbound: Inbound | None = None
    """The inbound routes' mapping files and HTTP client (``leadroute.inbound``); set at start."""
    backlog: Backlog = field(default_factory=Backlog)
    """The background work's lag, shared with admission control (the app passes its own)."""
    drain_wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when this instance freed routing capacity: the queue drain runs without waiting its interval."""
    groups: CommitGroups = field(default_factory=CommitGroups)
    """Group commit of single-lead intakes (``settings.group_commit``)."""

    def pool(self, *, background: bool = False) -> asyncpg.Pool:
        """The connections for requests, or for the background work."""
        return (self.background_db or self.db) if background else self.db
