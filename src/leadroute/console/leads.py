"""Leads: search, the queues, and one lead's page (its timeline and why it is where it is).

Each page reads through the functions the JSON API uses (:func:`leadroute.workflow.story.lead_story`
and :func:`~leadroute.workflow.story.explain` for ``GET /v1/leads/{id}`` and its explain) and the
console's reads of :mod:`leadroute.store.lead_search`. ``/console/leads/{id}`` is the lead's
stable link.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Template

from leadroute.console._pages import page
from leadroute.console._session import Viewer
from leadroute.console._timeline import timeline
from leadroute.errors import ClientError
from leadroute.replay import STAGES
from leadroute.runtime import Runtime
from leadroute.store.lead_search import (
    LeadFilters,
    lead_deliveries,
    queue_counts,
    queued_leads,
    search_leads,
)
from leadroute.workflow.story import explain, lead_story

__all__ = ["LeadPages"]

STATUSES = ("pending", "assigned", "accepted", "reassigned", "escalated", "unassigned", "closed")
PAGE = 50

Rt = NamedDependency[Runtime]
Who = NamedDependency[Viewer]


class BadFilter(ClientError):
    status = 400
    kind = "bad-request"
    title = "A search field is not valid"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", errors=[{"field": field, "message": message}])


def _day(field: str, value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadFilter(field, "a date as YYYY-MM-DD") from None


def _cursor(value: str | None) -> tuple[datetime, uuid.UUID] | None:
    if not value:
        return None
    at, _, ident = value.partition("_")
    try:
        return datetime.fromisoformat(at), uuid.UUID(ident)
    except ValueError:
        raise BadFilter("after", "not a cursor this console made") from None


FILTERS: Final = (
    "email",
    "company",
    "owner",
    "stage",
    "status",
    "queue",
    "created_from",
    "created_to",
)
"""The search's fields, in the form's order."""


def _field(form: Any, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


async def _results(rt: Runtime, viewer: Viewer, query: dict[str, str], after: str | None) -> Template:
    start, end = _day("created_from", query.get("created_from")), _day("created_to", query.get("created_to"))
    filters = LeadFilters(
        email=query.get("email") or None,
        company=query.get("company") or None,
        owner=query.get("owner") or None,
        stage=query.get("stage") or None,
        status=query.get("status") or None,
        queue=query.get("queue") or None,
        created_from=datetime.combine(start, time(), UTC) if start else None,
        created_to=datetime.combine(end, time(), UTC) + timedelta(days=1) if end else None,
    )
    async with rt.db.acquire() as conn:
        found = await search_leads(conn, filters, limit=PAGE, after=_cursor(after))
    following = None
    if found.next_cursor is not None:
        following = f"{found.next_cursor[0].isoformat()}_{found.next_cursor[1]}"
    query = {name: query.get(name, "") for name in FILTERS}
    return page(
        "leads/search.html",
        viewer,
        leads=found.leads,
        query=query,
        searched=any(query.values()),
        following=following,
        paged=after is not None,
        stages=STAGES,
        statuses=STATUSES,
    )


class LeadPages(Controller):
    path = "/leads"
    include_in_schema = False

    @get("/")
    async def search(
        self,
        *,
        rt: Rt,
        viewer: Who,
        company: FromQuery[str | None] = None,
        owner: FromQuery[str | None] = None,
        stage: FromQuery[str | None] = None,
        status: FromQuery[str | None] = None,
        queue: FromQuery[str | None] = None,
        created_from: FromQuery[str | None] = None,
        created_to: FromQuery[str | None] = None,
        after: FromQuery[str | None] = None,
    ) -> Template:
        """Leads matching the filters, newest first, a page at a time (a link such as a queue's;
        a search by email is a POST, so that no address is in a URL, a log or a trace)."""
        given = {
            "company": company,
            "owner": owner,
            "stage": stage,
            "status": status,
            "queue": queue,
            "created_from": created_from,
            "created_to": created_to,
        }
        return await _results(rt, viewer, {k: v or "" for k, v in given.items()}, after)

    @post("/", status_code=200)
    async def search_form(self, request: Request[Any, Any, Any], rt: Rt, viewer: Who) -> Template:
        """The search form (its email stays out of the URL), and its pages."""
        form = await request.form()
        values = {name: _field(form, name) for name in FILTERS}
        return await _results(rt, viewer, values, _field(form, "after") or None)

    @get("/queued")
    async def queued(self, rt: Rt, viewer: Who, offset: FromQuery[int] = 0) -> Template:
        """The leads waiting in a queue, the longest wait first, and each queue's depth."""
        offset = max(offset, 0)
        async with rt.db.acquire() as conn:
            waiting, more = await queued_leads(conn, limit=PAGE * 2, offset=offset)
            counts = await queue_counts(conn)
        return page(
            "leads/queued.html",
            viewer,
            leads=waiting,
            counts=counts,
            now=rt.clock(),
            offset=offset,
            following=offset + PAGE * 2 if more else None,
            previous=max(offset - PAGE * 2, 0) if offset else None,
        )

    @get("/{lead_id:uuid}")
    async def lead(self, rt: Rt, viewer: Who, lead_id: FromPath[uuid.UUID]) -> Template:
        """One lead: where it is, why (the explain summary), and its whole timeline."""
        async with rt.db.acquire() as conn:
            story = await lead_story(conn, lead_id)
            why = await explain(conn, lead_id)
            deliveries = await lead_deliveries(conn, lead_id)
        return page(
            "leads/lead.html",
            viewer,
            story=story,
            why=why,
            entries=timeline(story.history, deliveries),
            now=rt.clock(),
        )
