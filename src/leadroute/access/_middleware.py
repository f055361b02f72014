"""Who may call a ``/v1`` route, and from where: one ASGI middleware, run after routing.

For a ``/v1`` request, in this order:

1. A CORS preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) carries
   no key, so it is answered 204 with CORS headers when some live key lists the origin, and 403
   (no CORS headers: the browser stops) otherwise.
2. ``Authorization: Bearer <key>`` must name a live key: else 401 with ``WWW-Authenticate``.
3. The key must hold the route's scope (:data:`leadroute.access.ROUTE_SCOPES`; ``admin`` holds
   all): else 403. A route missing from the table is refused to every key.
4. A request with an ``Origin`` (a browser) must come from one of the key's origins (or the
   service's own): else 403. Allowed ones get ``Access-Control-Allow-Origin`` on the response;
   never ``Allow-Credentials``: ``/v1`` reads no cookies (the console's session cookie is
   for ``/console`` only).
5. A body sent to a JSON route must say ``application/json``: else 415 (a form post or a
   ``text/plain`` fetch is not a lead). A body without ``Content-Type`` is parsed as JSON.
   The form route takes forms only (``FORM_BODIES``), and its key may come as ``?key=``.

The inbound routes vendors call (``SIGNED_ROUTES``: HubSpot, Salesforce, Standard Webhooks)
skip all of this: they carry a signature instead of a key, checked by their handlers.

All of it happens before the route's handler runs, so a wrong key learns nothing about what
exists (an unknown lead id is a 401 or 403 like any other). The answer's actor (``key:<id>``,
plus ``X-Actor`` when sent) is put in the scope's ``user`` for :func:`provide_actor`.
Responses everywhere get the headers of :func:`security_headers`.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from litestar.datastructures import Headers, MutableScopeHeaders
from litestar.enums import ScopeType

from leadroute.access._scopes import (
    FORM_BODIES,
    NON_JSON_BODIES,
    QUERY_KEY_ROUTES,
    SIGNED_ROUTES,
    grants,
    required_scope,
)
from leadroute.errors import Forbidden, NotAuthenticated, UnsupportedMediaType

if TYPE_CHECKING:
    from litestar import Request
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

    from leadroute.access._cache import KeyCache, Principal

__all__ = ["AccessMiddleware", "actor_of", "provide_actor", "provide_x_actor", "security_headers"]

log = logging.getLogger(__name__)

ALLOWED_HEADERS = "Authorization, Content-Type, Idempotency-Key, X-Actor"
PREFLIGHT_MAX_AGE = "600"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_PERSON = re.compile(r"[^\w@.+\- ]+")
PERSON_MAX = 64
"""``X-Actor`` is kept to this many characters of letters, digits, ``@ . + - _`` and spaces."""


def actor_of(key_id: str, person: str | None) -> str:
    """``key:<id>``, with the ``X-Actor`` person when given: ``key:ab12cd34 (jane@corp.example)``.

    The person is free text from the client, so it is cut down to harmless characters: it ends
    up in the event log, the audit trail and the explain text.
    """
    cleaned = " ".join(_PERSON.sub("", person or "").split())[:PERSON_MAX].strip()
    return f"key:{key_id} ({cleaned})" if cleaned else f"key:{key_id}"


def provide_actor(request: Request[Any, Any, Any]) -> str:
    """The dependency handlers take as ``actor``: who is making this change."""
    actor: str = request.scope.get("user") or "api"  # the middleware sets it
    return actor


def provide_x_actor(request: Request[Any, Any, Any]) -> str:
    """:func:`provide_actor` under the parameter name the rulesets handlers use (``x_actor``)."""
    return provide_actor(request)


def _is_json(content_type: str) -> bool:
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _is_form(content_type: str) -> bool:
    media = content_type.partition(";")[0].strip().lower()
    return media in {"application/x-www-form-urlencoded", "multipart/form-data"}


def _query_key(scope: Scope) -> str | None:
    """``Bearer <key>`` from a ``key`` query parameter (form routes only: an HTML form cannot set headers)."""
    for name, value in parse_qsl(scope.get("query_string", b"").decode("latin-1")):
        if name == "key" and value:
            return f"Bearer {value}"
    return None


def _check_body_type(method: str, template: str, headers: Headers) -> None:
    """415 unless the body's type is the route's: a form on the form route, JSON elsewhere."""
    if (method, template) in FORM_BODIES:
        form_type = headers.get("content-type") or ""
        if not _is_form(form_type):
            raise UnsupportedMediaType(
                form_type or "(none)",
                expected="application/x-www-form-urlencoded or multipart/form-data",
            )
    elif method in _BODY_METHODS and (method, template) not in NON_JSON_BODIES:
        content_type = headers.get("content-type")
        if content_type is not None and not _is_json(content_type):
            raise UnsupportedMediaType(content_type)


def _own_origin(scope: Scope, headers: Headers) -> str:
    return f"{scope.get('scheme', 'http')}://{headers.get('host', '')}"


class AccessMiddleware:
    """The access checks of the module docstring, for every route under ``/v1``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        headers = Headers.from_scope(scope)
        method: str = scope["method"]
        origin = headers.get("origin")
        runtime = scope["litestar_app"].state.runtime
        keys: KeyCache = runtime.keys
        if method == "OPTIONS" and origin is not None and "access-control-request-method" in headers:
            await self._preflight(keys, runtime.db, origin, send)
            return
        template: str = scope.get("path_template", "")
        if (method, template) in SIGNED_ROUTES:  # a vendor's signed call: the handler checks it
            await self.app(scope, receive, send)
            return
        authorization = headers.get("authorization")
        if not authorization and (method, template) in QUERY_KEY_ROUTES:
            authorization = _query_key(scope)
        principal = await self._authenticate(keys, runtime.db, authorization)
        if method != "OPTIONS":
            needed = required_scope(method, template)
            if needed is None:
                log.error("%s %s has no scope in ROUTE_SCOPES: refused to every key", method, template)
                raise Forbidden("this route is not open to any key")
            if not grants(principal.scopes, needed):
                raise Forbidden(f"this key does not have the {needed!r} scope", scope=needed)
        cors_origin = None
        if origin is not None and origin != _own_origin(scope, headers):
            if origin not in principal.origins:
                raise Forbidden("this key may not be used from this origin")
            cors_origin = origin
        _check_body_type(method, template, headers)
        scope["auth"] = principal
        scope["user"] = actor_of(principal.key_id, headers.get("x-actor"))
        if cors_origin is None:
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableScopeHeaders.from_message(message)
                out["Access-Control-Allow-Origin"] = cors_origin
                out.add("Vary", "Origin")
            await send(message)

        await self.app(scope, receive, send_with_cors)

    @staticmethod
    async def _authenticate(keys: KeyCache, db: Any, authorization: str | None) -> Principal:
        if not authorization:
            raise NotAuthenticated("send an API key: Authorization: Bearer <key>", error=None)
        kind, _, token = authorization.partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            raise NotAuthenticated("send an API key: Authorization: Bearer <key>", error="invalid_request")
        principal = await keys.verify(db, token.strip())
        if principal is None:
            raise NotAuthenticated("the API key is not valid (unknown, revoked or rotated)")
        return principal

    @staticmethod
    async def _preflight(keys: KeyCache, db: Any, origin: str, send: Send) -> None:
        if not await keys.origin_allowed(db, origin):
            raise Forbidden("no key may be used from this origin")
        await send(
            {
                "type": "http.response.start",
                "status": 204,
                "headers": [
                    (b"access-control-allow-origin", origin.encode("latin-1")),
                    (b"access-control-allow-methods", b"GET, POST, PUT, PATCH, DELETE"),
                    (b"access-control-allow-headers", ALLOWED_HEADERS.encode()),
                    (b"access-control-max-age", PREFLIGHT_MAX_AGE.encode()),
                    (b"vary", b"Origin"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"", "more_body": False})


API_CSP = "default-src 'none'; frame-ancestors 'none'"
"""API answers are data, never pages: nothing may load, run or frame them."""

CONSOLE_CSP = (
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
"""The console's pages load their own stylesheet, script and images, post forms only to
themselves, and nothing else (no inline script or style, nothing from another site)."""


def _security_set(path: str) -> tuple[frozenset[bytes], list[tuple[bytes, bytes]]]:
    """The names and the security headers of a response to ``path`` (see :func:`security_headers`)."""
    headers = {
        "x-content-type-options": "nosniff",
        "x-frame-options": "DENY",
        "referrer-policy": "no-referrer",
    }
    if path == "/console" or path.startswith("/console/"):
        headers["content-security-policy"] = CONSOLE_CSP
        # a form post then carries its Origin (with no-referrer, Chromium sends "Origin: null"),
        # which the console checks; nothing is sent to another site
        headers["referrer-policy"] = "same-origin"
        if not path.startswith("/console/static/"):
            headers["cache-control"] = "no-store"
    elif not path.startswith("/schema"):
        headers["content-security-policy"] = API_CSP
    if path.startswith("/v1/"):
        headers["cache-control"] = "no-store"
    encoded = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
    return frozenset(name for name, _ in encoded), encoded


# One path of each kind: the sets are built once, and a response only picks its own.
_API = _security_set("/v1/")
_CONSOLE_PAGE = _security_set("/console")
_CONSOLE_STATIC = _security_set("/console/static/")
_SCHEMA = _security_set("/schema")
_OTHER = _security_set("/")


async def security_headers(message: Message, scope: Scope) -> None:
    """The app's ``before_send`` hook: security headers on every response.

    ``/schema`` keeps no CSP (its documentation pages load scripts); ``/console`` pages get
    :data:`CONSOLE_CSP` and ``Referrer-Policy: same-origin``; ``/v1`` answers and console pages
    are never cached (they hold personal data and change; the console's static assets may be).
    They replace any the response set itself. The set of each kind of path is built once
    (:func:`_security_set`) and added in one pass over the response's headers: this runs on every
    response, and Litestar's ``MutableScopeHeaders`` scans them for each header set.
    """
    if message["type"] != "http.response.start":
        return
    path: str = scope.get("path", "")
    if path.startswith("/v1/"):
        ours = _API
    elif path == "/console" or path.startswith("/console/"):
        ours = _CONSOLE_STATIC if path.startswith("/console/static/") else _CONSOLE_PAGE
    else:
        ours = _SCHEMA if path.startswith("/schema") else _OTHER
    names, headers = ours
    message["headers"] = [h for h in message["headers"] if h[0].lower() not in names] + headers
