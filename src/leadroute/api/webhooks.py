"""Admin: webhook endpoints (Standard Webhooks 1.0) and the CRM connectors, their delivery log,
and redelivery. See ``docs/integrations.md``.

``POST /v1/webhooks`` makes an endpoint and answers with its secret (the only time it is shown);
list, get, ``PATCH`` (url, events, description, enabled) and ``DELETE`` manage it;
``POST .../rotate`` makes a new secret (the old ones keep signing for a while);
``GET .../deliveries`` and ``GET .../attempts`` are the delivery log; ``POST .../redeliver`` sends
one event or a range again. The CRM connectors (``hubspot``, ``salesforce``) are listed with them
and share the delivery log and redelivery, but are configured by settings, not here (409).

Each handler is one call into :mod:`leadroute.outbound`.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter, QueryParameter

from leadroute.api.deps import PooledConnection
from leadroute.api.problems import problem_responses
from leadroute.outbound import (
    Attempt,
    Delivery,
    Endpoint,
    EndpointSecret,
    EventType,
    InvalidWebhook,
    NewEndpoint,
    attempts,
    create_webhook,
    delete_webhook,
    deliveries,
    get_endpoint,
    list_endpoints,
    redeliver,
    rotate_secret,
    update_webhook,
)
from leadroute.runtime import Runtime
from leadroute.structs import Struct

__all__ = ["RedeliverBody", "Redelivered", "RotateBody", "WebhookBody", "WebhookController", "WebhookPatch"]

Url = Annotated[str, msgspec.Meta(min_length=8, max_length=2048, pattern=r"^https?://[^\s\x00]+$")]
Text = Annotated[str, msgspec.Meta(max_length=255, pattern=r"^[^\x00]*$")]
Events = Annotated[list[EventType], msgspec.Meta(min_length=1, max_length=20)]
Seq = Annotated[int, msgspec.Meta(ge=1, le=2**62)]
EndpointId = Annotated[
    str, Parameter(pattern=r"^[a-z0-9_]{1,64}$", min_length=1, max_length=64, description="An endpoint id")
]
Status = Literal["pending", "delivered", "dead", "skipped"]
Conn = NamedDependency[PooledConnection]
Rt = NamedDependency[Runtime]
_UNSET = msgspec.UNSET


class WebhookBody(Struct, kw_only=True):
    """A new endpoint: where to send, and which event types."""

    url: Url
    events: Events
    description: Text | None = None
    enabled: bool = True


class WebhookPatch(Struct, kw_only=True):
    """The fields to change; absent ones keep their value."""

    url: Url | msgspec.UnsetType = _UNSET
    events: Events | msgspec.UnsetType = _UNSET
    description: Text | msgspec.UnsetType | None = _UNSET
    enabled: bool | msgspec.UnsetType = _UNSET


class RotateBody(Struct, kw_only=True):
    """How long the previous secrets keep signing beside the new one (0: they stop now)."""

    keep_previous_hours: Annotated[float, msgspec.Meta(ge=0, le=720)] = 24.0


class RedeliverBody(Struct, kw_only=True):
    """One event (``event``) or a range (``from_event`` to ``to_event``, inclusive): sequence
    numbers of the log, as deliveries and webhooks (``data.sequence``) show them."""

    event: Seq | None = None
    from_event: Seq | None = None
    to_event: Seq | None = None


class Redelivered(Struct, kw_only=True):
    """The events that will be sent again (the ones in range the endpoint wants)."""

    endpoint: str
    events: list[int]


_READ = problem_responses(400, 404)
_WRITE = problem_responses(400, 404, 409, 413, 422)


class WebhookController(Controller):
    path = "/v1/webhooks"
    tags = ["admin"]  # noqa: RUF012  (Litestar reads it as a class attribute)

    @post(
        "/",
        summary="Create a webhook endpoint (answers with its secret)",
        responses=problem_responses(400, 413, 422),
    )
    async def create(self, conn: Conn, rt: Rt, data: JSONBody[WebhookBody]) -> NewEndpoint:
        """The endpoint gets the chosen event types from now on (not the history), signed with the
        ``secret`` in the answer: store it, it is not shown again."""
        return await create_webhook(
            conn,
            rt.settings,
            url=data.url,
            events=list(data.events),
            description=data.description,
            enabled=data.enabled,
            now=rt.clock(),
        )

    @get("/", summary="List webhook endpoints and CRM connectors", responses=problem_responses(400))
    async def list_all(self, conn: Conn, rt: Rt) -> list[Endpoint]:
        """Every endpoint by id, without secrets."""
        return await list_endpoints(conn, rt.clock())

    @get("/{endpoint_id:str}", summary="One endpoint", responses=_READ)
    async def get_one(self, conn: Conn, rt: Rt, endpoint_id: EndpointId) -> Endpoint:
        """One endpoint, without its secrets."""
        return await get_endpoint(conn, endpoint_id, rt.clock())

    @patch("/{endpoint_id:str}", summary="Change a webhook endpoint (url, events, enabled)", responses=_WRITE)
    async def change(
        self, conn: Conn, rt: Rt, endpoint_id: EndpointId, data: JSONBody[WebhookPatch]
    ) -> Endpoint:
        """Change the given fields; ``{"enabled": true}`` resumes an endpoint disabled by a 410."""
        changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not _UNSET}
        return await update_webhook(conn, rt.settings, endpoint_id, changes, rt.clock())

    @delete(
        "/{endpoint_id:str}",
        summary="Delete a webhook endpoint",
        status_code=204,
        responses=problem_responses(400, 404, 409),
    )
    async def remove(self, conn: Conn, endpoint_id: EndpointId) -> None:
        """Delete it with its pending deliveries and its delivery log."""
        await delete_webhook(conn, endpoint_id)

    @post(
        "/{endpoint_id:str}/rotate",
        summary="Rotate the signing secret",
        status_code=200,
        responses=_WRITE,
    )
    async def rotate(
        self, conn: Conn, rt: Rt, endpoint_id: EndpointId, data: JSONBody[RotateBody]
    ) -> EndpointSecret:
        """A new secret signs from now on; until ``previous_expire_at`` the previous one signs too
        (both signatures in ``webhook-signature``), so the receiver can switch when it likes."""
        return await rotate_secret(
            conn, rt.settings, endpoint_id, keep_previous_hours=data.keep_previous_hours, now=rt.clock()
        )

    @get("/{endpoint_id:str}/deliveries", summary="An endpoint's deliveries, newest first", responses=_READ)
    async def list_deliveries(
        self,
        conn: Conn,
        endpoint_id: EndpointId,
        status: Annotated[Status | None, QueryParameter(description="only deliveries in this state")] = None,
        before: Annotated[
            int | None, QueryParameter(ge=1, le=2**62, description="only events before this sequence number")
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> list[Delivery]:
        """Each event sent (or to send) to the endpoint: status, attempts, next attempt, last answer."""
        return await deliveries(conn, endpoint_id, status=status, before=before, limit=limit)

    @get("/{endpoint_id:str}/attempts", summary="An endpoint's delivery log, newest first", responses=_READ)
    async def list_attempts(
        self,
        conn: Conn,
        endpoint_id: EndpointId,
        event: Annotated[
            int | None, QueryParameter(ge=1, le=2**62, description="one event's attempts")
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> list[Attempt]:
        """Every attempt: when, the answer's status, how long it took, an excerpt of its body."""
        return await attempts(conn, endpoint_id, event=event, limit=limit)

    @post(
        "/{endpoint_id:str}/redeliver",
        summary="Send one event or a range again",
        status_code=202,
        responses=_WRITE,
    )
    async def redeliver(
        self, conn: Conn, rt: Rt, endpoint_id: EndpointId, data: JSONBody[RedeliverBody]
    ) -> Redelivered:
        """Queue the events again from attempt 1, in order per lead, with their ``webhook-id``
        unchanged (receivers that already have one ignore it)."""
        if data.event is not None:
            if data.from_event is not None or data.to_event is not None:
                raise InvalidWebhook("event", "give event, or from_event and to_event, not both")
            first = last = data.event
        elif data.from_event is not None and data.to_event is not None:
            first, last = data.from_event, data.to_event
        else:
            raise InvalidWebhook("event", "give event, or from_event and to_event")
        seqs = await redeliver(conn, endpoint_id, first, last, rt.clock())
        return Redelivered(endpoint=endpoint_id, events=seqs)
