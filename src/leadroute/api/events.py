"""Activity events: what a known lead did (page views, forms, email clicks, webinars...)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec

from leadroute.api.deps import IdempotencyKey
from leadroute.api.problems import problem_responses
from leadroute.models import RuleHit, Stage
from leadroute.runtime import Runtime
from leadroute.structs import Struct
from leadroute.workflow.events import record_event

__all__ = ["EventAnswer", "EventController"]

MAX_EVENT_BYTES = 32 * 1024
"""An event is a few properties: bodies over 32 KB get 413."""


class EventAnswer(Struct, kw_only=True):
    """What an event did to its lead (``leadroute.workflow.events`` builds it; a retry gets it again)."""

    lead_id: str
    event_id: int
    """The ``activity.recorded`` entry's sequence number in the lead's event log."""
    score: float
    previous_score: float
    groups: dict[str, float]
    """Scoring group → its score after caps."""
    stage: Stage
    previous_stage: str
    matched: list[RuleHit]
    """Every scoring rule that matched, with its points (activity rules once per activity)."""
    routed: bool
    """True when this event raised the stage of an unowned lead and routing gave it an owner."""
    owner: str | None
    pool: str | None
    ruleset_version: int
    ruleset_sha256: str


async def record(
    rt: Runtime, body: bytes, idempotency_key: str | None, *, actor: str
) -> Response[EventAnswer]:
    """Record the event; 201 with the answer, or 200 with the first answer for a retry."""
    result = await record_event(rt, body, idempotency_key, actor=actor)
    answer = msgspec.convert(result.response, EventAnswer)  # the workflow answers with a dict
    return Response(answer, status_code=201 if result.created else 200)


class EventController(Controller):
    path = "/v1/events"
    tags = ["events"]  # noqa: RUF012  (Litestar reads it as a class attribute)

    @post(
        "/",
        request_max_body_size=MAX_EVENT_BYTES,
        status_code=201,
        summary="Record an activity event",
        responses={
            200: ResponseSpec(EventAnswer, description="A retry: the first answer, unchanged"),
            **problem_responses(400, 404, 413, 422),
        },
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        rt: NamedDependency[Runtime],
        actor: NamedDependency[str],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[EventAnswer]:
        """Store the event, rescore the lead with decay, requalify it, and route it if its stage rose.

        The lead is named by ``lead_id`` or ``email`` (the newest lead with that address); with
        both, an email that is not that lead's is a 422 on ``email``. A retry with the same
        ``Idempotency-Key`` (or ``event_id``) returns the first answer with 200.
        """
        return await record(rt, await request.body(), idempotency_key, actor=actor)
