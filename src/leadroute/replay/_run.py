"""Replay stored leads under two rulesets and report the difference; writes nothing.

A candidate that routes to a pool the database does not hold still replays, with a warning
per such pool in the report (:func:`unknown_pools`).

Both rulesets see the same lead, the same activities and the same "now" (``as_of``), so every
difference in the report comes from the rules alone. Routing is compared by target (which pool
or account owner routing would try), not by owner: picking an owner would claim round-robin and
capacity state, and a replay never touches routing state.

Evaluation is CPU work; each batch runs in a worker thread so a replay started from the HTTP
API does not stall the event loop for the other requests of that instance.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated

import msgspec

from leadroute.intake import MalformedBody
from leadroute.replay._report import ReplayAccumulator, ReplayReport, ReplayWarning, RulesetInfo, outcome_of
from leadroute.replay._simulate import MAX_RULESET_CHARS, InvalidBody
from leadroute.replay._source import StoredLead, chosen_ruleset, count_leads, stream_leads
from leadroute.rules import Ruleset
from leadroute.runtime import Runtime
from leadroute.scoring import evaluate
from leadroute.store.db import Connection
from leadroute.store.queries import QUERIES
from leadroute.structs import FrozenStruct

__all__ = [
    "DEFAULT_BATCH",
    "ReplayIn",
    "Side",
    "parse_replay",
    "parse_since",
    "replay_leads",
    "replay_request",
    "replay_stored",
    "unknown_pools",
]

DEFAULT_BATCH = 500
"""Leads fetched and evaluated per round trip."""

_DURATION = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

Progress = Callable[[int, int], None]
"""Told ``(done, total)`` after every batch."""

DEFAULT_LIMIT = 10_000
MAX_LIMIT = 100_000


class ReplayIn(FrozenStruct, frozen=True, kw_only=True):
    """The body of ``POST /v1/rulesets/replay``: the candidate as YAML text or a stored version.

    ``since`` is a duration (``30d``, ``12h``) or an ISO date; ``limit`` caps the leads replayed
    (newest first) so one request does bounded work; ``examples`` is lead ids per kind of change.
    """

    candidate: Annotated[str, msgspec.Meta(max_length=MAX_RULESET_CHARS)] | None = None
    version: int | None = None
    since: str | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    examples: Annotated[int, msgspec.Meta(ge=0, le=100)] = 5


_DECODER = msgspec.json.Decoder(ReplayIn)


def parse_replay(body: bytes) -> ReplayIn:
    """The checked body; :class:`MalformedBody` (not JSON) or :class:`InvalidBody` naming the field."""
    try:
        request = _DECODER.decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidBody.from_validation(exc) from None
    except msgspec.DecodeError as exc:
        raise MalformedBody(f"body is not valid JSON: {exc}") from None
    if (request.candidate is None) == (request.version is None):
        raise InvalidBody("candidate", "give the candidate as YAML text (candidate) or a stored version")
    return request


class Side:
    """One ruleset of a replay and how the report names it."""

    __slots__ = ("info", "ruleset")

    def __init__(self, ruleset: Ruleset, source: str) -> None:
        self.ruleset = ruleset
        self.info = RulesetInfo(version=ruleset.version, sha256=ruleset.sha256, source=source)


def parse_since(text: str, *, now: datetime) -> datetime:
    """``30d``, ``12h``, ``90m``, ``2w`` before ``now``, or an ISO date or datetime (UTC if naive).

    Raises ValueError with a message that says what is accepted.
    """
    match = _DURATION.match(text)
    if match:
        try:
            return now - timedelta(**{_UNITS[match[2]]: int(match[1])})
        except OverflowError:  # more days than the calendar holds
            raise ValueError(
                f"since: {text!r} reaches back before the year 1; give a shorter duration, "
                "or leave since out to replay every stored lead"
            ) from None
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"since: {text!r} is neither a duration (30d, 12h, 90m, 2w) nor an ISO date"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def replay_leads(
    acc: ReplayAccumulator,
    leads: Sequence[StoredLead],
    baseline: Ruleset,
    candidate: Ruleset,
    as_of: datetime,
) -> None:
    """Evaluate each lead under both rulesets at ``as_of`` and add the pair to ``acc``."""
    for stored in leads:
        if stored.lead is None:
            acc.skip()
            continue
        before = evaluate(baseline, stored.lead, activities=stored.activities, now=as_of)
        after = evaluate(candidate, stored.lead, activities=stored.activities, now=as_of)
        acc.add(stored.id, outcome_of(before), outcome_of(after), stored_stage=stored.stage)


def unknown_pools(ruleset: Ruleset, known: set[str]) -> list[ReplayWarning]:
    """A warning per pool ``ruleset`` routes to that is not in ``known``, naming the rules using it.

    Upload, validation and activation refuse such a ruleset (``check_pools``); a replay still
    runs, so that the rest of the change can be judged, and says so.
    """
    users: dict[str, list[str]] = {}
    lines: dict[str, list[str]] = {}
    for rule in ruleset.routing_rules:
        if rule.pool is not None and rule.pool not in known:
            users.setdefault(rule.pool, []).append(rule.id)
            where = f"{ruleset.display_path}:{rule.pool_line or rule.line}"
            lines.setdefault(rule.pool, []).append(f"{rule.id!r} ({where})")
    return [
        ReplayWarning(
            kind="unknown_pool",
            pool=pool,
            rules=rules,
            message=(
                f"the candidate routes to pool {pool!r}, which does not exist "
                f"(rule{'s' if len(rules) > 1 else ''} {', '.join(lines[pool])}): its leads would wait "
                f"in queue {ruleset.fallback!r}, and activation refuses a ruleset naming an unknown "
                "pool: create the pool or fix the name"
            ),
        )
        for pool, rules in users.items()
    ]


async def replay_stored(
    conn: Connection,
    *,
    baseline: Side,
    candidate: Side,
    as_of: datetime,
    since: datetime | None = None,
    limit: int | None = None,
    examples: int = 5,
    batch_size: int = DEFAULT_BATCH,
    progress: Progress | None = None,
) -> ReplayReport:
    """Replay the stored leads created since ``since`` (newest first, at most ``limit``)."""
    acc = ReplayAccumulator(examples=examples)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        known = {r["id"] for r in await conn.fetch(QUERIES["pool_ids"])}
        warnings = unknown_pools(candidate.ruleset, known)
        total = await count_leads(conn, since=since, limit=limit)
        if progress is not None:
            progress(0, total)
        done = 0
        async for batch in stream_leads(conn, since=since, limit=limit, batch_size=batch_size):
            await asyncio.to_thread(replay_leads, acc, batch, baseline.ruleset, candidate.ruleset, as_of)
            done += len(batch)
            if progress is not None:
                progress(done, max(total, done))
    return acc.report(
        baseline=baseline.info,
        candidate=candidate.info,
        as_of=as_of,
        since=since,
        limit=limit,
        warnings=warnings,
    )


async def replay_request(rt: Runtime, request: ReplayIn) -> ReplayReport:
    """Replay the newest ``limit`` leads created since ``since`` under the active ruleset and the
    candidate (YAML text or a stored version); writes nothing, claims no owner."""
    as_of = rt.clock()
    try:
        since = parse_since(request.since, now=as_of) if request.since is not None else None
    except ValueError as exc:
        raise InvalidBody("since", str(exc).removeprefix("since: ")) from None
    active = rt.rules
    async with rt.db.acquire() as conn:
        chosen = await chosen_ruleset(
            conn, text=request.candidate, version=request.version, field="version", name="candidate.yaml"
        )
        assert chosen is not None  # parse_replay requires one of them
        return await replay_stored(
            conn,
            baseline=Side(active.ruleset, "active"),
            candidate=Side(*chosen),
            as_of=as_of,
            since=since,
            limit=request.limit,
            examples=request.examples,
        )
