"""SLA timers: when an owner must accept a lead by, and the rows the scheduler fires.

A routing rule's ``sla`` (``accept_within_minutes``, ``on_breach``) starts a timer when the lead is
assigned to an owner: one ``sla_timers`` row, written in the assigning transaction, so a lead and
its deadline commit together. Accepting, reassigning or closing the lead stops it
(:func:`cancel_timers`); the scheduler (:mod:`leadroute.workflow.scheduler`) fires the ones that
run out.

The deadline is ``now + accept_within_minutes`` of wall-clock time, or, when the pool has
``sla_business_hours``, that many minutes counted only inside the owner's working hours in their
own timezone (:func:`business_due`): a lead assigned at 16:50 with 30 minutes to accept, to an
owner who works 09:00-17:00, is due at 09:20 the next working day.

"About to breach": with ``LEADROUTE_SLA_WARN_BEFORE_MINUTES`` (N, default 5) shorter than the SLA,
the timer also gets ``warn_at``, N minutes before ``due_at`` (counted the same way: in working
hours when the deadline is). The scheduler then appends ``lead.sla_warning`` once, unless the
timer stopped first (:func:`leadroute.workflow.scheduler.fire_due_warnings`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from leadroute.routing import Member, member_from_row
from leadroute.routing.config import RoutingConfig
from leadroute.routing.eligibility import DAYS, parse_span
from leadroute.rules import Sla
from leadroute.store.db import Connection
from leadroute.store.queries import QUERIES

__all__ = [
    "MAX_SEARCH_DAYS",
    "Due",
    "business_due",
    "cancel_timers",
    "start_timer",
    "timer_due",
    "working_spans",
]

MAX_SEARCH_DAYS = 400
"""How far ahead :func:`business_due` looks for working time before giving up on the hours."""


def working_spans(member: Member, day: date) -> list[tuple[datetime, datetime]]:
    """The owner's working spans on their local ``day``, as UTC instants, merged and in order."""
    assert member.working_hours is not None
    tz = ZoneInfo(member.timezone)
    minutes = sorted(parse_span(s) for s in member.working_hours.get(DAYS[day.weekday()], ()))
    merged: list[list[int]] = []
    for start, end in minutes:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(_instant(day, start, tz), _instant(day, end, tz)) for start, end in merged]


def _instant(day: date, minute: int, tz: ZoneInfo) -> datetime:
    """Local ``day`` at ``minute`` past midnight (1440: the next midnight) in UTC."""
    if minute >= 24 * 60:
        day, minute = day + timedelta(days=1), minute - 24 * 60
    local = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=tz)
    return local.astimezone(UTC)


def business_due(member: Member, start: datetime, minutes: int) -> datetime:
    """``start`` plus ``minutes`` counted only inside the owner's working hours (their timezone).

    Time outside the hours (nights, days off) does not count; a start outside the hours begins
    counting when the next span opens. Owners without hours (always available) count wall-clock
    time, as does an owner whose hours have no span in the next :data:`MAX_SEARCH_DAYS` days.
    Daylight-saving changes are handled: spans are local times converted to instants each day.
    """
    wall = start + timedelta(minutes=minutes)
    if member.working_hours is None or minutes <= 0:
        return wall
    remaining = timedelta(minutes=minutes)
    first = start.astimezone(ZoneInfo(member.timezone)).date()
    for offset in range(MAX_SEARCH_DAYS):
        for opens, closes in working_spans(member, first + timedelta(days=offset)):
            begin = max(opens, start)
            if begin >= closes:
                continue
            if remaining <= closes - begin:
                return begin + remaining
            remaining -= closes - begin
    return wall


class Due(NamedTuple):
    """A new timer's terms: counted in business hours or not, its deadline, when it warns (None: never)."""

    business: bool
    due: datetime
    warn: datetime | None


async def start_timer(
    conn: Connection,
    *,
    lead_id: uuid.UUID,
    assignment_id: int,
    owner_id: str,
    pool_id: str | None,
    sla: Sla,
    now: datetime,
    breaches: int = 0,
    config: RoutingConfig | None = None,
    warn_before: int = 0,
) -> Any:
    """Insert the timer of a new assignment (caller's transaction); returns the row.

    ``pool_id`` is the pool whose settings apply (``sla_business_hours``, and ``escalate_to`` on a
    breach); ``breaches`` is how many times the lead breached before this timer. ``config``: the
    routing configuration the transaction read (else the pool and owner are read here).
    ``warn_before``: minutes before the deadline the "about to breach" warning is due (0: none).
    """
    known = None
    if config is not None:
        known = timer_due(config, pool_id, owner_id, sla, now, warn_before=warn_before)
    if known is None:
        pool = await conn.fetchrow(QUERIES["routing_pool"], pool_id) if pool_id is not None else None
        hours = pool is not None and pool["sla_business_hours"]
        row = await conn.fetchrow(QUERIES["routing_owner_get"], owner_id) if hours else None
        known = _due(member_from_row(row) if row is not None else None, hours, sla, now, warn_before)
    return await conn.fetchrow(
        QUERIES["sla_timer_insert"],
        lead_id,
        assignment_id,
        owner_id,
        pool_id,
        sla.accept_within_minutes,
        sla.on_breach,
        known.business,
        now,
        known.due,
        breaches,
        known.warn,
    )


def timer_due(
    config: RoutingConfig,
    pool_id: str | None,
    owner_id: str,
    sla: Sla,
    now: datetime,
    *,
    warn_before: int = 0,
) -> Due | None:
    """The new timer's terms from the routing configuration (None: the pool is not in it, so it
    must be read)."""
    if pool_id is not None and pool_id not in config.pools:
        return None
    hours = pool_id is not None and config.pools[pool_id].sla_business_hours
    return _due(config.owners.get(owner_id), hours, sla, now, warn_before)


def _due(member: Member | None, hours: bool, sla: Sla, now: datetime, warn_before: int) -> Due:
    minutes = sla.accept_within_minutes
    early = minutes - warn_before if 0 < warn_before < minutes else None
    if hours and member is not None:
        warn = business_due(member, now, early) if early is not None else None
        return Due(True, business_due(member, now, minutes), warn)
    warn = now + timedelta(minutes=early) if early is not None else None
    return Due(False, now + timedelta(minutes=minutes), warn)


async def cancel_timers(
    conn: Connection, lead_id: uuid.UUID, resolution: str, now: datetime
) -> Sequence[int]:
    """Stop the lead's running timer, saying why; returns the ids stopped (none or one)."""
    return [r["id"] for r in await conn.fetch(QUERIES["sla_timers_cancel"], lead_id, resolution, now)]
