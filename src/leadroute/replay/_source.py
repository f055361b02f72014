"""Reading what dry runs need from PostgreSQL: stored leads with their activities, stored rulesets.

Stored rulesets are read with the rulesets store (:mod:`leadroute.store.rulesets`).
Stored leads stream through a server-side cursor in batches, so a replay of 100,000 leads holds
one batch in memory at a time. A cursor lives inside a transaction: the caller opens one
(read-only, repeatable read, so the whole replay sees one snapshot).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from leadroute.errors import ClientError
from leadroute.models import Activity, NormalizedLead
from leadroute.rules import Ruleset, parse_ruleset
from leadroute.store.db import Connection
from leadroute.store.queries import QUERIES
from leadroute.store.rulesets import active_activation, load_ruleset_by_id, load_stored_ruleset

__all__ = [
    "StoredLead",
    "UnknownRulesetVersion",
    "active_side",
    "chosen_ruleset",
    "count_leads",
    "stored_lead",
    "stream_leads",
]


class StoredLead(msgspec.Struct, frozen=True):
    """A stored lead as rules saw it, and its activity events; ``lead`` is None when unreadable."""

    id: str
    lead: NormalizedLead | None
    activities: list[Activity]
    stage: str | None = None
    """The stage stored with the lead (its latest decision's)."""


def _activity(row: Any) -> Activity | None:
    payload = row["payload"]
    if (
        not isinstance(payload, dict)
        or not isinstance(payload.get("activity"), str)
        or row["occurred_at"] is None
    ):
        return None
    properties = payload.get("properties")
    return Activity(
        type=payload["activity"],
        occurred_at=row["occurred_at"],
        properties=properties if isinstance(properties, dict) else {},
    )


def _lead(normalized: Any) -> NormalizedLead | None:
    try:
        return msgspec.convert(normalized, NormalizedLead)
    except msgspec.ValidationError:
        return None


async def stored_lead(conn: Connection, lead_id: uuid.UUID) -> StoredLead | None:
    """One stored lead and its activities (None when there is no such lead)."""
    row = await conn.fetchrow(QUERIES["replay_lead"], lead_id)
    if row is None:
        return None
    activities = [a for a in map(_activity, await conn.fetch(QUERIES["replay_activities"], [lead_id])) if a]
    return StoredLead(str(lead_id), _lead(row["normalized"]), activities, row["stage"])


async def count_leads(conn: Connection, *, since: datetime | None, limit: int | None) -> int:
    """How many leads :func:`stream_leads` will yield with the same arguments."""
    count: int = await conn.fetchval(QUERIES["replay_lead_count"], since, limit)
    return count


async def stream_leads(
    conn: Connection, *, since: datetime | None, limit: int | None, batch_size: int = 500
) -> AsyncIterator[list[StoredLead]]:
    """Stored leads, newest first, in batches of ``batch_size``; call inside a transaction."""
    cursor = await conn.cursor(QUERIES["replay_leads"], since, limit)
    while rows := await cursor.fetch(batch_size):
        ids: list[uuid.UUID] = [row["id"] for row in rows]
        activities: defaultdict[uuid.UUID, list[Activity]] = defaultdict(list)
        for row in await conn.fetch(QUERIES["replay_activities"], ids):
            activity = _activity(row)
            if activity is not None:
                activities[row["lead_id"]].append(activity)
        yield [
            StoredLead(str(row["id"]), _lead(row["normalized"]), activities[row["id"]], row["stage"])
            for row in rows
        ]


class UnknownRulesetVersion(ClientError):
    """No stored ruleset has the requested version."""

    status = 422
    kind = "unknown-ruleset-version"
    title = "Unknown ruleset version"

    def __init__(self, field: str, version: int) -> None:
        message = f"no stored ruleset has version {version}"
        super().__init__(message, errors=[{"field": field, "message": message}])


async def chosen_ruleset(
    conn: Connection, *, text: str | None, version: int | None, field: str, name: str = "uploaded.yaml"
) -> tuple[Ruleset, str] | None:
    """The ruleset a request names, and how to call it in answers; None when it names none.

    ``text`` is YAML to parse (``RulesetError`` names the rule and line of each fault); ``version``
    is a stored version (``UnknownRulesetVersion`` names ``field`` when there is none).
    """
    if text is not None:
        return parse_ruleset(text, path=Path(name)), f"uploaded {name}"
    if version is None:
        return None
    loaded = await load_stored_ruleset(conn, version)
    if loaded is None:
        raise UnknownRulesetVersion(field, version)
    return loaded[0], f"stored version {version}"


async def active_side(conn: Connection) -> tuple[Ruleset, str] | None:
    """The ruleset the fleet runs (the latest activation) and its label; None before the first."""
    activation = await active_activation(conn)
    loaded = await load_ruleset_by_id(conn, activation.ruleset_id) if activation is not None else None
    if activation is None or loaded is None:
        return None
    return loaded[0], f"active (stored version {activation.version})"
