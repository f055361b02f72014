"""Rulesets as recorded in PostgreSQL: every decision points at the row that made it."""

from __future__ import annotations

from leadroute.rules import Ruleset
from leadroute.store.db import Connection
from leadroute.store.queries import QUERIES

__all__ = ["record_ruleset"]


async def record_ruleset(conn: Connection, ruleset: Ruleset) -> int:
    """Store the ruleset's source once per (version, sha256) and return its id."""
    ruleset_id: int = await conn.fetchval(
        QUERIES["ruleset_record"],
        ruleset.version,
        ruleset.sha256,
        ruleset.description,
        ruleset.source,
        str(ruleset.path),
    )
    return ruleset_id
