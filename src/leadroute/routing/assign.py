"""Choose an owner for a lead: routing targets in order, eligibility in Python, the claim in Redis.

:class:`Router` is what the service holds as ``rt.routing``. ``assign`` runs inside the caller's
PostgreSQL transaction (which then writes the assignment row, so PostgreSQL is the record):

1. make sure the Redis state exists (a missing generation key means Redis lost it: rebuild from
   PostgreSQL first, under a lock, so one instance rebuilds);
2. take the routing advisory lock in *shared* mode for the rest of the transaction: a rebuild
   takes it exclusively, so it waits until every claim already made in Redis is committed (or
   rolled back) in PostgreSQL, and then counts exactly what PostgreSQL holds;
3. try the targets: ``account_owner`` (the domain's owner, if eligible and with room) and then a
   ``pool`` (its strategy's Lua pick-and-claim, following the pool's fallback chain: another pool,
   at most a few hops and never a loop, or a queue).

Every skipped owner is returned with its reason for the explanation. What ``assign`` answers
(:class:`Assignment`, :class:`Release`, targets) is in :mod:`leadroute.routing.placement`; the
rebuild of a lost state in :mod:`leadroute.routing.rebuild`. Both are re-exported here.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from leadroute.models import OwnerSkip
from leadroute.routing.config import EMPTY, RoutingConfig, load_config, lock_and_version
from leadroute.routing.eligibility import PoolRules, screen, skip_reason
from leadroute.routing.placement import (
    MAX_FALLBACK_HOPS,
    AccountMiss,
    Assignment,
    PoolTarget,
    Release,
    Target,
    member_from_row,
)
from leadroute.routing.rebuild import ROUTING_LOCK, rebuild, snapshot_from_pg
from leadroute.routing.state import Claim, RoutingState, RoutingStateLost
from leadroute.store import locks
from leadroute.store.db import Connection, connect
from leadroute.store.queries import QUERIES

__all__ = [
    "MAX_FALLBACK_HOPS",
    "ROUTING_LOCK",
    "AccountMiss",
    "Assignment",
    "PoolTarget",
    "Release",
    "Router",
    "Target",
    "member_from_row",
    "snapshot_from_pg",
]

log = logging.getLogger(__name__)


class Router:
    """Routing for one service process: Redis state plus the rules to pick and claim owners."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        *,
        database_url: str | None,
        clock: Any = None,
    ) -> None:
        self.state = RoutingState(redis, prefix)
        self.database_url = database_url
        self._clock = clock
        self._rebuilding = asyncio.Lock()
        self.rebuilds = 0
        """How many rebuilds this process did (for logs and tests)."""
        self.config = EMPTY
        """The routing configuration as last read (:mod:`leadroute.routing.config`)."""
        self._seen = False
        """Whether this process saw the Redis state present, and no claim found it lost since."""

    async def configuration(self, conn: Connection, version: int | None = None) -> RoutingConfig:
        """Take the routing lock shared for the rest of ``conn``'s transaction, and the routing
        configuration: the cached one when PostgreSQL's version matches it, else read afresh.

        ``version``: the transaction already holds the lock and read this version (intake's first
        statement, ``leadroute_intake_begin``)."""
        if version is None:
            version = await lock_and_version(conn, ROUTING_LOCK)
        config = self.config
        if config.version != version or version == 0:
            config = self.config = await load_config(conn, version)
        return config

    # -- assignment --------------------------------------------------------------------------

    async def assign(
        self,
        conn: Connection,
        *,
        lead_id: uuid.UUID,
        company_domain: str | None,
        targets: Sequence[Target],
        fallback: str,
        now: datetime,
        exclude: Collection[str] = (),
        previous_owner: str | None = None,
        version: int | None = None,
    ) -> Assignment:
        """Try ``targets`` in order and claim an owner; else the queue with the reasons.

        ``previous_owner``: a re-engaged person's previous owner, tried first when the lead is
        routed at all (a target matched); skipped (and said so in ``skipped``) when they cannot
        take it, then routing goes on as usual.

        ``version``: the caller's transaction already holds the routing lock shared and read the
        configuration's version (intake's first statement), and checked the state with
        :meth:`ready` before taking it; the caller then also records the domain's account owner
        (intake does it in its write statement), which ``assign`` otherwise does itself.

        Raises :class:`RoutingStateLost` when Redis lost its state between the check and the
        claim: the caller rolls back and retries (the next try rebuilds first). Whatever it
        raises, it has given back any claim it made first: a caller only owns (and must
        :meth:`unclaim` on rollback) the claim of an assignment it was returned.
        """
        if version is None:
            await self.ensure_state()
        config = await self.configuration(conn, version)
        record = version is None
        try:
            return await self._assign(
                conn,
                config,
                lead_id=lead_id,
                company_domain=company_domain,
                targets=targets,
                fallback=fallback,
                now=now,
                exclude=exclude,
                previous_owner=previous_owner,
                record=record,
            )
        except RoutingStateLost:
            self._seen = False  # the next :meth:`ready` looks (and rebuilds) before the lock
            raise

    async def _assign(
        self,
        conn: Connection,
        config: RoutingConfig,
        *,
        lead_id: uuid.UUID,
        company_domain: str | None,
        targets: Sequence[Target],
        fallback: str,
        now: datetime,
        exclude: Collection[str],
        previous_owner: str | None,
        record: bool,
    ) -> Assignment:
        skipped: list[OwnerSkip] = []
        tried: list[str] = []
        reasons: list[str] = []
        account: list[AccountMiss] = []
        if previous_owner is not None and targets:
            again = await self._previous_owner(
                config, previous_owner, target=targets[0], now=now, exclude=exclude, skipped=skipped
            )
            if again is not None:
                return await self._settle(conn, again, company_domain, lead_id, now, record)
        for target in targets:
            if target.kind == "account_owner":
                placed = await self._account_owner(
                    conn,
                    config,
                    target=target,
                    domain=company_domain,
                    now=now,
                    exclude=exclude,
                    skipped=skipped,
                )
                if isinstance(placed, AccountMiss):
                    account.append(placed)
                    reasons.append(f"rule {placed.rule!r}: {placed.why}")
                    continue
                placed.pools_tried = tried
                placed.account = account
                return await self._settle(conn, placed, company_domain, lead_id, now, record)
            if target.pool is None:
                continue
            placed = await self._pool_chain(
                config,
                target=target,
                fallback=fallback,
                now=now,
                exclude=exclude,
                skipped=skipped,
                tried=tried,
                reasons=reasons,
            )
            placed.account = account
            if placed.owner is not None:
                return await self._settle(conn, placed, company_domain, lead_id, now, record)
            return placed
        return Assignment(
            owner=None,
            pool=None,
            queue=fallback,
            reason="; ".join(reasons) if reasons else "no routing rule matched",
            skipped=skipped,
            pools_tried=tried,
            account=account,
        )

    async def _previous_owner(
        self,
        config: RoutingConfig,
        owner_id: str,
        *,
        target: Target,
        now: datetime,
        exclude: Collection[str],
        skipped: list[OwnerSkip],
    ) -> Assignment | None:
        """The previous owner's assignment (with the SLA of the first matching rule), or None with
        the reason they were skipped added to ``skipped``."""
        member = config.owners.get(owner_id)
        if member is None:
            skipped.append(OwnerSkip(owner_id, "no longer exists", None))
            return None
        reason = skip_reason(member, PoolRules(), now, exclude)
        if reason is not None:
            skipped.append(OwnerSkip(owner_id, reason, None))
            return None
        claim = await self.state.pick("claim", None, [member], frozenset({owner_id}), now)
        skipped += claim.skipped
        if claim.owner is None:
            return None
        return _direct(target, claim.owner, claim, skipped, "previous_owner")

    async def _account_owner(
        self,
        conn: Connection,
        config: RoutingConfig,
        *,
        target: Target,
        domain: str | None,
        now: datetime,
        exclude: Collection[str],
        skipped: list[OwnerSkip],
    ) -> Assignment | AccountMiss:
        """The account owner's assignment, or why there is none (for ``explain``)."""
        rule = target.rule
        if domain is None:
            return AccountMiss(
                rule=rule, why="the lead has no company domain (a free-mail address and no website)"
            )
        owner_id = await self.state.account_owner(domain)
        if owner_id is None:
            owner_id = await conn.fetchval(QUERIES["routing_account_owner"], domain)
            if owner_id is None:
                return AccountMiss(rule=rule, why=f"{domain} has no account owner yet")
            await self.state.set_account_owner(domain, owner_id)
        member = config.owners.get(owner_id)
        if member is None:
            return AccountMiss(rule=rule, why=f"{domain}'s account owner {owner_id!r} no longer exists")
        reason = skip_reason(member, PoolRules(), now, exclude)
        if reason is not None:
            skipped.append(OwnerSkip(owner_id, reason, None))
            return AccountMiss(rule=rule, why=f"{domain}'s owner is skipped ({reason})", owner=owner_id)
        claim = await self.state.pick("claim", None, [member], frozenset({owner_id}), now)
        skipped += claim.skipped
        if claim.owner is None:
            why = claim.skipped[0].reason if claim.skipped else "no room"
            return AccountMiss(rule=rule, why=f"{domain}'s owner is skipped ({why})", owner=owner_id)
        return _direct(target, claim.owner, claim, skipped, "account_owner")

    async def _pool_chain(
        self,
        config: RoutingConfig,
        *,
        target: Target,
        fallback: str,
        now: datetime,
        exclude: Collection[str],
        skipped: list[OwnerSkip],
        tried: list[str],
        reasons: list[str],
    ) -> Assignment:
        assert target.pool is not None
        queue = fallback
        current = target.pool
        while True:
            pool = config.pools.get(current)
            if pool is None:
                if tried:  # a pool's fallback that is not a pool names a queue
                    queue = current
                else:
                    reasons.append(f"pool {current!r} does not exist")
                break
            tried.append(current)
            members = list(config.roster(current))
            roster = screen(members, pool.rules, now, exclude=exclude, pool_id=current)
            skipped += roster.skipped
            claim = await self.state.pick(pool.strategy, current, members, roster.eligible, now)
            skipped += claim.skipped
            if claim.owner is not None:
                return Assignment(
                    owner=claim.owner,
                    pool=current,
                    queue=None,
                    reason=None,
                    skipped=skipped,
                    pools_tried=tried,
                    rule=target.rule,
                    sla=target.sla,
                    strategy=pool.strategy,
                    seq=claim.seq,
                    generation=claim.generation,
                )
            reasons.append(
                f"pool {current!r} has no members"
                if not members
                else f"pool {current!r} has no eligible owner ({len(members)} skipped)"
            )
            nxt = pool.fallback
            if nxt in tried or len(tried) > MAX_FALLBACK_HOPS:
                reasons.append(f"fallback chain stopped at {nxt!r}")
                break
            current = nxt
        return Assignment(
            owner=None,
            pool=target.pool,
            queue=queue,
            reason="; ".join(reasons),
            skipped=skipped,
            pools_tried=tried,
            rule=target.rule,
        )

    async def _settle(  # noqa: PLR0917  (private; one call shape, the arguments of its callers)
        self,
        conn: Connection,
        placed: Assignment,
        domain: str | None,
        lead_id: uuid.UUID,
        now: datetime,
        record: bool,
    ) -> Assignment:
        """The last step after a claim: record the account owner (unless the caller does). If that
        raises, the caller never sees ``placed`` (so cannot unclaim it): give the slot back here,
        then let the error go on."""
        if not record:
            return placed
        try:
            await self._record_account(conn, domain, placed.owner, lead_id, now)
        except BaseException:
            try:
                await self.unclaim(placed)
            except Exception:  # keep the first error; the count stays high (safe) until a rebuild
                log.warning("could not give back the claim of %s", placed.owner, exc_info=True)
            raise
        return placed

    async def _record_account(
        self, conn: Connection, domain: str | None, owner: str | None, lead_id: uuid.UUID, now: datetime
    ) -> None:
        """Record the domain's account owner in this transaction (first owner wins; see SQL)."""
        if domain is None or owner is None:
            return
        written = await conn.fetchval(QUERIES["routing_account_owner_set"], domain, owner, lead_id, now)
        if written is not None:
            await self.state.set_account_owner(domain, written)

    async def prepare_release(self, conn: Connection, *, owner_id: str) -> Release:
        """A lead of ``owner_id`` is being closed or moved away in ``conn``'s transaction: hold the
        routing lock shared until it ends, and note the state generation. Nothing changes in Redis
        yet; after the commit, :meth:`release` frees the slot.

        Why after: a slot freed before the commit stays freed if the commit fails, while PostgreSQL
        still has the lead open, so the owner could be given more than ``max_open`` until a rebuild
        (and giving it back after the failure would race with claims in between). Freed after the
        commit, the count is one too high for a moment, never too low. The lock makes it exact
        under rebuilds: a rebuild waits for this commit and counts it, and changes the generation,
        so the later release does nothing.
        """
        # open counts are per owner, shared by every pool: no pool is needed
        # Rebuild a lost state *before* holding the lock shared: a rebuild waits for every shared
        # holder, so this transaction could not rebuild later (e.g. in an assign after the release).
        await self.ensure_state()
        await locks.xact_shared(conn, ROUTING_LOCK)
        return Release(owner=owner_id, generation=await self.state.generation())

    async def release(self, releases: Iterable[Release]) -> None:
        """The transaction that prepared ``releases`` committed: free one open slot for each.

        Each applies only in the generation it was prepared in (none when the state was lost: the
        rebuild counts PostgreSQL, which has the commit). A Redis error is logged, not raised: the
        commit stands, and a count left one too high only keeps the owner below capacity until the
        next rebuild.
        """
        for pending in releases:
            if pending.generation is None:
                continue
            try:
                await self.state.release(pending.owner, pending.generation)
            except RedisError:
                log.warning(
                    "could not free an open slot of %s after the commit; its open count stays one "
                    "too high until the next routing rebuild",
                    pending.owner,
                    exc_info=True,
                )

    async def unclaim(self, placed: Assignment) -> None:
        """Undo the claim of an assignment whose transaction failed (after it rolled back).

        Frees the open slot only if no rebuild happened since the claim (a rebuild counted
        PostgreSQL, where the failed transaction left nothing). The daily count stays: a cap is
        never exceeded because of it, and the next rebuild corrects it.
        """
        task = self.give_back(placed)
        if task is not None:
            # shielded: a caller cancelled again meanwhile (a client gone) still gives it back
            await asyncio.shield(task)

    def give_back(self, placed: Assignment) -> asyncio.Task[None] | None:
        """Start :meth:`unclaim` in a task no cancellation of the caller stops (None: no claim)."""
        if placed.owner is None:
            return None
        return self.state.give_back(placed.owner, placed.generation)

    # -- rebuild -----------------------------------------------------------------------------

    async def ready(self) -> None:
        """:meth:`ensure_state`, with I/O only until this process has seen the state, and again
        after a claim found it lost (the claim scripts check it themselves: ``NOSTATE`` raises
        :class:`RoutingStateLost`, and the runner's retry comes back here). Intake's hot path calls
        this before its transaction takes the routing lock, instead of one ``EXISTS`` per lead."""
        if self._seen:
            return
        await self.ensure_state()
        self._seen = True

    async def ensure_state(self, *, startup: bool = False) -> None:
        """Rebuild from PostgreSQL if Redis lost the state (one rebuild across all instances).

        ``startup``: the first build of a new deployment is expected, so it is logged at INFO;
        a loss noticed while serving is a WARNING.
        """
        if await self.state.present():
            return
        async with self._rebuilding:
            if await self.state.present():
                return
            if self.database_url is None:
                raise RoutingStateLost("routing state lost and no database URL to rebuild from")
            # A connection of its own: pooled ones may all be inside transactions waiting on this.
            conn = await connect(self.database_url)
            try:
                await self.rebuild(
                    conn, only_if_lost=True, log_level=logging.INFO if startup else logging.WARNING
                )
            finally:
                await conn.close()

    async def rebuild(
        self,
        conn: Connection,
        *,
        only_if_lost: bool = False,
        now: datetime | None = None,
        log_level: int = logging.WARNING,
    ) -> bool:
        """Replace the Redis state with what PostgreSQL holds; returns whether it rebuilt.

        See :func:`leadroute.routing.rebuild.rebuild`: waits for in-flight claims, one instance
        rebuilds. ``conn`` must not be inside a transaction that holds the routing lock shared.
        """
        at = now or (self._clock() if self._clock is not None else datetime.now().astimezone())
        done = await rebuild(self.state, conn, at=at, only_if_lost=only_if_lost, log_level=log_level)
        self.rebuilds += done
        return done


def _direct(target: Target, owner: str, claim: Claim, skipped: list[OwnerSkip], strategy: str) -> Assignment:
    """A lead given to one named owner outside any pool (its account's owner, its previous one)."""
    return Assignment(
        owner=owner,
        pool=None,
        queue=None,
        reason=None,
        skipped=skipped,
        pools_tried=[],
        rule=target.rule,
        sla=target.sla,
        strategy=strategy,
        seq=claim.seq,
        generation=claim.generation,
    )
