"""``POST /v1/leads:batch``: many leads in one request, each answered on its own, in order.

The answer is ``200`` with one result per item (``index``, ``status``, and ``decision`` or
``problem``), whatever became of each: ``207 Multi-Status`` is WebDAV's, with an XML body, and
clients treat a plain 200 with per-item statuses (as Google's and Salesforce's batch APIs answer)
more predictably. An item's ``status`` is what ``POST /v1/leads`` would have answered for it
alone: 201 created, 202 stored but waiting for Redis (``pending``), 200 a merge or the stored answer of its
key (a retry), 422 (or 400) with the same problem, naming each bad field. The request itself
fails only as a whole when nothing could be written (400 not a batch, 413 over 4 MB, 422 over
1,000 leads, 503 PostgreSQL down): see :mod:`leadroute.workflow.batch`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from litestar import Controller, Request, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType as MediaType
from litestar.openapi.spec import Operation, RequestBody, Schema
from litestar.openapi.spec.enums import OpenAPIType

from leadroute.api.deps import IdempotencyKey
from leadroute.api.problems import Problem, problem_for, problem_responses
from leadroute.models import Decision
from leadroute.runtime import Runtime
from leadroute.structs import Struct
from leadroute.workflow.batch import MAX_ITEMS, Outcome, parse_batch, submit_batch

__all__ = ["MAX_BATCH_BYTES", "BatchAnswer", "BatchItem", "LeadBatchController"]

MAX_BATCH_BYTES = 4 * 1024 * 1024
"""At most 4 MB a batch (about 1,000 form-sized leads): larger bodies get 413."""


class BatchItem(Struct, kw_only=True, omit_defaults=True):
    """What became of one item of the batch."""

    index: int
    """Its position in the request, from 0."""
    status: int
    """What ``POST /v1/leads`` would have answered for it alone: 201, 202, 200, 400, 422, 500 or 503."""
    decision: Decision | None = None
    """Its decision (status 201, 202, 200)."""
    problem: Problem | None = None
    """Why it was not taken (any other status): the problem single intake answers, naming each field."""


class BatchAnswer(Struct, kw_only=True):
    """One result per item, in the request's order, and how many of each status."""

    results: list[BatchItem]
    counts: dict[str, int]
    """Items by status (``"201"``, ``"422"``...)."""


def _item(index: int, outcome: Outcome) -> BatchItem:
    if isinstance(outcome, Exception):
        problem = problem_for(outcome)
        return BatchItem(index=index, status=problem.status, problem=problem)
    return BatchItem(index=index, status=outcome.status, decision=outcome.decision)


_LEAD = Schema(
    type=OpenAPIType.OBJECT,
    description="A lead event, exactly as POST /v1/leads takes it (event_id is the item's key)",
)
_ITEMS = Schema(type=OpenAPIType.ARRAY, items=_LEAD, min_items=1, max_items=MAX_ITEMS)


_BODY = RequestBody(
    required=True,
    description=f"Up to {MAX_ITEMS} leads (at most 4 MB): an array, or an object with `leads`",
    content={
        "application/json": MediaType(
            schema=Schema(
                one_of=[
                    _ITEMS,
                    Schema(
                        type=OpenAPIType.OBJECT,
                        properties={"leads": _ITEMS},
                        required=["leads"],
                        additional_properties=False,
                    ),
                ]
            )
        )
    },
)


@dataclass
class _BatchOperation(Operation):
    """The route reads its body itself (each item is checked on its own, like single intake):
    the operation documents it, as an array of leads or ``{"leads": [...]}``."""

    def __post_init__(self) -> None:
        self.request_body = _BODY


class LeadBatchController(Controller):
    path = "/v1/leads:batch"
    tags = ["leads"]  # noqa: RUF012  (Litestar reads it as a class attribute)

    @post(
        "/",
        request_max_body_size=MAX_BATCH_BYTES,
        status_code=200,
        summary="Submit many leads",
        operation_class=_BatchOperation,
        responses={
            200: ResponseSpec(BatchAnswer, description="One result per item, in order"),
            **problem_responses(400, 413, 422),
        },
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        rt: NamedDependency[Runtime],
        actor: NamedDependency[str],
        idempotency_key: IdempotencyKey = None,
    ) -> BatchAnswer:
        """Score, qualify and route up to 1,000 leads; each item is answered on its own, in order.

        Each item's key is its ``event_id``; an item without one, in a request with an
        ``Idempotency-Key`` header, is keyed ``<header>#<index>``. So a retried batch writes
        nothing twice: each item answers 200 with its first decision. One bad item never stops
        the others.
        """
        outcomes = await submit_batch(rt, parse_batch(await request.body()), idempotency_key, actor=actor)
        results = [_item(index, outcome) for index, outcome in enumerate(outcomes)]
        counts = Counter(str(item.status) for item in results)
        return BatchAnswer(results=results, counts=dict(sorted(counts.items())))
