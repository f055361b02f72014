"""The one transaction runner: every change to a lead goes through :func:`run`.

Intake, activity events, accept, reassign, close, an SLA breach, the queue drain and decay are
each a *step*: an async function of a :class:`Change`. :func:`run` owns what they share:

1. a pooled connection and one PostgreSQL transaction;
2. routing capacity in Redis, which is not transactional: a step records the slots it claimed
   (:meth:`Change.claimed`) and the owners whose lead it ends (:meth:`Change.free`). A rollback
   gives the claimed slots back; the freed ones are given back only after the commit, in the
   state generation the transaction saw, so a failed commit never leaves a count below what
   PostgreSQL holds;
3. a retry of the whole step when Redis lost its routing state mid-claim (``RoutingStateLost``:
   the next try rebuilds it from PostgreSQL first);
4. the event log: :meth:`Change.emit` appends in the same transaction;
5. after the commit: freed capacity wakes the queue drain (:attr:`Runtime.drain_wakeup`);
6. a part of a step that may fail on its own (one item of a batch): :meth:`Change.savepoint`
   rolls back only that part, and gives back at once the slots claimed inside it.
7. cancellation (a shutdown, a caller's timeout) never splits Redis from PostgreSQL: the claim
   script runs shielded (:meth:`RoutingState.pick` gives back what a cancelled caller never saw),
   and the COMMIT, the rollback's give-backs and the committed step's releases are each waited out
   before the cancellation is raised;
8. a request whose client closed its connection while it waited for a database connection is
   dropped before BEGIN (:class:`ClientGone`; :mod:`leadroute.api.admission` watches).

:func:`run_grouped` is :func:`run` for single-lead intake under load (group commit): steps that
arrive while others are being written wait, and are then run one after the other in one shared
transaction, each with its own actor and clock but one connection, one BEGIN, one COMMIT; each
caller is answered once that COMMIT returned (never a 2xx before its lead is durable). When any
step of a group fails, the group rolls back and gives its claims back, and each step is run again
alone with :func:`run`, so only the failing one gets an error and none is half-written.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

import redis.exceptions

from leadroute.errors import ClientGone, Overloaded
from leadroute.outage import dependency_down
from leadroute.routing import Assignment, Release, RoutingStateLost
from leadroute.runtime import CLIENT_GONE, Runtime
from leadroute.store.db import Connection
from leadroute.telemetry import METRICS, span
from leadroute.workflow.log import Payload, append

__all__ = ["STATE_LOST_RETRIES", "SYSTEM", "Change", "run", "run_grouped"]

STATE_LOST_RETRIES = 3
"""Tries of one step when Redis loses its routing state mid-step (each rebuilds first)."""
SYSTEM = "system"
"""The actor of changes leadroute makes by itself (routing at intake, timers, drain, decay)."""

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(slots=True)
class Change:
    """One transaction's changes to leads: its connection, clock, actor, capacity and events."""

    rt: Runtime
    conn: Connection
    now: datetime
    actor: str
    _claimed: list[Assignment] = field(default_factory=list)
    _freed: list[str] = field(default_factory=list)
    _pending: list[Release] = field(default_factory=list)
    _after: list[Callable[[], object]] = field(default_factory=list)
    _locks: set[int] = field(default_factory=set)

    def holds(self, lock: int) -> bool:
        """Whether this transaction took the advisory ``lock`` (see :meth:`took`)."""
        return lock in self._locks

    def took(self, lock: int) -> None:
        """The transaction holds the advisory ``lock`` until it ends (a step of a shared
        transaction, :func:`run_grouped`, then knows an earlier step took it)."""
        self._locks.add(lock)

    def after_commit(self, action: Callable[[], object]) -> None:
        """Run ``action`` once the transaction committed (metrics: never counted for a rollback)."""
        self._after.append(action)

    def claimed(self, placed: Assignment) -> Assignment:
        """``placed`` holds a Redis slot: given back if the transaction rolls back."""
        if placed.owner is not None:
            self._claimed.append(placed)
        return placed

    def free(self, owner_id: str) -> None:
        """The transaction ends ``owner_id``'s hold on a lead: free their slot once it commits."""
        self._freed.append(owner_id)

    @contextlib.asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """A nested transaction (a SAVEPOINT) that can fail alone: when the block raises, its
        writes roll back, the Redis slots it claimed are given back at once, and what it asked to
        free or run after the commit is forgotten; then the exception goes on to the caller, who
        may catch it and carry on with the rest of the transaction.

        When the block ends normally its claims join the transaction's (kept on commit, given back
        if the whole transaction rolls back later).
        """
        claimed, freed, after = len(self._claimed), len(self._freed), len(self._after)
        try:
            async with self.conn.transaction():
                yield
        except BaseException:
            rolled_back = self._claimed[claimed:]
            del self._claimed[claimed:], self._freed[freed:], self._after[after:]
            try:
                for placed in rolled_back:
                    await self.rt.routing.unclaim(placed)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                # the count stays high (safe: it never over-assigns) until the reconcile or a
                # rebuild recounts from PostgreSQL; the block's own error is the one to report
                log.warning(
                    "routing state unreachable: %d slot(s) left to the next reconcile", len(rolled_back)
                )
            raise

    async def emit(
        self,
        lead_id: uuid.UUID,
        event_type: str,
        data: Payload,
        *,
        occurred_at: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> int:
        """Append an event to the lead's log in this transaction; returns its sequence number."""
        return await append(
            self.conn,
            lead_id,
            event_type,
            data,
            at=self.now,
            actor=self.actor,
            occurred_at=occurred_at,
            idempotency_key=idempotency_key,
        )

    async def _prepare(self) -> None:
        """The last statement before the commit: read the generation for the slots to free."""
        self._pending = [await self.rt.routing.prepare_release(self.conn, owner_id=o) for o in self._freed]

    async def _committed(self) -> None:
        for action in self._after:
            action()
        pending, self._pending = self._pending, []
        if not pending:
            return
        try:
            await self.rt.routing.release(pending)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            # committed: the answer stands. The count stays high (safe: it never over-assigns)
            # until Redis is back and the reconcile or a rebuild recounts from PostgreSQL.
            log.warning(
                "routing state unreachable: %d freed slot(s) left to the next reconcile", len(pending)
            )
        self.rt.drain_wakeup.set()  # capacity came free: queued leads may be placed now

    async def _undo(self) -> bool:
        """Give the claims back; True if a cancellation arrived meanwhile (waited out: at a
        shutdown the Redis client closes next, and a give-back left running would be lost)."""
        claimed, self._claimed = self._claimed, []
        self._pending.clear()
        self._after.clear()
        tasks = [task for placed in claimed if (task := self.rt.routing.give_back(placed)) is not None]
        if not tasks:
            return False
        return await _to_the_end(asyncio.gather(*tasks))


@contextlib.asynccontextmanager
async def _connection(rt: Runtime, *, background: bool) -> AsyncIterator[Connection]:
    """A pooled connection, or :class:`Overloaded` when none is free within the acquire timeout:
    the client is answered 503 at once instead of queueing behind every other request."""
    pool = rt.pool(background=background)
    try:
        conn = await pool.acquire(timeout=rt.settings.db_acquire_timeout)
    except TimeoutError:
        raise Overloaded from None
    gone = None if background else CLIENT_GONE.get()
    if gone is not None and gone.is_set():  # the client left while this waited: drop the work
        await pool.release(conn)
        raise ClientGone
    try:
        yield conn
    except BaseException as exc:
        if dependency_down(exc) == "postgres":
            # the connection broke under us (a restart, a shutdown): never hand it out again
            conn.terminate()
        raise
    finally:
        await pool.release(conn)


async def run(
    rt: Runtime,
    step: Callable[[Change], Awaitable[T]],
    *,
    actor: str = SYSTEM,
    now: datetime | None = None,
    background: bool = False,
) -> T:
    """Run ``step`` in one transaction and settle its routing capacity (see the module docstring).

    Whatever ``step`` raises rolls the transaction back and gives its claims back; a
    ``RoutingStateLost`` runs it again (up to :data:`STATE_LOST_RETRIES` times). ``now``: the
    step's instant (default: the runtime's clock when the step starts). ``background``: the
    background work's own connections (timers, drain, decay), not the requests'.
    """
    for attempt in range(STATE_LOST_RETRIES):
        async with _connection(rt, background=background) as conn:
            change = Change(rt, conn, now or rt.clock(), actor)
            try:
                with span("commit"):  # the whole transaction: routing's claim, the writes, COMMIT
                    transaction = conn.transaction()
                    await transaction.start()
                    try:
                        result = await step(change)
                        await change._prepare()
                    except BaseException:
                        await transaction.rollback()
                        raise
                    cancelled = await _to_the_end(transaction.commit())
            except RoutingStateLost:
                if await change._undo():
                    raise asyncio.CancelledError from None
                if attempt == STATE_LOST_RETRIES - 1:
                    raise
                continue
            except BaseException:
                if await change._undo():
                    raise asyncio.CancelledError from None
                raise
            # outside the try: the claims of a committed step are kept. Inside the connection's
            # block and waited out: a cancellation while the connection goes back to the pool, or
            # while the slots are freed, must not leave a freed owner's slot counted in Redis
            cancelled = await _to_the_end(change._committed()) or cancelled
        if cancelled:
            raise asyncio.CancelledError
        return result
    raise AssertionError("unreachable")


@dataclass(slots=True)
class _Waiting:
    """A step waiting for a group: what to run, as whom, in which request's context."""

    step: Callable[[Change], Awaitable[object]]
    actor: str
    context: contextvars.Context
    done: asyncio.Future[object]


async def run_grouped(rt: Runtime, step: Callable[[Change], Awaitable[T]], *, actor: str = SYSTEM) -> T:
    """:func:`run`, in a transaction shared with the steps that arrive meanwhile (see the module
    docstring); at most ``settings.group_commit`` steps per transaction (1: :func:`run` itself)."""
    if rt.settings.group_commit <= 1:
        return await run(rt, step, actor=actor)
    loop = asyncio.get_running_loop()
    waiting = _Waiting(step, actor, contextvars.copy_context(), loop.create_future())
    groups = rt.groups
    groups.waiting.append(waiting)
    # as many groups at once as the pool has connections: never fewer transactions in flight
    # than without groups (with fewer writers, the steps a group runs one after the other wait
    # for each other: measured, docs/benchmarks.md)
    if len(groups.writers) < rt.settings.db_pool_max:
        # a context of its own: the writer serves many requests (their contexts are each step's)
        writer = loop.create_task(_write_groups(rt), context=contextvars.Context())
        groups.writers.add(writer)
        writer.add_done_callback(groups.writers.discard)
    try:
        # shielded: a caller that goes away once its group started does not stop the group
        result = await asyncio.shield(waiting.done)
    except asyncio.CancelledError:
        waiting.done.add_done_callback(_forget)
        raise
    return result  # type: ignore[return-value]  # the future holds what this step returned


def _forget(done: asyncio.Future[object]) -> None:
    """A caller stopped waiting: its outcome is nobody's (retrieved, so it is not logged as lost)."""
    if not done.cancelled():
        done.exception()


async def _write_groups(rt: Runtime) -> None:
    """Write the waiting steps, a group at a time, until none waits."""
    waiting = rt.groups.waiting
    while waiting:
        group: list[_Waiting] = []
        while waiting and len(group) < rt.settings.group_commit:
            member = waiting.popleft()
            gone = member.context.get(CLIENT_GONE)
            if gone is not None and gone.is_set():  # the client left while this waited: drop it
                member.done.set_exception(ClientGone())
                continue
            group.append(member)
        if group:
            METRICS.commit_groups.observe(len(group))
        if len(group) == 1:
            await _alone(rt, group[0])
        elif group:
            await _together(rt, group)


async def _alone(rt: Runtime, member: _Waiting) -> None:
    """Run one waiting step with :func:`run`, in its request's context; settle its future."""
    work = asyncio.get_running_loop().create_task(
        run(rt, member.step, actor=member.actor), context=member.context
    )
    try:
        member.done.set_result(await work)
    except Exception as exc:  # the caller's to handle, as if it had called run itself
        member.done.set_exception(exc)


async def _together(rt: Runtime, group: list[_Waiting]) -> None:
    """One transaction for ``group``; if it fails, each member again alone (concurrently)."""

    loop = asyncio.get_running_loop()

    async def steps(ch: Change) -> list[object]:
        results = []
        for member in group:
            # the member's own actor and instant; the connection, claims and after-commit work
            # are the group's (replace copies the references to the same lists)
            mine = dataclasses.replace(ch, now=rt.clock(), actor=member.actor)
            results.append(await loop.create_task(_call(member.step, mine), context=member.context))
        return results

    try:
        results = await run(rt, steps, actor=SYSTEM)
    except Exception as exc:
        if isinstance(exc, Overloaded) or dependency_down(exc) is not None:
            for member in group:  # what stopped the group stops each alone too: no retry storm
                member.done.set_exception(exc)
            return
        log.info("a group of %d lead writes failed (%s); writing each alone", len(group), type(exc).__name__)
        METRICS.commit_group_splits.inc()
        await asyncio.gather(*(_alone(rt, member) for member in group))
        return
    for member, result in zip(group, results, strict=True):
        member.done.set_result(result)


async def _call(step: Callable[[Change], Awaitable[T]], ch: Change) -> T:
    return await step(ch)


async def _to_the_end(work: Awaitable[object]) -> bool:
    """Await ``work`` to its outcome even if the caller is cancelled meanwhile (a client gone, a
    shutdown): once COMMIT is sent, whether it committed decides whether the step's Redis claims
    are kept or given back, and a committed step's claims and releases must reach Redis. True if
    a cancellation arrived (the caller raises it afterwards); ``work``'s error is raised."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.wait([task])
        except asyncio.CancelledError:
            cancelled = True
    task.result()  # a failed commit raises here: the step is undone
    return cancelled
