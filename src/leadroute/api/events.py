"""Activity events: what a known lead did (page views, forms, email clicks, webinars...)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import HeaderParameter

from leadroute.api.problems import problem_responses
from leadroute.runtime import Runtime
from leadroute.workflow.events import record_event

__all__ = ["EventController"]

MAX_EVENT_BYTES = 32 * 1024
"""An event is a few properties: bodies over 32 KB get 413."""


class EventController(Controller):
    path = "/v1/events"
    tags = ["events"]  # noqa: RUF012  (Litestar reads it as a class attribute)

    @post(
        "/",
        request_max_body_size=MAX_EVENT_BYTES,
        status_code=201,
        summary="Record an activity event",
        responses={
            200: ResponseSpec(dict[str, Any], description="A retry: the first answer, unchanged"),
            **problem_responses(400, 404, 413, 422),
        },
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        rt: NamedDependency[Runtime],
        actor: NamedDependency[str],
        idempotency_key: Annotated[
            str | None, HeaderParameter(name="Idempotency-Key", max_length=255, required=False)
        ] = None,
    ) -> Response[dict[str, Any]]:
        """Store the event, rescore the lead with decay, requalify it, and route it if its stage rose.

        The lead is named by ``lead_id`` or ``email`` (the newest lead with that address); with
        both, an email that is not that lead's is a 422 on ``email``. A retry with the same
        ``Idempotency-Key`` (or ``event_id``) returns the first answer with 200.
        """
        result = await record_event(rt, await request.body(), idempotency_key, actor=actor)
        return Response(result.response, status_code=201 if result.created else 200)
