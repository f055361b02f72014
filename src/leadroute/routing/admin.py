"""What the admin API shows of the routing state, and its rebuild on request."""

from __future__ import annotations

import msgspec

from leadroute.routing.assign import Router
from leadroute.routing.state import Snapshot
from leadroute.store.db import connect
from leadroute.structs import Struct

__all__ = ["RebuildResult", "RoutingStateView", "rebuild_now", "state_view"]


class RoutingStateView(Struct, kw_only=True):
    """What Redis holds now (owners and pools with a count of zero are left out)."""

    present: bool
    """False: Redis lost the state (the next claim, or ``POST /v1/routing/rebuild``, rebuilds it)."""
    open: dict[str, int]
    """Owner → open leads."""
    daily: dict[str, int]
    """Owner → leads assigned on ``day[owner]``."""
    day: dict[str, str]
    """Owner → the owner's local date the daily count is for."""
    last: dict[str, int]
    """Owner → claim sequence number of their last assignment."""
    seq: int
    """The last claim sequence number."""
    rr: dict[str, str]
    """Pool → the owner who got its last lead (round-robin cursor)."""
    account: dict[str, str]
    """Company domain → account owner (cached from PostgreSQL)."""


class RebuildResult(Struct, kw_only=True):
    """The routing state just rebuilt from PostgreSQL."""

    rebuilt: bool
    open: dict[str, int]
    daily: dict[str, int]
    day: dict[str, str]
    last: dict[str, int]
    seq: int
    rr: dict[str, str]
    account: dict[str, str]


async def state_view(router: Router) -> RoutingStateView:
    """The routing state as Redis holds it now."""
    present = await router.state.present()
    return msgspec.convert({"present": present, **_builtins(await router.state.read())}, RoutingStateView)


async def rebuild_now(router: Router) -> RebuildResult:
    """Replace the Redis state with what PostgreSQL records (waits for in-flight claims)."""
    assert router.database_url is not None  # the app always builds its Router with one
    # A connection of its own: the rebuild holds a session lock, not one of the pool's.
    conn = await connect(router.database_url)
    try:
        await router.rebuild(conn)
    finally:
        await conn.close()
    return msgspec.convert({"rebuilt": True, **_builtins(await router.state.read())}, RebuildResult)


def _builtins(snap: Snapshot) -> dict[str, object]:
    fields: dict[str, object] = msgspec.to_builtins(snap)
    return fields
