"""The routing configuration (pools, their members, owners), cached in each instance.

Routing reads the same few rows for every lead: the pool, its roster, the owners. They change
rarely (an admin edits an owner or a pool) and are read constantly, so each instance keeps them
in memory as one :class:`RoutingConfig` and checks, in the statement that takes the routing lock
(which every assignment runs anyway), the version PostgreSQL keeps in ``routing_config``. Any
write to ``owners``, ``pools`` or ``pool_members`` changes that version in its own transaction
(statement triggers), so a transaction that sees the new rows also sees the new version and
reloads: the cache is never older than what the transaction could read itself.
"""

from __future__ import annotations

from typing import Final

from leadroute.routing.eligibility import Member, PoolRules
from leadroute.routing.placement import member_from_row
from leadroute.store.db import Connection
from leadroute.store.queries import QUERIES
from leadroute.structs import FrozenStruct

__all__ = ["EMPTY", "PoolConfig", "RoutingConfig", "load_config", "lock_and_version"]


class PoolConfig(FrozenStruct, frozen=True, kw_only=True):
    """A pool's routing settings."""

    id: str
    strategy: str
    fallback: str
    required_skill: str | None = None
    allow_off_hours: bool = False
    sla_business_hours: bool = False
    escalate_to: str | None = None

    @property
    def rules(self) -> PoolRules:
        """The settings eligibility reads."""
        return PoolRules(required_skill=self.required_skill, allow_off_hours=self.allow_off_hours)


class RoutingConfig(FrozenStruct, frozen=True, kw_only=True):
    """Every pool, its members in routing order, and every owner, as of ``version``."""

    version: int
    pools: dict[str, PoolConfig]
    rosters: dict[str, tuple[Member, ...]]
    owners: dict[str, Member]

    def roster(self, pool_id: str) -> tuple[Member, ...]:
        """A pool's members in routing order (none for an unknown pool)."""
        return self.rosters.get(pool_id, ())


EMPTY: Final = RoutingConfig(version=-1, pools={}, rosters={}, owners={})


async def lock_and_version(conn: Connection, lock: int) -> int:
    """Take the routing lock shared (until the transaction ends) and read the configuration's version."""
    row = await conn.fetchrow(QUERIES["routing_lock_config"], lock)
    assert row is not None
    version: int = row["version"]
    return version


async def load_config(conn: Connection, version: int) -> RoutingConfig:
    """Read the whole routing configuration (three queries), labelled ``version``."""
    owners = {row["id"]: member_from_row(row) for row in await conn.fetch(QUERIES["routing_owner_list"])}
    pools = {
        row["id"]: PoolConfig(
            id=row["id"],
            strategy=row["strategy"],
            fallback=row["fallback"],
            required_skill=row["required_skill"],
            allow_off_hours=row["allow_off_hours"],
            sla_business_hours=row["sla_business_hours"],
            escalate_to=row["escalate_to"],
        )
        for row in await conn.fetch(QUERIES["routing_config_pools"])
    }
    rosters: dict[str, list[Member]] = {pool: [] for pool in pools}
    for row in await conn.fetch(QUERIES["routing_config_members"]):
        rosters.setdefault(row["pool_id"], []).append(owners[row["owner_id"]])
    return RoutingConfig(
        version=version,
        pools=pools,
        rosters={pool: tuple(members) for pool, members in rosters.items()},
        owners=owners,
    )
