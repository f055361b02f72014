"""Health endpoints and the OpenAPI document."""

from __future__ import annotations

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
