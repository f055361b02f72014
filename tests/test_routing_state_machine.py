"""Property-based (hypothesis stateful) test of the routing state against PostgreSQL and Redis.

Random sequences of assign / close / reassign / owner changes / lost Redis state / days passing,
driven through ``Router`` and PostgreSQL directly (the way intake and the workflow call it), keep:

- capacity is never exceeded by a claim: after each assignment the owner's open leads (in
  PostgreSQL) are within their ``max_open`` and today's within ``max_per_day``;
- every lead has exactly one current assignment: an owner, or a queue with a recorded reason;
- Redis equals the state rebuilt from PostgreSQL (open and today's counts, cursors, account owners,
  claim sequence).

``ROUTING_SM_EXAMPLES=200`` runs more examples than the default 40 (about 100 s instead of 20).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
from hypothesis import HealthCheck
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from redis.asyncio import Redis

from leadroute.config import Settings
from leadroute.routing import Assignment, PoolTarget, Release, Router, snapshot_from_pg
from leadroute.routing.eligibility import Member, local_day
from leadroute.store.db import connect
from leadroute.store.owners import OwnerIn, PoolIn, put_owner, put_pool
from leadroute.store.queries import QUERIES

OWNERS = ["o1", "o2", "o3", "o4"]
DOMAINS = ["a.example", "b.example", None]
START = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
_runs = itertools.count()
LEAD_LOCK = "SELECT status, owner_id, pool_id FROM leads WHERE id = $1 FOR UPDATE"


def _tz(owner: str) -> str:
    """o4 works in Tokyo, so "today" differs from the others' for 9 hours a day."""
    return "Asia/Tokyo" if owner == "o4" else "UTC"


class RoutingMachine(RuleBasedStateMachine):
    """One database and one Redis prefix; each example starts from empty tables and no state."""

    settings: Settings

    leads = Bundle("leads")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.now = START
        self.prefix = f"{self.settings.redis_prefix}:sm{next(_runs)}"
        self.redis: Redis = Redis.from_url(str(self.settings.redis_url))
        assert self.settings.database_url is not None
        self.conn: asyncpg.Connection[Any] = self.run(connect(self.settings.database_url))
        self.router = Router(
            self.redis, self.prefix, database_url=self.settings.database_url, clock=lambda: self.now
        )
        self.limits: dict[str, tuple[int | None, int | None]] = {}

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        async def close() -> None:
            keys = [k async for k in self.redis.scan_iter(match=f"{self.prefix}:*")]
            if keys:
                await self.redis.delete(*keys)
            await self.redis.aclose()
            await self.conn.close()

        self.run(close())
        self.loop.close()

    # -- set-up --------------------------------------------------------------------------------

    @initialize(
        strategy=st.sampled_from(["round_robin", "weighted", "least_loaded"]),
        caps=st.lists(
            st.tuples(st.none() | st.integers(0, 3), st.none() | st.integers(0, 4), st.integers(1, 3)),
            min_size=len(OWNERS),
            max_size=len(OWNERS),
        ),
        account_first=st.booleans(),
    )
    def setup(
        self, strategy: str, caps: list[tuple[int | None, int | None, int]], account_first: bool
    ) -> None:
        async def go() -> None:
            tables = await self.conn.fetchval(
                "SELECT string_agg(quote_ident(tablename), ', ') FROM pg_tables"
                " WHERE schemaname = current_schema() AND tablename <> 'schema_migrations'"
            )
            await self.conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
            for ident, (max_open, max_day, weight) in zip(OWNERS, caps, strict=True):
                capacity = {"max_open": max_open, "max_per_day": max_day}
                await put_owner(
                    self.conn,
                    _owner(
                        ident,
                        capacity=capacity,
                        weight=weight,
                        timezone="Asia/Tokyo" if ident == "o4" else "UTC",
                    ),
                )
                self.limits[ident] = (max_open, max_day)
            await put_pool(self.conn, PoolIn(id="p", members=OWNERS, strategy=strategy, fallback="queue"))  # type: ignore[arg-type]

        self.run(go())
        self.targets: list[PoolTarget] = [PoolTarget(rule="pool-rule", pool="p")]
        if account_first:
            self.targets.insert(0, PoolTarget(rule="account-rule", kind="account_owner"))

    # -- operations ----------------------------------------------------------------------------

    async def _place(self, lead_id: uuid.UUID, placed: Assignment, *, replace: bool) -> list[Release]:
        """Write the placement; returns the slots to free once the transaction committed."""
        freed: list[Release] = []
        if replace:
            current = await self.conn.fetchrow(QUERIES["routing_assignment_current"], lead_id)
            assert current is not None
            await self.conn.execute(QUERIES["routing_assignment_end"], current["id"], self.now)
            if current["owner_id"] is not None:
                freed.append(await self.router.prepare_release(self.conn, owner_id=current["owner_id"]))
        await self.conn.execute(
            QUERIES["routing_lead_placed"], lead_id, placed.owner, placed.pool, placed.status, self.now
        )
        await self.conn.execute(
            QUERIES["routing_assignment_insert"],
            lead_id,
            None,
            placed.owner,
            placed.pool,
            placed.status,
            placed.queue,
            placed.reason,
            self.now,
            placed.seq,
            placed.rule,
        )
        return freed

    def _check_claim(self, owner: str | None) -> None:
        """Capacity is never exceeded by a claim: read the record right after it."""
        if owner is None:
            return
        max_open, max_day = self.limits[owner]
        open_now = self.run(
            self.conn.fetchval(
                "SELECT count(*) FROM assignments a JOIN leads l ON l.id = a.lead_id"
                " WHERE a.owner_id = $1 AND a.ended_at IS NULL AND l.status <> 'closed'",
                owner,
            )
        )
        if max_open is not None:
            assert open_now <= max_open, (owner, open_now, max_open)
        if max_day is not None:
            day = local_day(Member(id=owner, timezone=_tz(owner)), self.now)
            today = sum(1 for d in self._days(owner) if d == day)
            assert today <= max_day, (owner, today, max_day)

    def _days(self, owner: str) -> list[str]:
        rows = self.run(self.conn.fetch("SELECT created_at FROM assignments WHERE owner_id = $1", owner))
        member = Member(id=owner, timezone=_tz(owner))
        return [local_day(member, r["created_at"]) for r in rows]

    @rule(target=leads, domain=st.sampled_from(DOMAINS))
    def assign(self, domain: str | None) -> uuid.UUID:
        lead_id = uuid.uuid4()

        async def go() -> Assignment:
            async with self.conn.transaction():
                await self.conn.execute(
                    "INSERT INTO leads (id, company_domain, stage, score, status, normalized)"
                    " VALUES ($1, $2, 'lead', 0, 'unassigned', '{}')",
                    lead_id,
                    domain,
                )
                placed = await self.router.assign(
                    self.conn,
                    lead_id=lead_id,
                    company_domain=domain,
                    targets=self.targets,
                    fallback="unassigned",
                    now=self.now,
                )
                await self._place(lead_id, placed, replace=False)
                return placed

        placed = self.run(go())
        assert (placed.owner is None) == (placed.reason is not None)
        self._check_claim(placed.owner)
        return lead_id

    @rule(lead=leads)
    def close(self, lead: uuid.UUID) -> None:
        async def go() -> None:
            freed: list[Release] = []
            async with self.conn.transaction():
                row = await self.conn.fetchrow(LEAD_LOCK, lead)
                assert row is not None
                if row["status"] == "closed":
                    return
                await self.conn.execute("UPDATE leads SET status = 'closed' WHERE id = $1", lead)
                await self.conn.execute(
                    "UPDATE assignments SET status = 'closed' WHERE lead_id = $1 AND ended_at IS NULL", lead
                )
                if row["owner_id"] is not None:
                    freed.append(await self.router.prepare_release(self.conn, owner_id=row["owner_id"]))
            await self.router.release(freed)

        self.run(go())

    @rule(lead=leads)
    def reassign(self, lead: uuid.UUID) -> None:
        async def go() -> Assignment | None:
            async with self.conn.transaction():
                row = await self.conn.fetchrow(LEAD_LOCK, lead)
                assert row is not None
                if row["status"] == "closed":
                    return None
                placed = await self.router.assign(
                    self.conn,
                    lead_id=lead,
                    company_domain=None,
                    targets=[PoolTarget(rule="reassign", pool="p")],
                    fallback="unassigned",
                    now=self.now,
                    exclude={row["owner_id"]} if row["owner_id"] else set(),
                )
                freed = await self._place(lead, placed, replace=True)
                if row["owner_id"] is not None:
                    assert placed.owner != row["owner_id"]
            await self.router.release(freed)
            return placed

        placed = self.run(go())
        if placed is not None:
            self._check_claim(placed.owner)

    @rule(ident=st.sampled_from(OWNERS), active=st.booleans(), max_open=st.none() | st.integers(0, 3))
    def change_owner(self, ident: str, active: bool, max_open: int | None) -> None:
        max_day = self.limits[ident][1]
        tz = "Asia/Tokyo" if ident == "o4" else "UTC"
        self.run(
            put_owner(
                self.conn,
                _owner(
                    ident, active=active, capacity={"max_open": max_open, "max_per_day": max_day}, timezone=tz
                ),
            )
        )
        self.limits[ident] = (max_open, max_day)

    @rule()
    def lose_redis_state(self) -> None:
        async def go() -> None:
            keys = [k async for k in self.redis.scan_iter(match=f"{self.prefix}:*")]
            if keys:
                await self.redis.delete(*keys)

        self.run(go())

    @rule(hours=st.sampled_from([1, 9, 24]))
    def time_passes(self, hours: int) -> None:
        self.now += timedelta(hours=hours)

    # -- invariants ----------------------------------------------------------------------------

    @invariant()
    def every_lead_has_one_current_owner_or_reason(self) -> None:
        rows = self.run(
            self.conn.fetch(
                "SELECT l.id, count(a.id) AS n,"
                "       bool_and(a.owner_id IS NOT NULL OR a.reason IS NOT NULL) AS ok"
                "  FROM leads l LEFT JOIN assignments a ON a.lead_id = l.id AND a.ended_at IS NULL"
                " GROUP BY l.id"
            )
        )
        for r in rows:
            assert r["n"] == 1, dict(r)
            assert r["ok"], dict(r)

    @invariant()
    def redis_equals_the_state_rebuilt_from_postgres(self) -> None:
        async def go() -> None:
            if not await self.router.state.present():
                await self.router.ensure_state()
            live = await self.router.state.read()
            rebuilt = await snapshot_from_pg(self.conn, self.now)
            assert live.open == rebuilt.open
            assert live.rr == rebuilt.rr
            assert live.account == rebuilt.account
            assert live.seq == rebuilt.seq
            today = {
                o: n
                for o, n in live.daily.items()
                if live.day.get(o)
                == local_day(Member(id=o, timezone="Asia/Tokyo" if o == "o4" else "UTC"), self.now)
            }
            assert today == rebuilt.daily

        self.run(go())


def _owner(ident: str, **fields: Any) -> OwnerIn:
    return msgspec.convert({"id": ident, "name": ident} | fields, OwnerIn)


def test_routing_state_machine(settings: Settings, clean: None) -> None:
    RoutingMachine.settings = settings
    run_state_machine_as_test(
        RoutingMachine,
        settings=hsettings(
            max_examples=int(os.environ.get("ROUTING_SM_EXAMPLES", "40")),
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
