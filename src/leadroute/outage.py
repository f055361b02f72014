"""Dependency outages: which errors mean PostgreSQL or Redis does not answer, and one log line each.

While PostgreSQL or Redis is down, every request that needs it fails the same way. Those failures
answer ``503`` with ``Retry-After`` (:mod:`leadroute.api.problems`), not ``500``, and they are
logged once per outage, not as a traceback per request: :data:`OUTAGES` writes one WARNING when a
dependency is first seen down, one summary line a minute while it stays down (how many failures
it answered), and one INFO line when it answers again.

What counts as "down" (:func:`dependency_down`), looking through ``__cause__``/``__context__``:

- Redis: ``redis.exceptions.ConnectionError`` (refused, reset, ``LOADING``) and ``TimeoutError``;
- PostgreSQL: asyncpg's connection-class errors (SQLSTATE 08: cannot connect, connection lost),
  ``CannotConnectNowError`` (starting up or shutting down), the operator-intervention class (57:
  ``AdminShutdownError`` when the server is stopped under a query), ``TooManyConnectionsError``,
  ``ConnectionDoesNotExistError``/``InterfaceError`` about a closed connection, and the
  ``OSError`` family (``ConnectionRefusedError``, a pool ``acquire`` that timed out).

A bare ``OSError`` is attributed to PostgreSQL unless redis-py is in its traceback: asyncpg raises
socket errors (and pool ``acquire`` timeouts) as they are, redis-py wraps its own.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from dataclasses import dataclass

import asyncpg
from redis import exceptions as redis_errors

__all__ = ["OUTAGES", "RETRY_AFTER", "OutageLog", "dependency_down", "quiet_driver_logs"]

log = logging.getLogger("leadroute.outage")

RETRY_AFTER = 5
"""Seconds a client is asked to wait (``Retry-After``) before retrying during an outage."""

_POSTGRES_DOWN: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.PostgresConnectionError,  # SQLSTATE class 08, incl. ConnectionDoesNotExistError
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.OperatorInterventionError,  # class 57: admin/crash shutdown
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    # a pooled connection left mid-operation when the server went away ("cannot switch to state
    # ...; another operation is in progress"): the connection is broken, not the request
    asyncpg.exceptions.InternalClientError,
)
_REDIS_DOWN: tuple[type[BaseException], ...] = (redis_errors.ConnectionError, redis_errors.TimeoutError)


def _closed_connection(exc: BaseException) -> bool:
    """asyncpg's ``InterfaceError`` also covers misuse; only "connection is closed" is an outage."""
    return isinstance(exc, asyncpg.exceptions.InterfaceError) and "closed" in str(exc)


def _raised_by(exc: BaseException, package: str) -> bool:
    return any(f"/{package}/" in frame.filename for frame in traceback.extract_tb(exc.__traceback__))


def dependency_down(exc: BaseException) -> str | None:
    """``"postgres"`` or ``"redis"`` when ``exc`` (or what caused it) says that one does not answer."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _REDIS_DOWN):
            return "redis"
        if isinstance(current, _POSTGRES_DOWN) or _closed_connection(current):
            return "postgres"
        if isinstance(current, OSError):  # refused, reset, unreachable, or a timeout
            return "redis" if _raised_by(current, "redis") else "postgres"
        current = current.__cause__ or current.__context__
    return None


@dataclass(slots=True)
class _Outage:
    since: float
    logged: float
    failures: int = 0
    """Failures since the last line about it."""


class OutageLog:
    """One line when a dependency goes down, a summary a minute while down, one when it is back."""

    def __init__(self, every: float = 60.0) -> None:
        self.every = every
        self._down: dict[str, _Outage] = {}
        self._lock = threading.Lock()  # handlers run on one loop, but tests call from threads too

    def down(self, name: str, exc: BaseException, where: str) -> None:
        """``name`` failed ``where`` with ``exc``: log it if it is news (or a minute has passed)."""
        now = time.monotonic()
        with self._lock:
            outage = self._down.get(name)
            if outage is None:
                self._down[name] = _Outage(since=now, logged=now)
                log.warning(
                    "%s unavailable (%s: %s, at %s); answering 503 with Retry-After until it is back "
                    "(one summary a minute meanwhile)",
                    name,
                    type(exc).__name__,
                    str(exc)[:200] or "no message",
                    where,
                )
                return
            outage.failures += 1
            if now - outage.logged < self.every:
                return
            log.warning(
                "%s still unavailable after %.0f s: %d more failure(s) in the last %.0f s (last: %s)",
                name,
                now - outage.since,
                outage.failures,
                now - outage.logged,
                type(exc).__name__,
            )
            outage.logged, outage.failures = now, 0

    def up(self, name: str) -> None:
        """``name`` answered: if it was down, log that it is back."""
        with self._lock:
            outage = self._down.pop(name, None)
        if outage is not None:
            log.warning("%s is back after %.0f s", name, time.monotonic() - outage.since)

    def is_down(self, name: str) -> bool:
        """Whether ``name`` is being reported down."""
        return name in self._down


OUTAGES = OutageLog()
"""The process's outage log (each worker process has its own)."""


class _DriverRetryFilter(logging.Filter):
    """asyncpg's pool keeps its minimum size by reconnecting in the background, logging a WARNING
    with a traceback for every failed attempt (every second or so while PostgreSQL is down). Those
    become part of the one outage line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None or (down := dependency_down(exc)) is None:
            return True
        OUTAGES.down(down, exc, "the connection pool's background reconnect")
        return False


_FILTER = _DriverRetryFilter()


def quiet_driver_logs() -> None:
    """Route the drivers' own outage retries through :data:`OUTAGES` (idempotent)."""
    logger = logging.getLogger("asyncpg.pool")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
