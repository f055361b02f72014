"""Routing state in Redis: counts, cursors and weights, claimed atomically by Lua scripts.

Key layout (``P`` is ``LEADROUTE_REDIS_PREFIX``); every key carries the one hash tag
``{routing}``, so every script touches one Redis Cluster slot:

==========================  ======  ==========================================================
``P:{routing}:gen``         string  generation: set by a rebuild; gone = the state was lost
``P:{routing}:open``        hash    owner → open (current, not closed) leads
``P:{routing}:daily``       hash    owner → leads assigned on ``day[owner]``
``P:{routing}:day``         hash    owner → the owner's local date the daily count is for
``P:{routing}:last``        hash    owner → claim sequence number of their last assignment
``P:{routing}:seq``         string  the last claim sequence number (also stored in PostgreSQL)
``P:{routing}:rr``          hash    pool → owner who got the pool's last lead (round-robin cursor)
``P:{routing}:wrr``         hash    ``pool|owner`` → current weight (smooth weighted round robin)
``P:{routing}:account``     hash    company domain → account owner (cache of ``account_owners``)
``P:{routing}:reconciled``  string  set for a reconcile period by the instance that reconciled
==========================  ======  ==========================================================

Why one tag and not ``{pool:<id>}`` per pool: an owner's open and daily counts are shared by every
pool they belong to, and capacity must be checked and claimed in the same atomic step as the pick.
Per-pool tags would put the counts in another slot than the cursor, which a Cluster script cannot
touch. One slot is the simplest correct layout; its cost is that routing state lives on one shard
(it is a few small hashes, and each pick is one short script).

Nothing here has a TTL: an evicted count would let an owner exceed capacity. Daily counts reset by
comparing the stored day with today's, not by expiring.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from importlib import resources
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from leadroute.errors import RoutingStateLost
from leadroute.models import OwnerSkip
from leadroute.routing.eligibility import Member, local_day
from leadroute.structs import FrozenStruct, Struct

__all__ = ["Claim", "RoutingKeys", "RoutingState", "RoutingStateLost", "Snapshot"]

log = logging.getLogger(__name__)

_FILES = resources.files("leadroute.routing")


def _lua(name: str) -> str:
    return _FILES.joinpath(name).read_text(encoding="utf-8")


_PRELUDE = _lua("_prelude.lua")
STRATEGIES = ("round_robin", "weighted", "least_loaded")


class RoutingKeys:
    """Builds every routing key, under one prefix and one hash tag."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        base = f"{prefix}:{{routing}}"
        self.gen = f"{base}:gen"
        self.open = f"{base}:open"
        self.daily = f"{base}:daily"
        self.day = f"{base}:day"
        self.last = f"{base}:last"
        self.seq = f"{base}:seq"
        self.rr = f"{base}:rr"
        self.wrr = f"{base}:wrr"
        self.account = f"{base}:account"
        self.reconciled = f"{base}:reconciled"
        """Not routing state (a rebuild leaves it): marks the periodic reconcile as done for now."""

    def all(self) -> list[str]:
        """Every routing key (a rebuild replaces them all)."""
        return [
            *(self.gen, self.open, self.daily, self.day, self.last),
            *(self.seq, self.rr, self.wrr, self.account),
        ]

    def for_script(self) -> list[str]:
        return [self.gen, self.open, self.daily, self.day, self.last, self.seq, self.rr, self.wrr]


class Claim(FrozenStruct, frozen=True):
    """What a pick-and-claim script did: the owner claimed (or None), its sequence, capacity skips."""

    owner: str | None
    seq: int | None
    skipped: tuple[OwnerSkip, ...]
    generation: str | None = None
    """The state generation the claim was made in (see :meth:`RoutingState.release`)."""


class Snapshot(Struct, kw_only=True):
    """Routing state as plain data: what a rebuild writes, and what tests compare."""

    open: dict[str, int] = msgspec.field(default_factory=dict)
    daily: dict[str, int] = msgspec.field(default_factory=dict)
    day: dict[str, str] = msgspec.field(default_factory=dict)
    last: dict[str, int] = msgspec.field(default_factory=dict)
    seq: int = 0
    rr: dict[str, str] = msgspec.field(default_factory=dict)
    account: dict[str, str] = msgspec.field(default_factory=dict)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _claim(raw: Any, pool: str | None) -> Claim:
    """A claim script's answer: ``[owner or "", seq, generation, skipped owner, reason, ...]``."""
    owner = _text(raw[0]) or None
    skips = [_text(v) for v in raw[3:]]
    skipped = tuple(OwnerSkip(skips[i], skips[i + 1], pool) for i in range(0, len(skips), 2))
    return Claim(owner, int(raw[1]) if owner else None, skipped, _text(raw[2]))


class RoutingState:
    """Atomic owner picks, releases and whole-state writes over one Redis client."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.keys = RoutingKeys(prefix)
        self._scripts = {
            name: redis.register_script(_PRELUDE + "\n" + _lua(f"{name}.lua"))
            for name in (*STRATEGIES, "claim")
        }
        self._release = redis.register_script(_lua("release.lua"))
        self._late: set[asyncio.Task[Any]] = set()
        """Give-backs running on their own (see :meth:`pick` and :meth:`give_back`)."""

    async def present(self) -> bool:
        """Whether the state exists (the generation key is there)."""
        return bool(await self.redis.exists(self.keys.gen))

    async def generation(self) -> str | None:
        """The current generation (a rebuild writes a new one), None when the state is lost."""
        value = await self.redis.get(self.keys.gen)
        return None if value is None else _text(value)

    async def pick(
        self,
        strategy: str,
        pool: str | None,
        members: Sequence[Member],
        eligible: frozenset[str],
        now: datetime,
    ) -> Claim:
        """Run ``strategy``'s pick-and-claim over ``members`` (``claim``: the single member)."""
        if strategy not in self._scripts:
            raise ValueError(f"unknown strategy {strategy!r}")
        if not eligible:
            return Claim(None, None, ())
        args: list[str | int] = [pool or "", len(members)]
        for m in members:
            args += [
                m.id,
                "1" if m.id in eligible else "0",
                -1 if m.max_open is None else m.max_open,
                -1 if m.max_per_day is None else m.max_per_day,
                local_day(m, now),
                m.weight,
            ]
        # The script runs in a task of its own, shielded: a caller cancelled while it runs (its
        # client went away, a shutdown) must not leave a slot claimed in Redis that nobody
        # records. The script then finishes, and what it claimed is given back at once.
        script = asyncio.ensure_future(self._scripts[strategy](keys=self.keys.for_script(), args=args))
        try:
            raw = await asyncio.shield(script)
        except asyncio.CancelledError:
            script.add_done_callback(self._give_back_unseen)
            raise
        except ResponseError as exc:
            if str(exc).startswith("NOSTATE"):
                raise RoutingStateLost(str(exc)) from None
            raise
        return _claim(raw, pool)

    def _give_back_unseen(self, script: asyncio.Future[Any]) -> None:
        """The caller of a claim script was cancelled before its answer: free what it claimed."""
        if script.cancelled() or script.exception() is not None:
            return  # nothing claimed (an error), or unknown (Redis unreachable: a rebuild recounts)
        claim = _claim(script.result(), None)
        if claim.owner is not None:
            self.give_back(claim.owner, claim.generation)

    def give_back(self, owner: str, generation: str | None) -> asyncio.Task[None]:
        """Free a claimed slot of ``owner`` (its transaction will not commit) in a task that no
        cancellation of the caller stops; errors are logged (the count stays high, which is safe,
        until the next rebuild or reconcile). The caller may await the task."""
        task = asyncio.ensure_future(self.release(owner, generation))
        self._late.add(task)
        task.add_done_callback(self._gave_back)
        return task

    def _gave_back(self, task: asyncio.Task[None]) -> None:
        self._late.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.warning(
                "could not give back a claimed slot (%s: %s); the count stays one too high until "
                "the next routing reconcile",
                type(error).__name__,
                error,
            )

    async def release(self, owner: str, generation: str | None = None) -> None:
        """Free one open slot of ``owner`` (no-op when the state is lost: rebuild counts PG).

        ``generation``: only if the state is still the one a claim was made in (undoing a claim
        whose transaction failed; a rebuild since then did not count it).
        """
        await self._release(keys=[self.keys.gen, self.keys.open], args=[owner, generation or ""])

    async def account_owner(self, domain: str) -> str | None:
        """The cached account owner of ``domain``."""
        value = await self.redis.hget(self.keys.account, domain)
        return None if value is None else _text(value)

    async def set_account_owner(self, domain: str, owner: str) -> None:
        await self.redis.hset(self.keys.account, domain, owner)

    async def write(self, snap: Snapshot, generation: str) -> None:
        """Replace the whole state with ``snap`` in one MULTI/EXEC (one slot, so Cluster-safe)."""
        k = self.keys
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(*k.all())
            mappings: list[tuple[str, Mapping[Any, Any]]] = [
                (k.open, snap.open),
                (k.daily, snap.daily),
                (k.day, snap.day),
                (k.last, snap.last),
                (k.rr, snap.rr),
                (k.account, snap.account),
            ]
            for key, mapping in mappings:
                if mapping:
                    pipe.hset(key, mapping=dict(mapping))
            pipe.set(k.seq, snap.seq)
            pipe.set(k.gen, generation)
            await pipe.execute()

    async def read(self) -> Snapshot:
        """The current state (for tests and the rebuild check); zero counts are left out."""
        k = self.keys

        def ints(raw: Mapping[Any, Any]) -> dict[str, int]:
            return {_text(a): int(b) for a, b in raw.items() if int(b) != 0}

        def strs(raw: Mapping[Any, Any]) -> dict[str, str]:
            return {_text(a): _text(b) for a, b in raw.items()}

        seq = await self.redis.get(k.seq)
        return Snapshot(
            open=ints(await self.redis.hgetall(k.open)),
            daily=ints(await self.redis.hgetall(k.daily)),
            day=strs(await self.redis.hgetall(k.day)),
            last=ints(await self.redis.hgetall(k.last)),
            seq=int(seq) if seq is not None else 0,
            rr=strs(await self.redis.hgetall(k.rr)),
            account=strs(await self.redis.hgetall(k.account)),
        )
