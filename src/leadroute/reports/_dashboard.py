"""The distribution and SLA dashboard (pure): what arrived, who got it, how fast, what is stuck.

Every figure is over a window ``[start, end)`` except the queue depth, which is now.

**Expected share** (the fairness question). For each lead a pool's strategy placed in the window
(``round_robin``, ``weighted``, ``least_loaded``; not the account owner, not a person's choice):

- the *candidates* are the pool's members (today's) plus the owner who got it, less every member
  the placement recorded as skipped in that pool (inactive, out of office, off hours, missing
  skill, excluded after a breach, over capacity or the daily cap);
- each candidate's chance is its weight over the candidates' total weight in a ``weighted``
  pool, and one over the number of candidates otherwise (round robin and least loaded even out);

a rep's *expected* count is the sum of their chances over the pool's placements, their expected
share that over the pool's placements. So a rep who was out half the window is expected to get
about half as much. *Actual* is what they got, with its Wilson 95 % interval; ``within`` says
whether the expected share falls inside it (outside: more than chance explains).

Limits: weights and membership are today's (they are not kept per placement); round robin
records a full member only when it passes over them, so a rep who was full but came after the
winner is counted as a candidate (their expected share reads slightly high).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Final

from leadroute.reports._stats import Rate, percentile, rate
from leadroute.structs import FrozenStruct

__all__ = [
    "POOL_STRATEGIES",
    "Arrival",
    "Breach",
    "DashboardReport",
    "DeliveryFailures",
    "Durations",
    "HourRow",
    "Pick",
    "PoolInfo",
    "QueueDepth",
    "ShareRow",
    "dashboard",
    "expected_shares",
]

POOL_STRATEGIES: Final = frozenset({"round_robin", "weighted", "least_loaded"})
STAGES: Final = ("disqualified", "lead", "mql", "sql")


class Arrival(FrozenStruct, frozen=True):
    at: datetime
    stage: str
    """The stage decided at intake."""


class Pick(FrozenStruct, frozen=True, kw_only=True):
    """One placement with an owner, by a pool's strategy."""

    at: datetime
    pool: str
    owner: str
    strategy: str
    skipped: frozenset[str]
    """Members of this pool the placement passed over."""


class PoolInfo(FrozenStruct, frozen=True, kw_only=True):
    strategy: str
    members: tuple[str, ...]
    weights: Mapping[str, int]


class Breach(FrozenStruct, frozen=True):
    at: datetime
    owner: str


class QueueDepth(FrozenStruct, frozen=True, kw_only=True):
    queue: str
    """The queue's name (``pending``: waiting for Redis to come back)."""
    pool: str | None
    """The pool the leads wait for (None: they wait for a person)."""
    leads: int
    oldest: datetime


class DeliveryFailures(FrozenStruct, frozen=True, kw_only=True):
    endpoint: str
    kind: str
    attempts: int
    failed: int
    """Attempts that failed (an error, a timeout, a non-2xx answer, 410 Gone, the last one)."""
    dead: int
    """Deliveries given up on in the window (every retry failed)."""
    retrying: int
    """Deliveries pending now after at least one failed attempt."""


class HourRow(FrozenStruct, frozen=True):
    hour: datetime
    counts: dict[str, int]


class ShareRow(FrozenStruct, frozen=True, kw_only=True):
    pool: str
    owner: str
    actual: Rate
    """Leads this rep got of the pool's placements, with its interval."""
    expected_leads: float
    expected_share: float | None
    within: bool | None
    """Whether the expected share is inside the actual share's interval."""


class Durations(FrozenStruct, frozen=True, kw_only=True):
    count: int
    p50: float | None
    p90: float | None
    """Seconds."""


class DashboardReport(FrozenStruct, frozen=True, kw_only=True):
    start: datetime
    end: datetime
    now: datetime
    leads: int
    per_hour: list[HourRow]
    shares: list[ShareRow]
    time_to_assign: Durations
    not_assigned: int
    """Leads of the window that never had an owner."""
    time_to_accept: Durations
    breaches: int
    breaches_by_owner: dict[str, int]
    queues: list[QueueDepth]
    deliveries: list[DeliveryFailures]


def _hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def per_hour(arrivals: Iterable[Arrival], start: datetime, end: datetime) -> list[HourRow]:
    """Leads per hour (UTC hours, every hour of the window, empty ones too) by intake stage."""
    counts: dict[datetime, Counter[str]] = defaultdict(Counter)
    for arrival in arrivals:
        counts[_hour(arrival.at)][arrival.stage] += 1
    rows = []
    hour = _hour(start)
    while hour < end:
        rows.append(HourRow(hour, {stage: counts[hour][stage] for stage in STAGES}))
        hour += timedelta(hours=1)
    return rows


def expected_shares(picks: Iterable[Pick], pools: Mapping[str, PoolInfo]) -> list[ShareRow]:
    """Actual against expected share per rep per pool (the module docstring defines both)."""
    actual: dict[str, Counter[str]] = defaultdict(Counter)
    expected: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for pick in picks:
        if pick.strategy not in POOL_STRATEGIES:
            continue
        info = pools.get(pick.pool)
        members = set(info.members) if info is not None else set()
        candidates = sorted((members | {pick.owner}) - (pick.skipped - {pick.owner}))
        weights = {
            c: (info.weights.get(c, 1) if info is not None and pick.strategy == "weighted" else 1)
            for c in candidates
        }
        total = sum(weights.values())
        actual[pick.pool][pick.owner] += 1
        for candidate in candidates:
            expected[pick.pool][candidate] += weights[candidate] / total
    rows = []
    for pool in sorted(actual):
        n = sum(actual[pool].values())
        for owner in sorted(set(actual[pool]) | set(expected[pool])):
            got = rate(actual[pool][owner], n)
            exp = expected[pool][owner]
            share = exp / n if n else None
            within = (
                None if share is None or got.low is None or got.high is None else got.low <= share <= got.high
            )
            rows.append(
                ShareRow(
                    pool=pool,
                    owner=owner,
                    actual=got,
                    expected_leads=exp,
                    expected_share=share,
                    within=within,
                )
            )
    return rows


def durations(seconds: Sequence[float]) -> Durations:
    return Durations(count=len(seconds), p50=percentile(seconds, 50), p90=percentile(seconds, 90))


def dashboard(
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    arrivals: Sequence[Arrival],
    picks: Sequence[Pick],
    pools: Mapping[str, PoolInfo],
    assign_seconds: Sequence[float],
    not_assigned: int,
    accept_seconds: Sequence[float],
    breaches: Sequence[Breach],
    queues: Sequence[QueueDepth],
    deliveries: Sequence[DeliveryFailures],
) -> DashboardReport:
    """The dashboard from its inputs (each read by :mod:`leadroute.reports._source`)."""
    return DashboardReport(
        start=start,
        end=end,
        now=now,
        leads=len(arrivals),
        per_hour=per_hour(arrivals, start, end),
        shares=expected_shares(picks, pools),
        time_to_assign=durations(assign_seconds),
        not_assigned=not_assigned,
        time_to_accept=durations(accept_seconds),
        breaches=len(breaches),
        breaches_by_owner=dict(sorted(Counter(b.owner for b in breaches).items())),
        queues=list(queues),
        deliveries=list(deliveries),
    )
