"""Admin: owners (sales reps), pools, and routing state. Writes are idempotent PUTs or PATCHes.

Owners: ``PUT`` creates or replaces, ``PATCH`` changes the fields sent (``{"active": false}``
deactivates), ``PUT .../working-hours`` and ``PUT .../out-of-office`` set availability.
Pools: ``PUT`` creates or replaces, ``PATCH`` changes the fields sent; both go through
``store.owners.save_pools`` (members exist, ``escalate_to`` names something, no fallback loop).
Routing: ``GET /v1/routing/state`` shows the Redis counters, ``POST /v1/routing/rebuild`` rebuilds
them from PostgreSQL.

Each handler is one call into :mod:`leadroute.store.owners` or :mod:`leadroute.routing.admin`;
the bodies below are what the API takes (the store validates and normalizes the merged fields).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter

from leadroute.api.deps import PooledConnection
from leadroute.api.problems import problem_responses
from leadroute.models import ID_MAX_LENGTH, ID_PATTERN
from leadroute.routing.admin import RebuildResult, RoutingStateView, rebuild_now, state_view
from leadroute.runtime import Runtime
from leadroute.store import owners as store
from leadroute.store.owners import Capacity, Id, Owner, Pool, SlackUserId, Strategy
from leadroute.store.pools import PoolSettings
from leadroute.structs import Struct

__all__ = ["OwnerController", "PoolController", "RoutingController"]

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
Email = Annotated[str, msgspec.Meta(max_length=320)]
Skill = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Weight = Annotated[int, msgspec.Meta(ge=1, le=1000)]
Hours = dict[str, Any]
"""``{"mon-fri": "09:00-18:00", "sat": "10:00-14:00"}`` (a span or a list of spans per day)."""
Absence = dict[str, Any]
"""``{"from": "2026-12-24", "to": "2027-01-02"}``: dates (whole days) or datetimes."""
_UNSET = msgspec.UNSET
PathId = Annotated[
    str,
    Parameter(pattern=ID_PATTERN, min_length=1, max_length=ID_MAX_LENGTH, description="An owner or pool id"),
]
"""An owner or pool id in the path: the same rule as the ids stored (a bad one is a 400)."""
Conn = NamedDependency[PooledConnection]
Actor = NamedDependency[str]
"""Who makes the change (``key:<id>``); recorded in the audit trail with it."""
Rt = NamedDependency[Runtime]


class OwnerBody(Struct, kw_only=True):
    """An owner's fields; the id is in the path. Absent fields take their defaults."""

    name: Name
    email: Email | None = None
    active: bool = True
    timezone: str = "UTC"
    working_hours: Hours | None = None
    out_of_office: list[Absence] = msgspec.field(default_factory=list)
    capacity: Capacity | None = None
    weight: Weight = 1
    skills: list[Skill] = msgspec.field(default_factory=list)
    crm_user_id: str | None = None
    slack_user_id: SlackUserId | None = None
    """The rep's Slack member id (``U…``/``W…``): Slack alerts mention them instead of naming them."""


class OwnerPatch(Struct, kw_only=True):
    """The fields to change; absent ones keep their value (``null`` clears an optional one)."""

    name: Name | msgspec.UnsetType = _UNSET
    email: Email | msgspec.UnsetType | None = _UNSET
    active: bool | msgspec.UnsetType = _UNSET
    timezone: str | msgspec.UnsetType = _UNSET
    working_hours: Hours | msgspec.UnsetType | None = _UNSET
    out_of_office: list[Absence] | msgspec.UnsetType = _UNSET
    capacity: Capacity | msgspec.UnsetType | None = _UNSET
    weight: Weight | msgspec.UnsetType = _UNSET
    skills: list[Skill] | msgspec.UnsetType = _UNSET
    crm_user_id: str | msgspec.UnsetType | None = _UNSET
    slack_user_id: SlackUserId | msgspec.UnsetType | None = _UNSET


class WorkingHoursBody(Struct, kw_only=True):
    """``{"working_hours": {"mon-fri": "09:00-18:00"}}``; ``null``: always available."""

    working_hours: Hours | None


class OutOfOfficeBody(Struct, kw_only=True):
    """``{"out_of_office": [{"from": "2026-12-24", "to": "2027-01-02"}]}`` replaces the list."""

    out_of_office: list[Absence]


PoolBody = PoolSettings
"""A pool's members, strategy, fallback and settings, as ``PUT /v1/pools/{id}`` takes them."""


class PoolPatch(Struct, kw_only=True):
    """The pool fields to change; absent ones keep their value."""

    members: list[Id] | msgspec.UnsetType = _UNSET
    strategy: Strategy | msgspec.UnsetType = _UNSET
    fallback: Id | msgspec.UnsetType = _UNSET
    required_skill: Skill | msgspec.UnsetType | None = _UNSET
    allow_off_hours: bool | msgspec.UnsetType = _UNSET
    sla_business_hours: bool | msgspec.UnsetType = _UNSET
    escalate_to: Id | msgspec.UnsetType | None = _UNSET


def _sent(data: Struct) -> dict[str, Any]:
    """The fields a body sets, as plain values (``UNSET`` ones are left out)."""
    fields: dict[str, Any] = msgspec.to_builtins(data)
    return fields


_READ = problem_responses(400, 404)
_WRITE = problem_responses(400, 404, 413, 422)


class OwnerController(Controller):
    path = "/v1/owners"
    tags = ["admin"]  # noqa: RUF012

    @get("/", summary="List owners", responses=problem_responses(400))
    async def list_owners(self, conn: Conn) -> list[Owner]:
        """Every owner, by id, with availability, capacity, weight and skills."""
        return await store.list_owners(conn)

    @get("/{owner_id:str}", summary="One owner", responses=_READ)
    async def get_owner(self, conn: Conn, owner_id: PathId) -> Owner:
        """One owner by id."""
        return await store.get_owner(conn, owner_id)

    @put("/{owner_id:str}", summary="Create or replace an owner", responses=_WRITE)
    async def put_owner(self, conn: Conn, actor: Actor, owner_id: PathId, data: JSONBody[OwnerBody]) -> Owner:
        """Create the owner, or replace its fields; sending the same body twice changes nothing."""
        return await store.replace_owner(conn, owner_id, _sent(data), actor=actor)

    @patch("/{owner_id:str}", summary="Change some fields of an owner (e.g. deactivate)", responses=_WRITE)
    async def patch_owner(
        self, conn: Conn, actor: Actor, owner_id: PathId, data: JSONBody[OwnerPatch]
    ) -> Owner:
        """Change only the given fields; ``{"active": false}`` takes the owner out of routing."""
        return await store.update_owner(conn, owner_id, _sent(data), actor=actor)

    @put("/{owner_id:str}/working-hours", summary="Set an owner's working hours", responses=_WRITE)
    async def put_hours(
        self, conn: Conn, actor: Actor, owner_id: PathId, data: JSONBody[WorkingHoursBody]
    ) -> Owner:
        """Weekday spans in the owner's timezone (``{"mon-fri": "09:00-18:00"}``); null: always."""
        return await store.update_owner(conn, owner_id, _sent(data), actor=actor)

    @put("/{owner_id:str}/out-of-office", summary="Set an owner's out-of-office ranges", responses=_WRITE)
    async def put_out_of_office(
        self, conn: Conn, actor: Actor, owner_id: PathId, data: JSONBody[OutOfOfficeBody]
    ) -> Owner:
        """Replace the ranges: dates (whole days in the owner's timezone) or datetimes; [] clears."""
        return await store.update_owner(conn, owner_id, _sent(data), actor=actor)


class PoolController(Controller):
    path = "/v1/pools"
    tags = ["admin"]  # noqa: RUF012

    @get("/", summary="List pools with their members and settings", responses=problem_responses(400))
    async def list_pools(self, conn: Conn) -> list[Pool]:
        """Every pool, by id, with its members' ids."""
        return await store.list_pools(conn)

    @get("/{pool_id:str}", summary="One pool", responses=_READ)
    async def get_pool(self, conn: Conn, pool_id: PathId) -> Pool:
        """One pool with its members' ids and settings."""
        return await store.get_pool(conn, pool_id)

    @put("/{pool_id:str}", summary="Create or replace a pool", responses=_WRITE)
    async def put_pool(self, conn: Conn, actor: Actor, pool_id: PathId, data: JSONBody[PoolBody]) -> Pool:
        """Create the pool or replace its members and settings; members must exist, and the
        fallback chain may not loop (422 naming ``fallback`` and the loop)."""
        return await store.replace_pool(conn, pool_id, _sent(data), actor=actor)

    @patch("/{pool_id:str}", summary="Change some fields of a pool", responses=_WRITE)
    async def patch_pool(self, conn: Conn, actor: Actor, pool_id: PathId, data: JSONBody[PoolPatch]) -> Pool:
        """Change only the given fields (``members`` replaces the member list)."""
        return await store.update_pool(conn, pool_id, _sent(data), actor=actor)


class RoutingController(Controller):
    path = "/v1/routing"
    tags = ["admin"]  # noqa: RUF012

    @get("/state", summary="Routing state: open and daily counts, cursors, account owners")
    async def state(self, rt: Rt) -> RoutingStateView:
        """What Redis holds now (counts of zero are left out)."""
        return await state_view(rt.routing)

    @post("/rebuild", summary="Rebuild the routing state from PostgreSQL", status_code=200)
    async def rebuild(self, rt: Rt) -> RebuildResult:
        """Replace the Redis counters with what PostgreSQL records (waits for in-flight claims)."""
        return await rebuild_now(rt.routing)
