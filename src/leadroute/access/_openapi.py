"""What access adds to ``/schema/openapi.json``: the bearer scheme, each ``/v1`` operation's
scope as its security requirement, and its 401/403 (and 415 for JSON bodies) problems.

Set on the app's route handlers after the app is built (Litestar generates the document on the
first request for it), from :data:`ROUTE_SCOPES`, so no handler's decorator repeats it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from litestar.openapi.spec import Components, SecurityScheme

from leadroute.access._scopes import NON_JSON_BODIES, ROUTE_SCOPES

if TYPE_CHECKING:
    from litestar import Litestar

    from leadroute.api.problems import ProblemResponses

__all__ = ["BEARER", "COMPONENTS", "document_access"]

BEARER = "apiKey"
COMPONENTS = Components(
    security_schemes={
        BEARER: SecurityScheme(
            type="http",
            scheme="bearer",
            bearer_format="lr_live_<id>_<secret>",
            description="An API key (`leadroute keys create`); each operation names the scope it needs.",
        )
    }
)
"""The ``components`` the app's OpenAPIConfig starts from."""


def document_access(app: Litestar, problems: ProblemResponses) -> None:
    """Give every ``/v1`` operation its security requirement and access problems."""
    for route in app.routes:
        if not route.path_format.startswith("/v1/"):
            continue
        for handler in getattr(route, "route_handlers", []):
            for method in handler.http_methods:
                scope = ROUTE_SCOPES.get((method, route.path_format))
                if scope is None:
                    continue
                statuses = [401, 403]
                if method in {"POST", "PUT", "PATCH"} and (method, route.path_format) not in NON_JSON_BODIES:
                    statuses.append(415)
                handler.security = [{BEARER: [scope]}]
                handler.responses = problems(*statuses) | dict(handler.responses or {})
