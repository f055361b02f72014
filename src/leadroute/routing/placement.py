"""What routing answers: where a lead went (:class:`Assignment`), a slot to free after a commit
(:class:`Release`), and the targets it tries (:class:`Target`, :class:`PoolTarget`)."""

from __future__ import annotations

from typing import Any, Literal, Protocol

import msgspec

from leadroute.models import OwnerSkip
from leadroute.routing.eligibility import Member
from leadroute.rules import Sla
from leadroute.structs import FrozenStruct, Struct

__all__ = [
    "MAX_FALLBACK_HOPS",
    "AccountMiss",
    "Assignment",
    "PoolTarget",
    "Release",
    "Target",
    "member_from_row",
]

MAX_FALLBACK_HOPS = 3
"""A pool's fallback may name another pool; this many hops at most. Saves refuse a loop
(``store.owners.check_fallbacks``); this limit, and stopping at a pool already tried, are the
defence against one written some other way."""


class Target(Protocol):
    """A routing target (``scoring.RouteTarget``): a matched routing rule and where it sends."""

    @property
    def rule(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def pool(self) -> str | None: ...
    @property
    def sla(self) -> Sla | None: ...


# Not the strict base: workflow decodes these from a stored decision's routing targets, which
# carry more keys (the full ``scoring.RouteTarget``) than a plain pool target has.
class PoolTarget(msgspec.Struct, frozen=True, kw_only=True):
    """A plain pool target (callers without rule targets, e.g. a reassignment within a pool)."""

    rule: str
    kind: Literal["pool", "account_owner"] = "pool"
    pool: str | None = None
    sla: Sla | None = None


class Release(FrozenStruct, frozen=True, kw_only=True):
    """An open slot to free once the transaction that ended the owner's assignment has committed
    (:meth:`Router.prepare_release`, then :meth:`Router.release`)."""

    owner: str
    generation: str | None
    """The state generation while the transaction held the routing lock (None: the state was lost)."""


class AccountMiss(Struct, kw_only=True):
    """An ``account_owner`` rule that did not place the lead, and why."""

    rule: str
    why: str
    owner: str | None = None
    """The account's owner when there is one (then also in ``skipped``, with the reason)."""


class Assignment(Struct, kw_only=True):
    """Where a lead ended up: an owner in a pool, or a queue and the reason."""

    owner: str | None
    pool: str | None
    queue: str | None
    reason: str | None
    skipped: list[OwnerSkip]
    pools_tried: list[str]
    rule: str | None = None
    """The routing rule whose target placed the lead (None: no target placed it)."""
    sla: Sla | None = None
    """The SLA of that target (``rules.Sla``), None when unassigned."""
    strategy: str | None = None
    """How the owner was chosen: ``account_owner``, ``round_robin``, ``weighted``, ``least_loaded``."""
    seq: int | None = None
    """The Redis claim sequence number (stored with the assignment row)."""
    generation: str | None = None
    """The Redis state generation of the claim (for :meth:`Router.unclaim`)."""
    account: list[AccountMiss] = msgspec.field(default_factory=list)
    """Why each ``account_owner`` rule tried did not place the lead (``explain`` shows it)."""

    @property
    def status(self) -> Literal["assigned", "unassigned"]:
        return "assigned" if self.owner is not None else "unassigned"


def member_from_row(row: Any) -> Member:
    """An ``owners`` row as eligibility sees it."""
    return Member(
        id=row["id"],
        active=row["active"],
        timezone=row["timezone"],
        working_hours=row["working_hours"],
        out_of_office=list(row["out_of_office"] or []),
        max_open=row["max_open"],
        max_per_day=row["max_per_day"],
        weight=row["weight"],
        skills=list(row["skills"]),
    )
