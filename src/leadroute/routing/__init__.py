"""Routing: owners' eligibility (pure), strategies as Lua pick-and-claim scripts, the Router."""

from leadroute.routing.assign import (
    MAX_FALLBACK_HOPS,
    Assignment,
    PoolTarget,
    Release,
    Router,
    Target,
    member_from_row,
)
from leadroute.routing.eligibility import REASONS, Member, PoolRules, Roster, screen
from leadroute.routing.rebuild import snapshot_from_pg
from leadroute.routing.state import RoutingKeys, RoutingState, RoutingStateLost, Snapshot

__all__ = [
    "MAX_FALLBACK_HOPS",
    "REASONS",
    "Assignment",
    "Member",
    "PoolRules",
    "PoolTarget",
    "Release",
    "Roster",
    "Router",
    "RoutingKeys",
    "RoutingState",
    "RoutingStateLost",
    "Snapshot",
    "Target",
    "member_from_row",
    "screen",
    "snapshot_from_pg",
]
