"""Which members of a pool may take a lead now, and why the others may not (pure functions).

Everything here depends only on its arguments: the owners' profiles (from PostgreSQL), the pool's
settings and ``now``. Capacity (open leads, leads today) is *not* decided here: it changes with
every assignment, so the Lua pick-and-claim scripts check it atomically in Redis
(:mod:`leadroute.routing.state`). :func:`capacity_reason` states the same rule for models and tests.

Reason codes (``OwnerSkip.reason``), in the order they are checked:

``excluded``       the caller excluded the owner (e.g. a reassignment away from them)
``inactive``       the owner is deactivated
``out_of_office``  now falls in one of the owner's out-of-office ranges
``off_hours``      now is outside the owner's working hours, in the owner's own timezone
``missing_skill``  the pool requires a skill the owner does not have
``over_capacity``  (Lua) open leads >= ``max_open``
``daily_cap``      (Lua) leads assigned today (owner's timezone) >= ``max_per_day``
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from datetime import date, datetime
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from leadroute.models import OwnerSkip
from leadroute.structs import FrozenStruct

__all__ = [
    "DAYS",
    "REASONS",
    "Member",
    "PoolRules",
    "Roster",
    "capacity_reason",
    "local_day",
    "normalize_absences",
    "normalize_hours",
    "out_of_office",
    "parse_span",
    "screen",
    "skip_reason",
    "valid_timezone",
    "within_hours",
]

DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
REASONS: Final = (
    "excluded",
    "inactive",
    "out_of_office",
    "off_hours",
    "missing_skill",
    "over_capacity",
    "daily_cap",
)
_SPAN = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


class Member(FrozenStruct, frozen=True, kw_only=True):
    """An owner as routing sees it (a row of ``owners``, normalized)."""

    id: str
    active: bool = True
    timezone: str = "UTC"
    working_hours: dict[str, list[str]] | None = None
    """Normalized: weekday → ``["HH:MM-HH:MM", ...]``; None means always available."""
    out_of_office: list[dict[str, str]] = msgspec.field(default_factory=list)
    """Normalized ``{"from", "to"}`` ISO dates (whole local days, inclusive) or datetimes ([from, to))."""
    max_open: int | None = None
    max_per_day: int | None = None
    weight: int = 1
    skills: list[str] = msgspec.field(default_factory=list)


class PoolRules(FrozenStruct, frozen=True, kw_only=True):
    """The pool settings eligibility reads."""

    required_skill: str | None = None
    allow_off_hours: bool = False


class Roster(FrozenStruct, frozen=True):
    """A pool's members in routing order, each marked eligible or skipped with a reason."""

    members: tuple[Member, ...]
    eligible: frozenset[str]
    skipped: tuple[OwnerSkip, ...]


# -- validation and normalization (owners files, admin API) ---------------------------------------


def valid_timezone(name: str) -> str:
    """``name`` if it is an IANA timezone zoneinfo knows; ValueError otherwise."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {name!r} (use an IANA name like Europe/Paris)") from None
    return name


def _days(key: str) -> list[str]:
    days: list[str] = []
    for part in key.lower().replace(" ", "").split(","):
        first, _, last = part.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise ValueError(f"working_hours: {key!r} is not a weekday or range like mon-fri")
        i, j = DAYS.index(first), DAYS.index(last or first)
        if j < i:
            raise ValueError(f"working_hours: {key!r} runs backwards (write mon-fri, not fri-mon)")
        days += DAYS[i : j + 1]
    return days


def parse_span(text: str) -> tuple[int, int]:
    """``"09:00-18:00"`` → minutes since midnight ``(540, 1080)``; raises ``ValueError`` when malformed."""
    m = _SPAN.match(text)
    if m is None:
        raise ValueError(f"working_hours: {text!r} is not a span like 09:00-18:00")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if h1 > 23 or m1 > 59 or m2 > 59 or end > 24 * 60:
        raise ValueError(f"working_hours: {text!r} is not a valid time span")
    if end <= start:
        raise ValueError(f"working_hours: {text!r} ends before it starts (split spans at midnight)")
    return start, end


def normalize_hours(spec: Mapping[str, Any] | None) -> dict[str, list[str]] | None:
    """``{"mon-fri": "09:00-18:00", "sat": "10:00-14:00"}`` → one sorted entry per weekday.

    A value may be one span, several separated by commas, or a list. Days not named are days off.
    None (or an empty mapping) means always available.
    """
    if not spec:
        return None
    out: dict[str, list[tuple[int, int]]] = {}
    for key, value in spec.items():
        spans = value if isinstance(value, list) else str(value).split(",")
        parsed = [parse_span(str(s)) for s in spans if str(s).strip()]
        for day in _days(str(key)):
            out.setdefault(day, []).extend(parsed)
    return {day: [_fmt(s) for s in sorted(set(out[day]))] for day in DAYS if day in out}


def _fmt(span: tuple[int, int]) -> str:
    (h1, m1), (h2, m2) = divmod(span[0], 60), divmod(span[1], 60)
    return f"{h1:02d}:{m1:02d}-{h2:02d}:{m2:02d}"


def _instant(value: Any) -> date | datetime:
    if isinstance(value, datetime | date):
        return value
    text = str(value).strip()
    try:
        return date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"out_of_office: {text!r} is not an ISO date or datetime") from None


def normalize_absences(ranges: Sequence[Mapping[str, Any]] | None) -> list[dict[str, str]]:
    """Check and normalize out-of-office ranges: ``{"from", "to"}`` dates or datetimes, sorted."""
    out: list[dict[str, str]] = []
    for entry in ranges or ():
        if set(entry) != {"from", "to"}:
            raise ValueError(f"out_of_office: each range needs exactly 'from' and 'to', got {sorted(entry)}")
        start, end = _instant(entry["from"]), _instant(entry["to"])
        if isinstance(start, datetime) and isinstance(end, datetime):
            if (start.tzinfo is None) != (end.tzinfo is None):
                raise ValueError("out_of_office: give both datetimes an offset, or neither")
            backwards = end < start
        elif isinstance(start, datetime) or isinstance(end, datetime):
            raise ValueError("out_of_office: 'from' and 'to' must both be dates or both datetimes")
        else:
            backwards = end < start
        if backwards:
            raise ValueError(f"out_of_office: {entry['to']} is before {entry['from']}")
        out.append({"from": start.isoformat(), "to": end.isoformat()})
    out.sort(key=lambda r: (r["from"], r["to"]))
    return out


# -- the checks ------------------------------------------------------------------------------------


def _local(member: Member, now: datetime) -> datetime:
    return now.astimezone(ZoneInfo(member.timezone))


def local_day(member: Member, now: datetime) -> str:
    """The owner's calendar date at ``now`` (ISO), the key of their daily count."""
    return _local(member, now).date().isoformat()


def within_hours(member: Member, now: datetime) -> bool:
    """Whether ``now`` is inside the owner's working hours in their own timezone."""
    if member.working_hours is None:
        return True
    local = _local(member, now)
    minute = local.hour * 60 + local.minute
    for span in member.working_hours.get(DAYS[local.weekday()], ()):
        start, end = parse_span(span)
        if start <= minute < end:
            return True
    return False


def out_of_office(member: Member, now: datetime) -> bool:
    """Whether ``now`` falls in one of the owner's out-of-office ranges."""
    if not member.out_of_office:
        return False
    tz = ZoneInfo(member.timezone)
    local = now.astimezone(tz)
    for entry in member.out_of_office:
        start, end = _instant(entry["from"]), _instant(entry["to"])
        if isinstance(start, datetime) and isinstance(end, datetime):
            s = start if start.tzinfo else start.replace(tzinfo=tz)
            e = end if end.tzinfo else end.replace(tzinfo=tz)
            if s <= now < e:
                return True
        elif (
            not isinstance(start, datetime) and not isinstance(end, datetime) and start <= local.date() <= end
        ):
            return True
    return False


def skip_reason(member: Member, pool: PoolRules, now: datetime, exclude: Collection[str] = ()) -> str | None:
    """Why ``member`` may not take a lead of ``pool`` now (None: eligible, capacity aside)."""
    if member.id in exclude:
        return "excluded"
    if not member.active:
        return "inactive"
    if out_of_office(member, now):
        return "out_of_office"
    if not pool.allow_off_hours and not within_hours(member, now):
        return "off_hours"
    if pool.required_skill is not None and pool.required_skill not in member.skills:
        return "missing_skill"
    return None


def capacity_reason(member: Member, open_count: int, today_count: int) -> str | None:
    """The capacity rule the Lua scripts apply: ``over_capacity``, ``daily_cap`` or None."""
    if member.max_open is not None and open_count >= member.max_open:
        return "over_capacity"
    if member.max_per_day is not None and today_count >= member.max_per_day:
        return "daily_cap"
    return None


def screen(
    members: Sequence[Member],
    pool: PoolRules,
    now: datetime,
    *,
    exclude: Collection[str] = (),
    pool_id: str | None = None,
) -> Roster:
    """Mark each member eligible, or skipped with the reason (capacity is checked later, in Lua)."""
    skipped: list[OwnerSkip] = []
    eligible: set[str] = set()
    for m in members:
        reason = skip_reason(m, pool, now, exclude)
        if reason is None:
            eligible.add(m.id)
        else:
            skipped.append(OwnerSkip(m.id, reason, pool_id))
    return Roster(tuple(members), frozenset(eligible), tuple(skipped))
