"""Rendering: the template engine, the navigation, one helper per answer, and the error page.

Templates live in ``console/templates`` (``base.html`` draws the frame: navigation, who is
signed in, sign out); every page extends it. Jinja autoescapes everything. A page is a
:func:`page`: its template, the :class:`~leadroute.console._session.Viewer`, and its context.
An area adds its pages to :data:`NAV` to appear in the navigation.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import msgspec
from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import Request, Response
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect, Template
from litestar.template import TemplateConfig

from leadroute.access import Scope
from leadroute.api.problems import problem_for
from leadroute.console._session import MissingScope, NotSignedIn, Viewer
from leadroute.outage import OUTAGES, dependency_down

__all__ = ["NAV", "NavItem", "console_error", "is_console", "page", "template_config"]

log = logging.getLogger(__name__)

TEMPLATES: Final = Path(__file__).parent / "templates"


class NavItem(msgspec.Struct, frozen=True):
    """A navigation link: its label, where it goes, and the scope its page needs."""

    label: str
    href: str
    scope: Scope


NAV: Final[list[NavItem]] = [
    NavItem("Leads", "/console/leads", "leads:read"),
    NavItem("Queues", "/console/leads/queued", "leads:read"),
    NavItem("Rules", "/console/rules", "rules:write"),
    NavItem("Playground", "/console/rules/playground", "rules:write"),
    NavItem("Routing", "/console/routing", "routing:admin"),
    NavItem("Dashboard", "/console/dashboard", "leads:read"),
    NavItem("Calibration", "/console/calibration", "rules:write"),
]
"""The navigation, in order; a link whose scope the key lacks is shown greyed, not hidden."""


def _ago(value: datetime | None, now: datetime | None = None) -> str:
    """``3 h 12 min``: how long ago ``value`` was (what a queue's wait reads as)."""
    if value is None:
        return ""
    return _duration((now or datetime.now(value.tzinfo)) - value)


def _duration(delta: timedelta | float | None) -> str:
    if delta is None:
        return ""
    seconds = int(delta.total_seconds() if isinstance(delta, timedelta) else delta)
    if seconds < 60:
        return f"{max(seconds, 0)} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    return f"{hours // 24} d {hours % 24} h"


def _when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(ago=_ago, duration=_duration, when=_when, urlquote=lambda s: quote(str(s), safe=""))
    return env


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    """The app's templates: the console's, rendered by Jinja."""
    return TemplateConfig(engine=JinjaTemplateEngine.from_environment(_environment()))


def page(template: str, viewer: Viewer | None, /, *, status_code: int = 200, **context: Any) -> Template:
    """The page ``template`` for ``viewer``, with the navigation and ``context``."""
    return Template(
        template_name=template,
        context={"viewer": viewer, "nav": NAV, **context},
        status_code=status_code,
        media_type="text/html",
    )


def is_console(path: str) -> bool:
    """Whether ``path`` is the console's (its errors are pages, not problem+json)."""
    return path == "/console" or path.startswith("/console/")


def console_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """The console's exception handler: sign-in for a missing session, else an HTML error page."""
    if isinstance(exc, NotSignedIn):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        nxt = f"?next={quote(target, safe='')}" if request.method == "GET" else ""
        return Redirect(f"/console/sign-in{nxt}", status_code=303)
    problem = problem_for(exc)
    if problem.status == 503 and (down := dependency_down(exc)) is not None:
        OUTAGES.down(down, exc, f"{request.method} {request.url.path}")  # one line per outage, as the API
    elif problem.status >= 500:
        # a form can hold personal data: the route and the exception's type only
        log.exception("console: unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path)
    viewer: Viewer | None = request.state.get("viewer")
    return page(
        "error.html",
        viewer,
        status_code=problem.status,
        problem=problem,
        scope=exc.scope if isinstance(exc, MissingScope) else None,
    )
