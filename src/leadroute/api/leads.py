"""Lead intake, read and explain."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import FromPath

from leadroute.api.deps import IdempotencyKey
from leadroute.api.problems import problem_responses
from leadroute.models import Decision
from leadroute.runtime import Runtime
from leadroute.workflow.intake import submit_lead
from leadroute.workflow.story import Explanation, LeadStory, explain, lead_story

__all__ = ["MAX_BODY_BYTES", "LeadController"]

MAX_BODY_BYTES = 64 * 1024
"""A lead is a form, not an upload: bodies over 64 KB get 413."""


_READ = problem_responses(400, 404)


class LeadController(Controller):
    path = "/v1/leads"
    tags = ["leads"]  # noqa: RUF012  (Litestar reads it as a class attribute)

    @post(
        "/",
        request_max_body_size=MAX_BODY_BYTES,
        status_code=201,
        summary="Submit a lead",
        responses={
            200: ResponseSpec(
                Decision,
                description=(
                    "A retry: the first decision, unchanged; or the lead event was merged into the "
                    "existing lead of the same person (merged: true, that lead's id and owner)"
                ),
            ),
            202: ResponseSpec(
                Decision, description="Stored and scored; routing waits for Redis (status pending)"
            ),
            **problem_responses(400, 413, 422),
        },
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        rt: NamedDependency[Runtime],
        actor: NamedDependency[str],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[Decision]:
        """Score, qualify and route one lead; a retry with the same key returns the first decision."""
        result = await submit_lead(rt, await request.body(), idempotency_key, actor=actor)
        return Response(result.decision, status_code=result.status)

    @get("/{lead_id:uuid}", summary="A lead, where it is now, and its event log", responses=_READ)
    async def read(self, rt: NamedDependency[Runtime], lead_id: FromPath[uuid.UUID]) -> LeadStory:
        """The lead as normalized, its stage, score, owner or queue, SLA timers, and every event."""
        async with rt.db.acquire() as conn:
            return await lead_story(conn, lead_id)

    @get(
        "/{lead_id:uuid}/explain",
        summary="Why this lead has its score and stage, and is where it is",
        responses=_READ,
    )
    async def explain(self, rt: NamedDependency[Runtime], lead_id: FromPath[uuid.UUID]) -> Explanation:
        """The rules behind its score and stage, how routing placed it (each owner skipped and why),
        every move since (who, when, why), and a summary ending with the current owner or queue."""
        async with rt.db.acquire() as conn:
            return await explain(conn, lead_id)
