"""``/schema``: the OpenAPI document and the pages that render it, every asset served by leadroute.

``/schema/openapi.json`` (and ``.yaml``) is the API's contract; ``/schema/swagger`` and
``/schema/redoc`` render it with Swagger UI and ReDoc, whose scripts and styles come from
``/schema/static`` (copied into the package, see ``api/static/README.md``), never from a CDN: the
pages work on a network without internet access.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import RedocRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components
from litestar.router import Router
from litestar.static_files import create_static_files_router

__all__ = ["STATIC_PATH", "openapi_config", "static_router"]

STATIC_PATH: Final = "/schema/static"
_FILES: Final = Path(__file__).parent / "static"


def openapi_config(*, components: Components | list[Components] | None = None) -> OpenAPIConfig:
    """The OpenAPI document at ``/schema``, rendered by Swagger UI (the default page) and ReDoc;
    ``components``: shared parts of the document (the bearer security scheme)."""
    return OpenAPIConfig(
        title="leadroute",
        components=components or [],
        version="1",
        path="/schema",
        description=(
            "Lead intake, scoring, routing and the workflow around it. Errors are "
            "application/problem+json (RFC 9457). /schema/openapi.json is the document; "
            "/schema/swagger and /schema/redoc render it."
        ),
        render_plugins=[
            SwaggerRenderPlugin(
                path="/swagger",
                js_url=f"{STATIC_PATH}/swagger-ui-bundle.js",
                css_url=f"{STATIC_PATH}/swagger-ui.css",
                standalone_preset_js_url=f"{STATIC_PATH}/swagger-ui-standalone-preset.js",
                favicon="",
            ),
            RedocRenderPlugin(
                path="/redoc", js_url=f"{STATIC_PATH}/redoc.standalone.js", google_fonts=False, favicon=""
            ),
        ],
    )


def static_router() -> Router:
    """The Swagger UI and ReDoc assets, from the package (left out of the OpenAPI document)."""
    return create_static_files_router(
        path=STATIC_PATH, directories=[_FILES], include_in_schema=False, name="docs-assets"
    )
