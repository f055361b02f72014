"""The lead workflow over HTTP: accept, reassign and close a lead's assignment.

Each answers 200 with the lead's workflow state (``status``, ``owner``, ``pool``, ``queue``,
``reason``, and its latest ``sla`` timer). Repeating a request that already took effect (accept
an accepted lead, close a closed one, reassign to the current owner) answers the same, with 200.
Errors are problem+json: an unknown lead is 404, an unknown owner 422, an action the lead's state
does not allow (closed, unassigned, not the current owner, owner unavailable) 409.
"""

from __future__ import annotations

import uuid
from typing import Annotated

import msgspec
from litestar import Controller, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from leadroute.api.problems import problem_responses
from leadroute.runtime import Runtime
from leadroute.store.owners import Id
from leadroute.workflow.actions import accept, close, reassign
from leadroute.workflow.story import LeadState

__all__ = ["AcceptBody", "AssignmentController", "CloseBody", "ReassignBody"]

Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class AcceptBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Who accepts: must be the lead's current owner (so a stale accept cannot take a moved lead)."""

    owner_id: Id


class ReassignBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``owner_id``: this owner; absent: the next eligible owner of the lead's pool."""

    owner_id: Id | None = None
    reason: Reason | None = None


class CloseBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Why the lead is closed (free text for people; kept in the history, never logged)."""

    reason: Reason | None = None


_ACTION = problem_responses(400, 404, 409, 413, 422)


class AssignmentController(Controller):
    path = "/v1/assignments"
    tags = ["workflow"]  # noqa: RUF012  (Litestar reads it as a class attribute)

    @post("/{lead_id:uuid}/accept", status_code=200, summary="The owner accepts the lead", responses=_ACTION)
    async def accept(
        self,
        rt: NamedDependency[Runtime],
        actor: NamedDependency[str],
        lead_id: FromPath[uuid.UUID],
        data: JSONBody[AcceptBody],
    ) -> LeadState:
        """Stop the SLA clock: the lead is ``accepted``. Only its current owner may accept it."""
        return await accept(rt, lead_id, data.owner_id, actor=actor)

    @post(
        "/{lead_id:uuid}/reassign",
        status_code=200,
        summary="Move the lead to another owner",
        responses=_ACTION,
    )
    async def reassign(
        self,
        rt: NamedDependency[Runtime],
        actor: NamedDependency[str],
        lead_id: FromPath[uuid.UUID],
        data: JSONBody[ReassignBody | None] = None,
    ) -> LeadState:
        """To ``owner_id``, or else to the next eligible owner of the pool (never the current one).

        The previous owner's capacity is freed; the new owner gets the lead's SLA afresh. With
        nobody eligible the lead goes to the fallback queue, and the answer says why.
        """
        body = data or ReassignBody()
        return await reassign(rt, lead_id, body.owner_id, body.reason, actor=actor)

    @post("/{lead_id:uuid}/close", status_code=200, summary="Close the lead", responses=_ACTION)
    async def close(
        self,
        rt: NamedDependency[Runtime],
        actor: NamedDependency[str],
        lead_id: FromPath[uuid.UUID],
        data: JSONBody[CloseBody | None] = None,
    ) -> LeadState:
        """The lead is ``closed``: its SLA timer stops and its owner's capacity is freed."""
        return await close(rt, lead_id, (data or CloseBody()).reason, actor=actor)
