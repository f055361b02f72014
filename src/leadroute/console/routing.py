"""Routing: pools and owners with their availability now, weights and the round-robin position;
pause and resume an owner.

Reads are the owners API's (:func:`leadroute.store.owners.list_owners`, ``list_pools``) and the
routing state ``GET /v1/routing/state`` shows (:func:`leadroute.routing.admin.state_view`: open
and daily counts, round-robin cursors, from Redis); availability is routing's own eligibility
(:mod:`leadroute.routing.eligibility`) at the service clock's now. Pausing is what
``PATCH /v1/owners/{id}`` with ``{"active": false}`` does (the owner takes no new leads; the
leads they hold stay theirs), audited with the console key as the actor.
"""

from __future__ import annotations

from datetime import datetime

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect, Template

from leadroute.api.owners import PathId
from leadroute.console._pages import page
from leadroute.console._session import Viewer
from leadroute.routing.admin import RoutingStateView, state_view
from leadroute.routing.eligibility import (
    Member,
    PoolRules,
    capacity_reason,
    local_day,
    out_of_office,
    skip_reason,
    within_hours,
)
from leadroute.runtime import Runtime
from leadroute.store import owners as store
from leadroute.store.owners import Owner, Pool
from leadroute.structs import Struct

__all__ = ["OwnerNow", "PoolMemberNow", "PoolNow", "RoutingPages", "next_in_turn", "owner_now"]

Rt = NamedDependency[Runtime]
Who = NamedDependency[Viewer]


class OwnerNow(Struct, kw_only=True):
    """An owner's availability now, as routing would see it."""

    id: str
    name: str
    active: bool
    on_shift: bool
    out_of_office: bool
    open: int
    max_open: int | None
    today: int
    max_per_day: int | None
    weight: int
    timezone: str
    skills: list[str]
    capacity: str | None
    """``over_capacity`` or ``daily_cap`` when full; None otherwise."""


class PoolMemberNow(Struct, kw_only=True):
    """A member of a pool: could it take this pool's next lead (and why not)?"""

    owner: OwnerNow
    reason: str | None
    last: bool
    """The round-robin cursor: this owner got the pool's last lead."""


class PoolNow(Struct, kw_only=True):
    """A pool now: its members' availability, and who round robin would pick next."""

    pool: Pool
    members: list[PoolMemberNow]
    available: int
    next_owner: str | None
    """Round robin only: the first member able to take a lead after the cursor (None: nobody)."""


def next_in_turn(members: list[PoolMemberNow], last: str | None) -> str | None:
    """Who ``round_robin.lua`` would give the pool's next lead to: the first member able to take
    it after ``last`` (the cursor) in byte order of ids, wrapping around; when the cursor's owner
    has left the pool, after where they were."""
    ordered = sorted(members, key=lambda m: m.owner.id.encode())
    ids = [m.owner.id.encode() for m in ordered]
    start = 0
    if last is not None:
        cursor = last.encode()
        start = ids.index(cursor) + 1 if cursor in ids else sum(1 for i in ids if i < cursor)
    for step in range(len(ordered)):
        member = ordered[(start + step) % len(ordered)]
        if member.reason is None:
            return member.owner.id
    return None


def _member(owner: Owner) -> Member:
    capacity = owner.capacity
    return Member(
        id=owner.id,
        active=owner.active,
        timezone=owner.timezone,
        working_hours=owner.working_hours,
        out_of_office=owner.out_of_office,
        max_open=capacity.max_open if capacity else None,
        max_per_day=capacity.max_per_day if capacity else None,
        weight=owner.weight,
        skills=owner.skills,
    )


def owner_now(owner: Owner, state: RoutingStateView, now: datetime) -> OwnerNow:
    """``owner``'s availability at ``now``, with the counts Redis holds (today's count only when it
    is for the owner's local today)."""
    member = _member(owner)
    open_count = state.open.get(owner.id, 0)
    today = state.daily.get(owner.id, 0) if state.day.get(owner.id) == local_day(member, now) else 0
    return OwnerNow(
        id=owner.id,
        name=owner.name,
        active=owner.active,
        on_shift=within_hours(member, now),
        out_of_office=out_of_office(member, now),
        open=open_count,
        max_open=member.max_open,
        today=today,
        max_per_day=member.max_per_day,
        weight=owner.weight,
        timezone=owner.timezone,
        skills=owner.skills,
        capacity=capacity_reason(member, open_count, today),
    )


def _pool_now(
    pool: Pool, owners: dict[str, Owner], views: dict[str, OwnerNow], state: RoutingStateView, now: datetime
) -> PoolNow:
    rules = PoolRules(required_skill=pool.required_skill, allow_off_hours=pool.allow_off_hours)
    members = []
    for ident in pool.members:
        if ident not in owners:
            continue
        view = views[ident]
        reason = skip_reason(_member(owners[ident]), rules, now) or view.capacity
        members.append(PoolMemberNow(owner=view, reason=reason, last=state.rr.get(pool.id) == ident))
    following = next_in_turn(members, state.rr.get(pool.id)) if pool.strategy == "round_robin" else None
    return PoolNow(
        pool=pool,
        members=members,
        available=sum(1 for m in members if m.reason is None),
        next_owner=following,
    )


class RoutingPages(Controller):
    path = "/routing"
    include_in_schema = False

    @get("/")
    async def overview(self, rt: Rt, viewer: Who) -> Template:
        """Every pool with its members' availability now, and every owner."""
        now = rt.clock()
        async with rt.db.acquire() as conn:
            owners = await store.list_owners(conn)
            pools = await store.list_pools(conn)
        state = await state_view(rt.routing)
        views = {o.id: owner_now(o, state, now) for o in owners}
        by_id = {o.id: o for o in owners}
        return page(
            "routing/overview.html",
            viewer,
            pools=[_pool_now(p, by_id, views, state, now) for p in pools],
            owners=list(views.values()),
            state=state,
            now=now,
        )

    @post("/owners/{owner_id:str}/pause", status_code=303)
    async def pause(self, rt: Rt, viewer: Who, owner_id: FromPath[PathId]) -> Redirect:
        """Take the owner out of routing (``PATCH /v1/owners/{id}`` ``{"active": false}``)."""
        async with rt.db.acquire() as conn:
            await store.update_owner(conn, owner_id, {"active": False}, actor=viewer.actor)
        return Redirect(f"/console/routing#owner-{owner_id}", status_code=303)

    @post("/owners/{owner_id:str}/resume", status_code=303)
    async def resume(self, rt: Rt, viewer: Who, owner_id: FromPath[PathId]) -> Redirect:
        """Put the owner back in routing (``{"active": true}``)."""
        async with rt.db.acquire() as conn:
            await store.update_owner(conn, owner_id, {"active": True}, actor=viewer.actor)
        return Redirect(f"/console/routing#owner-{owner_id}", status_code=303)
