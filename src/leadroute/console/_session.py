"""Who is signed in to the console, what their key may do, and the CSRF token of their forms.

Signing in is pasting an API key. The key is kept in one cookie, ``leadroute_console``:
``HttpOnly`` (no script can read it), ``SameSite=Strict`` (a request from another site carries
it not at all), ``Path=/console``, and ``Secure`` when the console is served over https. Every
request checks it again with :meth:`leadroute.access.KeyCache.verify`, the code path and cache of
``Authorization: Bearer``, so a revoked key stops working in the console as it does in the API
(within ``LEADROUTE_KEY_CACHE_SECONDS``), and the key's scopes decide each page through
:data:`leadroute.access.CONSOLE_SCOPES` and :func:`leadroute.access.grants`.

CSRF: every POST form carries ``_csrf``. Signed in, it is an HMAC of the key (only the browser
holding the cookie and the server can make it; the same on every instance and worker, with no
shared secret to configure). The sign-in form, before there is a key, uses a double-submit token:
a random value in a ``SameSite=Strict`` cookie that the form must repeat (so another site cannot
sign a browser in with the attacker's key). A POST whose ``Origin`` is another site is refused too.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any, Final
from urllib.parse import urlsplit

import msgspec
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.handlers import BaseRouteHandler

from leadroute.access import CONSOLE_SCOPES, Scope, actor_of, grants
from leadroute.errors import ClientError
from leadroute.runtime import Runtime

__all__ = [
    "COOKIE",
    "SIGN_IN_COOKIE",
    "BadCsrf",
    "MissingScope",
    "NotSignedIn",
    "Viewer",
    "check_access",
    "csrf_of",
    "provide_viewer",
    "session_cookie",
    "sign_in_cookie",
    "signed_out_cookie",
]

COOKIE: Final = "leadroute_console"
SIGN_IN_COOKIE: Final = "leadroute_console_signin"
PATH: Final = "/console"
CSRF_FIELD: Final = "_csrf"


class NotSignedIn(ClientError):
    status = 401
    kind = "unauthenticated"
    title = "Sign in with an API key"


class MissingScope(ClientError):
    status = 403
    kind = "forbidden"
    title = "Your key may not do this"

    def __init__(self, scope: str) -> None:
        super().__init__(f"this page needs a key with the {scope!r} scope")
        self.scope = scope


class BadCsrf(ClientError):
    status = 403
    kind = "forbidden"
    title = "The form has expired"

    def __init__(self) -> None:
        super().__init__(
            "the form was not sent from this console (or your session changed): "
            "reload the page and send it again"
        )


class Viewer(msgspec.Struct, frozen=True, kw_only=True):
    """The signed-in key: its id, scopes, the actor its changes are recorded as, its CSRF token."""

    key_id: str
    scopes: frozenset[str]
    csrf: str

    @property
    def actor(self) -> str:
        """Who a change made in the console is recorded as: ``key:<id> (console)``."""
        return actor_of(self.key_id, "console")

    def may(self, scope: Scope) -> bool:
        """Whether this key holds ``scope`` (``admin`` holds all)."""
        return grants(self.scopes, scope)


def csrf_of(key: str) -> str:
    """The CSRF token of a signed-in key's forms."""
    return hmac.new(key.encode(), b"leadroute-console-csrf", hashlib.sha256).hexdigest()


def _secure(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    return connection.url.scheme == "https"


def session_cookie(connection: ASGIConnection[Any, Any, Any, Any], key: str) -> Cookie:
    """The cookie that keeps ``key`` for the console (a browser session: gone when it closes)."""
    return Cookie(
        key=COOKIE, value=key, path=PATH, httponly=True, samesite="strict", secure=_secure(connection)
    )


def signed_out_cookie(connection: ASGIConnection[Any, Any, Any, Any]) -> Cookie:
    """The cookie that removes the session."""
    return Cookie(
        key=COOKIE,
        value="",
        path=PATH,
        httponly=True,
        samesite="strict",
        secure=_secure(connection),
        max_age=0,
    )


def sign_in_cookie(connection: ASGIConnection[Any, Any, Any, Any]) -> tuple[str, Cookie | None]:
    """The sign-in form's token, and the cookie to set when the browser has none yet."""
    token = connection.cookies.get(SIGN_IN_COOKIE)
    if token:
        return token, None
    token = secrets.token_urlsafe(24)
    cookie = Cookie(
        key=SIGN_IN_COOKIE,
        value=token,
        path=PATH,
        httponly=True,
        samesite="strict",
        secure=_secure(connection),
    )
    return token, cookie


async def _viewer(connection: ASGIConnection[Any, Any, Any, Any]) -> Viewer | None:
    key = connection.cookies.get(COOKIE)
    if not key:
        return None
    rt: Runtime = connection.app.state.runtime
    principal = await rt.keys.verify(rt.db, key)
    if principal is None:
        return None
    return Viewer(key_id=principal.key_id, scopes=principal.scopes, csrf=csrf_of(key))


def _same_site(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """No ``Origin`` (an old browser, a script) or one naming this console's host; ``null`` or
    another host is refused (the console's ``Referrer-Policy: same-origin`` makes browsers send
    the real one). The scheme is not compared: behind a proxy that ends TLS, the browser's
    ``https`` origin reaches us as plain http."""
    origin = connection.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == connection.headers.get("host", "")


async def _form_token(request: Request[Any, Any, Any]) -> str:
    form = await request.form()
    token = form.get(CSRF_FIELD)
    return token if isinstance(token, str) else ""


async def check_access(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """The console router's guard: the page's row of :data:`CONSOLE_SCOPES`, the key, the CSRF token.

    Puts the :class:`Viewer` (or None on an open page without a session) in ``connection.state``.
    """
    method = str(connection.scope.get("method", "GET"))
    needed = CONSOLE_SCOPES.get((method, connection.scope.get("path_template", "")))
    if needed is None:
        raise MissingScope("none: this page is not open to any key")
    viewer = await _viewer(connection)
    connection.state.viewer = viewer
    form = connection if method == "POST" and isinstance(connection, Request) else None
    if form is not None and not _same_site(form):
        raise BadCsrf()
    if needed == "open":
        if form is not None:
            expected = form.cookies.get(SIGN_IN_COOKIE) or ""
            if not expected or not hmac.compare_digest(await _form_token(form), expected):
                raise BadCsrf()
        return
    if viewer is None:
        raise NotSignedIn("sign in with an API key to use the console")
    if form is not None and not hmac.compare_digest(await _form_token(form), viewer.csrf):
        raise BadCsrf()
    if needed != "signed-in" and not viewer.may(needed):
        raise MissingScope(needed)


def provide_viewer(request: Request[Any, Any, Any]) -> Viewer:
    """The ``viewer`` dependency: the signed-in key the guard checked."""
    viewer: Viewer | None = request.state.get("viewer")
    if viewer is None:
        raise NotSignedIn("sign in with an API key to use the console")
    return viewer
