"""Signing in to the console with an API key, signing out, and the console's front door."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.response import Redirect, Template

from leadroute.console._pages import NAV, page
from leadroute.console._session import (
    Viewer,
    session_cookie,
    sign_in_cookie,
    signed_out_cookie,
)
from leadroute.runtime import Runtime

__all__ = ["front", "sign_in", "sign_in_form", "sign_out"]


def _safe_next(target: str) -> str:
    """Where to go after signing in: a console path only (never another site)."""
    if target.startswith("/console") and not target.startswith("//") and "\\" not in target:
        return target
    return "/console"


def _form(
    request: Request[Any, Any, Any], *, status_code: int = 200, error: str | None = None, next_: str = ""
) -> Template:
    token, cookie = sign_in_cookie(request)
    template = page(
        "signin.html", None, status_code=status_code, csrf=token, error=error, next=_safe_next(next_)
    )
    if cookie is not None:
        template.cookies.append(cookie)
    return template


@get("/sign-in", name="console-sign-in", include_in_schema=False)
async def sign_in_form(request: Request[Any, Any, Any], next: FromQuery[str] = "") -> Template:
    """The sign-in form: paste an API key."""
    return _form(request, next_=next)


@post("/sign-in", include_in_schema=False, status_code=303)
async def sign_in(request: Request[Any, Any, Any], rt: NamedDependency[Runtime]) -> Template | Redirect:
    """Check the key (as ``Authorization: Bearer`` is checked) and keep it in the session cookie."""
    form = await request.form()
    key, target = str(form.get("key") or "").strip(), str(form.get("next") or "")
    principal = await rt.keys.verify(rt.db, key) if key else None
    if principal is None:
        return _form(
            request,
            status_code=401,
            error="That key is not valid (unknown, revoked or rotated). Paste the whole key: lr_live_…",
            next_=target,
        )
    redirect = Redirect(_safe_next(target), status_code=303)
    redirect.cookies.append(session_cookie(request, key))
    return redirect


@post("/sign-out", include_in_schema=False, status_code=303)
async def sign_out(request: Request[Any, Any, Any], viewer: NamedDependency[Viewer]) -> Redirect:
    """Forget the key in this browser."""
    redirect = Redirect("/console/sign-in", status_code=303)
    redirect.cookies.append(signed_out_cookie(request))
    return redirect


@get("/", include_in_schema=False)
async def front(viewer: NamedDependency[Viewer]) -> Redirect | Template:
    """The first page the key may see, or a page saying what its scopes allow."""
    for item in NAV:
        if viewer.may(item.scope):
            return Redirect(item.href, status_code=303)
    return page("home.html", viewer)
