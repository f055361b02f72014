"""Health endpoints and the OpenAPI document."""

from __future__ import annotations

import re
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis


class TestHealth:
    """Liveness always answers; readiness reports each dependency."""

    async def test_live(self, client: AsyncTestClient[Litestar]) -> None:
        r = await client.get("/health/live")
        assert (r.status_code, r.json()) == (200, {"status": "ok"})

    async def test_ready_checks_postgres_and_redis(self, client: AsyncTestClient[Litestar]) -> None:
        r = await client.get("/health/ready")
        assert r.status_code == 200
        assert r.json()["checks"] == {"postgres": "ok", "redis": "ok"}

    async def test_ready_is_503_naming_redis_when_it_is_gone(self, client: AsyncTestClient[Litestar]) -> None:
        app = client.app
        assert isinstance(app, Litestar)
        runtime = app.state.runtime
        healthy = runtime.redis
        runtime.redis = Redis(host="127.0.0.1", port=1)  # nothing listens there
        try:
            r = await client.get("/health/ready")
        finally:
            await runtime.redis.aclose()
            runtime.redis = healthy
        assert r.status_code == 503
        assert r.json()["checks"]["postgres"] == "ok"
        assert r.json()["checks"]["redis"].startswith("unavailable")

    async def test_openapi_schema_lists_the_api(self, client: AsyncTestClient[Litestar]) -> None:
        r = await client.get("/schema/openapi.json")
        assert r.status_code == 200
        paths = r.json()["paths"]
        assert {"/v1/leads", "/v1/leads/{lead_id}/explain", "/health/ready"} <= set(paths)


class TestDocsPages:
    """Swagger UI and ReDoc load every asset from the service: no CDN, so they work offline."""

    @pytest.mark.parametrize("page", ["/schema/swagger", "/schema/redoc"])
    async def test_pages_reference_only_local_assets_and_those_are_served(
        self, client: Any, page: str
    ) -> None:
        r = await client.get(page)
        assert r.status_code == 200
        html = r.text
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert assets
        assert all(a.startswith("/schema/") for a in assets), assets
        assert "http://" not in html
        assert "https://" not in html.replace("https://leadroute.dev", "")
        for asset in assets:
            served = await client.get(asset)
            assert served.status_code == 200, asset
            assert len(served.content) > 1000
