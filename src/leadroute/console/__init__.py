"""The sales-ops console at ``/console``: server-rendered pages over the service's own functions.

Layout (one module per area; an area is a Controller or a few handlers, each a call into the
functions the JSON API's controllers call)::

    _session.py   sign-in cookie, the Viewer, the guard (scope per page, CSRF)
    _pages.py     templates, navigation (NAV), the error page
    _timeline.py  a lead's events and deliveries said in sentences (pure)
    auth.py       /console, /console/sign-in, /console/sign-out
    leads.py      /console/leads...
    rules.py      /console/rules...: versions, diff, drafts, playground, replay, activate
    routing.py    /console/routing...: pools, owners, pause and resume
    reports.py    /console/dashboard, /console/calibration (leadroute.reports, charts inline)
    templates/    base.html (the frame) and one folder per area
    static/       console.css, console.js: every asset, served from /console/static

Every page's scope is a row of :data:`leadroute.access.CONSOLE_SCOPES`. Pages read fine without
JavaScript. See docs/console.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from litestar import Router
from litestar.di import Provide
from litestar.static_files import create_static_files_router

from leadroute.api.simulate import MAX_DRY_RUN_BYTES
from leadroute.console._pages import NAV, NavItem, console_error, is_console, page, template_config
from leadroute.console._session import Viewer, check_access, provide_viewer
from leadroute.console.auth import front, sign_in, sign_in_form, sign_out
from leadroute.console.leads import LeadPages
from leadroute.console.reports import ReportPages
from leadroute.console.routing import RoutingPages
from leadroute.console.rules import RulePages

__all__ = [
    "NAV",
    "NavItem",
    "Viewer",
    "console_error",
    "console_router",
    "is_console",
    "page",
    "static_router",
    "template_config",
]

STATIC: Final = Path(__file__).parent / "static"


def console_router() -> Router:
    """Every console page under ``/console``, behind the guard (errors become pages in the app's
    exception handler, :func:`leadroute.app.answer_error`, by path)."""
    return Router(
        path="/console",
        route_handlers=[
            front,
            sign_in_form,
            sign_in,
            sign_out,
            LeadPages,
            RulePages,
            RoutingPages,
            ReportPages,
        ],
        guards=[check_access],
        dependencies={"viewer": Provide(provide_viewer, sync_to_thread=False)},
        include_in_schema=False,
        # a form is at most a rule file (1 MB) and a lead, as the API's dry runs take
        request_max_body_size=MAX_DRY_RUN_BYTES,
    )


def static_router() -> Router:
    """The console's stylesheet and script, from the package (no CDN)."""
    return create_static_files_router(
        path="/console/static", directories=[STATIC], include_in_schema=False, name="console-assets"
    )
