"""Inbound routes: leads as HubSpot, Salesforce, Standard Webhooks senders and HTML forms send them.

Each body is turned into a lead by a mapping file (``leadroute.inbound``) and taken by the
ordinary intake. The vendor routes authenticate by signature (``access.SIGNED_ROUTES``), the form
route by a ``leads:write`` key. docs/intake.md ("Inbound routes and mapping files").
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect

from leadroute.api.deps import IdempotencyKey
from leadroute.api.problems import problem_responses
from leadroute.errors import MalformedBody, NotFound
from leadroute.inbound import Inbound
from leadroute.inbound._hubspot import handle_events
from leadroute.inbound._intake import ItemResult, submit_mapped
from leadroute.inbound._salesforce import (
    ACK,
    check_org,
    handle_outbound_message,
    handle_records,
    parse_outbound_message,
)
from leadroute.inbound._signatures import BadSignature, verify_hubspot, verify_leadroute, verify_standard
from leadroute.models import Decision
from leadroute.runtime import Runtime
from leadroute.structs import Struct
from leadroute.workflow.intake import IntakeResult

__all__ = ["InboundAnswer", "InboundController"]

MAX_BATCH_BYTES = 1024 * 1024
"""A vendor batch (100 HubSpot events, 100 Salesforce notifications) stays well under 1 MB."""
MAX_FORM_BYTES = 64 * 1024
"""A form is a lead: 64 KB, like ``POST /v1/leads`` (files in a multipart form are not kept)."""
_XML = ("text/xml", "application/xml", "application/soap+xml")
_TRUE = frozenset({"1", "true", "yes", "on"})


class InboundAnswer(Struct, kw_only=True):
    """What became of each item of a vendor's request, in order."""

    results: list[ItemResult]


def _inbound(rt: Runtime) -> Inbound:
    assert rt.inbound is not None  # set by the app's lifespan
    return rt.inbound


def _decided(result: IntakeResult) -> Response[Decision]:
    return Response(result.decision, status_code=result.status)


def _form_values(form: Any) -> dict[str, Any]:
    """A form's fields: one value as a string, a repeated field (checkboxes) as a list; files dropped."""
    values: dict[str, Any] = {}
    for name in form:
        texts = [v for v in form.getall(name) if not isinstance(v, UploadFile)]
        if texts:
            values[name] = texts[0] if len(texts) == 1 else texts
    return values


_VENDOR = problem_responses(400, 401, 404, 413, 503)


class InboundController(Controller):
    path = "/v1/inbound"
    tags = ["inbound"]  # noqa: RUF012  (Litestar reads it as a class attribute)

    @post(
        "/hubspot",
        status_code=200,
        request_max_body_size=MAX_BATCH_BYTES,
        summary="HubSpot webhook events (contact creation, property change), signature v3",
        security=[],
        responses=_VENDOR,
    )
    async def hubspot(self, request: Request[Any, Any, Any], rt: NamedDependency[Runtime]) -> InboundAnswer:
        """Each contact event of the batch becomes a lead intake (the contact read from the CRM API)."""
        body = await request.body()  # read before anything can refuse: the client is still sending it
        secret = rt.settings.hubspot_client_secret
        if secret is None:
            raise NotFound(
                "route", "hubspot", detail="HubSpot webhooks are off: set LEADROUTE_HUBSPOT_CLIENT_SECRET"
            )
        query = request.scope.get("query_string", b"").decode("latin-1")
        # the path as sent (raw_path: still percent-encoded); some ASGI clients leave the query on it
        path = request.scope["raw_path"].partition(b"?")[0].decode("latin-1")
        uri = rt.settings.public_url.rstrip("/") + path
        verify_hubspot(
            secret,
            method=request.method,
            uri=uri + (f"?{query}" if query else ""),
            body=body,
            signature=request.headers.get("x-hubspot-signature-v3"),
            timestamp=request.headers.get("x-hubspot-request-timestamp"),
            now=time.time(),
        )
        inbound = _inbound(rt)
        results = await handle_events(
            rt, inbound.client, inbound.mapping("hubspot"), body, actor="inbound:hubspot"
        )
        return InboundAnswer(results=results)

    @post(
        "/salesforce",
        status_code=200,
        request_max_body_size=MAX_BATCH_BYTES,
        summary="Salesforce Outbound Messages (SOAP) and Flow/Apex callouts (signed JSON)",
        security=[],
        responses={
            200: ResponseSpec(
                InboundAnswer, description="A callout's results (an Outbound Message gets the SOAP Ack)"
            ),
            **_VENDOR,
        },
    )
    async def salesforce(
        self,
        request: Request[Any, Any, Any],
        rt: NamedDependency[Runtime],
        token: Annotated[str | None, QueryParameter(required=False, max_length=200)] = None,
    ) -> Response[Any]:
        """An Outbound Message is answered with ``<Ack>true</Ack>``; a callout with each record's result."""
        settings = rt.settings
        body = await request.body()
        mapping = _inbound(rt).mapping("salesforce")
        media = (request.headers.get("content-type") or "").partition(";")[0].strip().lower()
        if media in _XML:
            message = parse_outbound_message(body)
            check_org(settings.salesforce_org_id, settings.salesforce_outbound_token, message, token)
            await handle_outbound_message(rt, mapping, message, actor="inbound:salesforce")
            return Response(ACK, status_code=200, media_type="text/xml; charset=utf-8")
        if settings.salesforce_callout_secret is None:
            raise BadSignature("Salesforce callouts are off: set LEADROUTE_SALESFORCE_CALLOUT_SECRET")
        verify_leadroute(
            settings.salesforce_callout_secret,
            body,
            request.headers.get("x-leadroute-signature"),
            request.headers.get("x-leadroute-timestamp"),
            now=time.time(),
        )
        results = await handle_records(rt, mapping, body, actor="inbound:salesforce")
        return Response(InboundAnswer(results=results), status_code=200)

    @post(
        "/webhook",
        status_code=201,
        request_max_body_size=MAX_FORM_BYTES,
        summary="One lead from any source signing with Standard Webhooks",
        security=[],
        responses={
            200: ResponseSpec(Decision, description="A retry (same webhook-id): the first decision"),
            202: ResponseSpec(Decision, description="Stored and scored; routing waits for Redis"),
            **problem_responses(400, 401, 404, 413, 422),
        },
    )
    async def webhook(
        self,
        request: Request[Any, Any, Any],
        rt: NamedDependency[Runtime],
        source: Annotated[str, QueryParameter(max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")],
    ) -> Response[Decision]:
        """The body, mapped by ``mappings/<source>.yaml`` (else ``webhook.yaml``), is one lead; its
        ``webhook-id`` is its idempotency key."""
        body = await request.body()
        secret = rt.settings.webhook_sources().get(source)
        if secret is None:
            raise BadSignature(f"no Standard Webhooks secret is configured for source {source!r}")
        verify_standard(secret, body, dict(request.headers))
        try:
            payload = msgspec.json.decode(body)
        except msgspec.DecodeError:
            raise MalformedBody("body must be a JSON object") from None
        if not isinstance(payload, dict):
            raise MalformedBody("body must be a JSON object")
        if isinstance(payload.get("data"), dict) and "type" in payload:  # the Standard Webhooks envelope
            payload = payload["data"]
        inbound = _inbound(rt)
        mapping = inbound.mappings.get(source) or inbound.mapping("webhook")
        key = f"webhook:{source}:{request.headers['webhook-id']}"
        result = await submit_mapped(
            rt, mapping.apply(payload), key=key, vendor_key=True, actor=f"inbound:webhook:{source}"
        )
        return _decided(result)

    @post(
        "/form/{mapping:str}",
        status_code=201,
        request_max_body_size=MAX_FORM_BYTES,
        summary="A lead from an HTML form (urlencoded or multipart), mapped by a form mapping file",
        responses={
            200: ResponseSpec(Decision, description="A retry with the same Idempotency-Key"),
            202: ResponseSpec(Decision, description="Stored and scored; routing waits for Redis"),
            303: ResponseSpec(None, description="Taken; the form asked for the mapping's thank-you page"),
            **problem_responses(400, 404, 413, 422),
        },
    )
    async def form(
        self,
        request: Request[Any, Any, Any],
        rt: NamedDependency[Runtime],
        actor: NamedDependency[str],
        mapping: FromPath[str],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[Any]:
        """The form's fields, mapped by ``mappings/<mapping>.yaml``; with ``_redirect=1`` and a
        ``thank_you_url`` in the mapping, the answer is a 303 to it instead of the decision."""
        chosen = _inbound(rt).mapping(mapping)
        values = _form_values(await request.form())
        redirect = str(values.pop("_redirect", "")).strip().lower() in _TRUE
        result = await submit_mapped(
            rt, chosen.apply(values), key=idempotency_key, vendor_key=False, actor=actor
        )
        if redirect and chosen.file.thank_you_url is not None:
            return Redirect(chosen.file.thank_you_url, status_code=303)
        return _decided(result)
