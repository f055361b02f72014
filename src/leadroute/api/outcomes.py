"""Outcomes over HTTP: what sales made of a lead (``POST /v1/leads/{id}/outcome``)."""

from __future__ import annotations

import uuid

from litestar import Controller, Response, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody

from leadroute.api.bodies import parsed_body
from leadroute.api.deps import IdempotencyKey
from leadroute.api.problems import problem_responses
from leadroute.runtime import Runtime
from leadroute.workflow.outcomes import OutcomeAnswer, OutcomeIn, parse_outcome, record_outcome

__all__ = ["OutcomeController"]

MAX_OUTCOME_BYTES = 8 * 1024
"""An outcome is a few fields: bodies over 8 KB get 413."""


class OutcomeController(Controller):
    path = "/v1/leads"
    tags = ["outcomes"]  # noqa: RUF012  (Litestar reads it as a class attribute)

    @post(
        "/{lead_id:uuid}/outcome",
        request_max_body_size=MAX_OUTCOME_BYTES,
        status_code=201,
        summary="Record what sales made of the lead",
        dto=parsed_body(OutcomeIn, parse_outcome),
        return_dto=None,
        responses={
            200: ResponseSpec(OutcomeAnswer, description="A retry: the first answer, unchanged"),
            **problem_responses(400, 404, 413, 422),
        },
    )
    async def record(
        self,
        rt: NamedDependency[Runtime],
        actor: NamedDependency[str],
        lead_id: FromPath[uuid.UUID],
        data: JSONBody[OutcomeIn],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[OutcomeAnswer]:
        """``converted``, ``won``, ``lost`` or ``disqualified_by_sales``, with an optional ``amount``
        (and ``currency``, USD by default), the time it happened (``at``, default now; never in the
        future nor before the lead arrived) and a ``reason``. Appends a ``lead.outcome`` event to
        the lead's log (sent to webhooks that ask for it); several per lead are fine (converted,
        then won). A retry with the same ``Idempotency-Key`` gets the first answer with 200.
        """
        result = await record_outcome(rt, lead_id, data, actor, idempotency_key=idempotency_key)
        return Response(result.answer, status_code=201 if result.created else 200)
