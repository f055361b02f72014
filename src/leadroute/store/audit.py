"""The admin audit trail: who changed which owner, pool or key (``audit_log``), and who activated
which ruleset (``ruleset_activations``), read together by ``GET /v1/audit``.

:func:`audit` takes the connection of the change and is called inside its transaction, so a
change is never stored without its row, nor a row without its change.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from leadroute.store.db import Connection
from leadroute.store.queries import QUERIES
from leadroute.structs import Struct

__all__ = ["AuditEntry", "audit", "audit_trail"]


class AuditEntry(Struct, kw_only=True):
    """One change: when, by whom (``key:<id> (person)``, ``cli:...``), what, to which subject."""

    at: datetime
    actor: str
    action: str
    """``owner.put``, ``pool.patch``, ``key.create``, ``ruleset.activate``, ..."""
    subject: str
    """``owner:<id>``, ``pool:<id>``, ``key:<id>``, ``ruleset:<version>``."""
    detail: dict[str, Any]


async def audit(
    conn: Connection, actor: str, action: str, subject: str, detail: dict[str, Any] | None = None
) -> None:
    """Record a change in the audit trail; call it inside the change's transaction."""
    await conn.execute(QUERIES["audit_insert"], actor, action, subject, detail or {})


async def audit_trail(
    conn: Connection, *, before: datetime | None = None, limit: int = 100
) -> list[AuditEntry]:
    """The newest ``limit`` changes (before ``before``), ruleset activations included."""
    rows = await conn.fetch(QUERIES["audit_list"], before, limit)
    return [AuditEntry(**dict(r)) for r in rows]
