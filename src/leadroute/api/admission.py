"""Admission control: past a bound on requests in flight, a worker answers 503 at once.

Without it an overloaded worker queues every request it accepts (on the event loop, then on the
connection pool) and answers a minute later, for clients that have long given up. With it, each
worker serves at most ``LEADROUTE_MAX_IN_FLIGHT`` ``/v1`` requests at a time; the next one gets a
``503`` problem+json with ``Retry-After`` in microseconds, so clients (and load balancers) back off
or go elsewhere. Health checks and ``/schema`` are never refused.

``Retry-After`` follows the load (:meth:`InFlight.retry_after`): the seconds this worker needs, at
the throughput it had over the last :data:`WINDOW` seconds, to serve what is in flight plus the
clients it refused over the last second (they come back too). A fixed ``1`` brought every refused
client back a second later, so at 20x overload refusals became most of the traffic and took the
CPU the real requests needed. Clamped to [1, :data:`RETRY_AFTER_CAP`] seconds.

Once a request's body has arrived, the middleware watches for its client closing the connection
(:data:`leadroute.runtime.CLIENT_GONE`); the transaction runner drops the work of a client that
left while it waited for a database connection, before its transaction starts (answered 499,
which nobody reads), so a worker behind on its queue does not spend itself on abandoned requests.

Work already started comes before new work: SLA timers are the service's promise to sales, and
they share the worker's event loop and database with the requests. When the scheduler finds a due
timer later than :data:`leadroute.workflow.scheduler.BEHIND_AFTER` seconds past a poll, a new
lead (``POST /v1/leads``) is admitted only while fewer than :data:`BEHIND_LIMIT` requests are in
flight, until a pass finds the timers caught up. Activity, accept, reassign and close keep the
normal bound: they finish work (an accept stops a timer), while each new lead adds a timer.
Measured in the 10,000-workflow run (docs/benchmarks.md): refusing everything while behind
starved the accepts, so timers kept breaching and the breaches became most of the work.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Final

import msgspec
from litestar.enums import ScopeType
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Receive,
    ReceiveMessage,
    Scope,
    Send,
)

from leadroute.runtime import CLIENT_GONE, Backlog

__all__ = ["BEHIND_LIMIT", "RETRY_AFTER_CAP", "WINDOW", "AdmissionControl", "InFlight"]

BEHIND_LIMIT: Final = 16
"""While its SLA timers are late, a worker admits a new lead only with fewer requests than this in
flight (see the module docstring)."""

WINDOW: Final = 2.0
"""Seconds over which the throughput and the refusals that set ``Retry-After`` are measured."""
RETRY_AFTER_CAP: Final = 60
"""The longest ``Retry-After``, in seconds."""

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

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = limit
        self.count = 0
        self.backlog = Backlog()
        """Set by the scheduler: while the timers are late, new leads get a tighter bound."""
        self._clock = clock
        self._since = clock()
        self._done = 0
        self._refused = 0
        self._rate = 0.0
        """Requests finished per second over the last whole window."""
        self._refusing = 0.0
        """Requests refused per second over the last whole window."""

    def limit(self, *, new_work: bool = False) -> int:
        """The bound now: the configured one, or for ``new_work`` (a new lead) while the timers
        are behind, :data:`BEHIND_LIMIT`."""
        return min(self._limit, BEHIND_LIMIT) if new_work and self.backlog.behind else self._limit

    def _roll(self, now: float) -> None:
        elapsed = now - self._since
        if elapsed >= WINDOW:
            self._rate, self._refusing = self._done / elapsed, self._refused / elapsed
            self._since, self._done, self._refused = now, 0, 0

    def finished(self) -> None:
        """A request admitted earlier has been answered."""
        self.count -= 1
        self._done += 1

    def retry_after(self) -> int:
        """Count one refusal; the seconds the refused client should wait (see the module doc)."""
        now = self._clock()
        self._roll(now)
        elapsed = now - self._since
        # the last whole window, or the current one once it says more (a sudden change)
        rate = max(self._rate, self._done / elapsed if elapsed > 0.5 else 0.0, 1.0)
        refusing = max(self._refusing, self._refused / max(elapsed, 1.0))
        self._refused += 1
        return max(1, min(RETRY_AFTER_CAP, math.ceil((self.count + refusing) / rate)))


class AdmissionControl:
    """ASGI middleware: at most ``gate.limit`` ``/v1`` requests in flight in this worker."""

    def __init__(self, app: ASGIApp, *, gate: InFlight) -> None:
        self.app = app
        self.gate = gate
        self._headers = [
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(_BODY)).encode()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        gate = self.gate
        new_work = scope["method"] == "POST" and scope["path"].startswith("/v1/leads")
        if gate.count >= gate.limit(new_work=new_work):
            start: HTTPResponseStartEvent = {
                "type": "http.response.start",
                "status": 503,
                "headers": [*self._headers, (b"retry-after", str(gate.retry_after()).encode())],
            }
            body: HTTPResponseBodyEvent = {"type": "http.response.body", "body": _BODY, "more_body": False}
            await send(start)
            await send(body)
            return
        gate.count += 1
        gone = asyncio.Event()
        watcher: asyncio.Task[None] | None = None

        async def receive_and_watch() -> ReceiveMessage:
            nonlocal watcher
            message = await receive()
            if message["type"] == "http.disconnect":
                gone.set()
            elif not message.get("more_body", False) and watcher is None:
                # the whole body is in: from now on the next message can only be the disconnect
                watcher = asyncio.ensure_future(_watch(receive, gone))
            return message

        token = CLIENT_GONE.set(gone)
        try:
            await self.app(scope, receive_and_watch, send)
        finally:
            CLIENT_GONE.reset(token)
            if watcher is not None:
                watcher.cancel()
            gate.finished()


async def _watch(receive: Receive, gone: asyncio.Event) -> None:
    """Set ``gone`` when the client closes the connection (the server's next message says so)."""
    while (await receive())["type"] != "http.disconnect":
        pass
    gone.set()
