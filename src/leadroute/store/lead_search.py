"""The console's reads of leads: search with filters, the queues, a lead's outbound deliveries.

:func:`search_leads` builds its ``WHERE`` from the fixed conditions of :data:`_CONDITIONS` (one
per filter that is set, each binding its own parameter: no value is ever put in the SQL text),
so PostgreSQL plans each search for the filters it has. Email and company domain use their
indexes (``leads_email_created_idx``, ``leads_company_domain_idx``); no filter reads
``leads_created_idx`` and an owner ``leads_owner_created_idx`` (migration 0016) in the page's
order; stage, status or date alone read leads newest first and stop after one page (see
docs/console.md).
Pages are keyset cursors: ``(created_at, id)`` of the last row shown.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Final

import msgspec

from leadroute.store.db import Connection
from leadroute.store.queries import QUERIES
from leadroute.structs import Struct

__all__ = [
    "Delivery",
    "LeadFilters",
    "LeadPage",
    "LeadRow",
    "QueueCount",
    "QueuedLead",
    "lead_deliveries",
    "queue_counts",
    "queued_leads",
    "search_leads",
]


class LeadFilters(msgspec.Struct, frozen=True, kw_only=True):
    """What the console's lead search filters on; None: any."""

    email: str | None = None
    """Exact, after the lower-casing intake applies."""
    company: str | None = None
    """A company domain (``acme.com``, exact) or the start of a company name (case-insensitive)."""
    owner: str | None = None
    stage: str | None = None
    status: str | None = None
    queue: str | None = None
    """The pool a lead waits in (``pending``: waiting for routing)."""
    created_from: datetime | None = None
    created_to: datetime | None = None
    """Exclusive."""


_CONDITIONS: Final = {
    "email": "l.email = ${}",
    "company_domain": "l.company_domain = ${}",
    "company_name": "l.normalized->>'company' ILIKE ${} || '%'",
    "owner": "l.owner_id = ${}",
    "stage": "l.stage = ${}",
    "status": "l.status = ${}",
    "queue": "a.waiting AND coalesce(a.pool_id, 'pending') = ${}",
    "created_from": "l.created_at >= ${}",
    "created_to": "l.created_at < ${}",
}
"""Each filter's condition; ``{}`` becomes its parameter number."""


class LeadRow(Struct, kw_only=True):
    """A lead as a search lists it."""

    id: uuid.UUID
    created_at: datetime
    email: str | None
    company_domain: str | None
    company: str | None
    stage: str
    score: float
    status: str
    owner_id: str | None
    pool_id: str | None
    queue: str | None
    waiting: bool | None
    placed_at: datetime | None


class LeadPage(Struct, kw_only=True):
    """One page of a search, and the cursor of the next (None: this is the last)."""

    leads: list[LeadRow]
    next_cursor: tuple[datetime, uuid.UUID] | None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _terms(filters: LeadFilters) -> list[tuple[str, Any]]:
    terms: list[tuple[str, Any]] = []
    if filters.email:
        terms.append(("email", filters.email.strip().lower()))
    if filters.company:
        company = filters.company.strip()
        if "." in company and " " not in company:
            terms.append(("company_domain", company.lower().removeprefix("www.")))
        else:
            terms.append(("company_name", _escape_like(company)))
    for name in ("owner", "stage", "status", "queue", "created_from", "created_to"):
        value = getattr(filters, name)
        if value is not None and value != "":
            terms.append((name, value))
    return terms


async def search_leads(
    conn: Connection,
    filters: LeadFilters,
    *,
    limit: int = 50,
    after: tuple[datetime, uuid.UUID] | None = None,
) -> LeadPage:
    """A page of leads matching ``filters``, newest first, after the cursor ``after``."""
    terms = _terms(filters)
    where = "".join(
        f"\n   AND {_CONDITIONS[name].format(number)}" for number, (name, _) in enumerate(terms, start=4)
    )
    sql = QUERIES["search_leads"].replace("{where}", where)
    rows = await conn.fetch(
        sql,
        after[0] if after else None,
        after[1] if after else None,
        limit + 1,
        *(value for _, value in terms),
    )
    leads = [LeadRow(**dict(row)) for row in rows[:limit]]
    more = len(rows) > limit
    return LeadPage(leads=leads, next_cursor=(leads[-1].created_at, leads[-1].id) if more else None)


class QueuedLead(Struct, kw_only=True):
    """A lead waiting in a queue, and since when."""

    id: uuid.UUID
    email: str | None
    company_domain: str | None
    company: str | None
    stage: str
    score: float
    status: str
    pool_id: str | None
    queue: str | None
    reason: str | None
    queued_at: datetime


class QueueCount(Struct, kw_only=True):
    """One queue: how many leads wait in it, and since when the oldest has waited."""

    pool_id: str
    """The pool ("" for leads waiting for routing itself: pending)."""
    waiting: int
    oldest: datetime


async def queued_leads(
    conn: Connection, *, limit: int = 100, offset: int = 0
) -> tuple[list[QueuedLead], bool]:
    """The waiting leads, longest wait first, and whether there are more."""
    rows = await conn.fetch(QUERIES["queued_leads"], limit + 1, offset)
    return [QueuedLead(**dict(row)) for row in rows[:limit]], len(rows) > limit


async def queue_counts(conn: Connection) -> list[QueueCount]:
    """Each queue with waiting leads, the one waiting longest first."""
    return [QueueCount(**dict(row)) for row in await conn.fetch(QUERIES["queued_counts"])]


class Delivery(Struct, kw_only=True):
    """An outbound delivery of one of a lead's events to one endpoint (webhook or CRM)."""

    id: int
    endpoint_id: str
    event_seq: int
    event_type: str
    status: str
    attempts: int
    last_status: int | None
    last_error: str | None
    created_at: datetime
    done_at: datetime | None
    next_at: datetime


async def lead_deliveries(conn: Connection, lead_id: uuid.UUID) -> list[Delivery]:
    """Every delivery of the lead's events, in event order."""
    return [Delivery(**dict(row)) for row in await conn.fetch(QUERIES["lead_deliveries"], lead_id)]
