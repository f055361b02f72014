"""Reconciling the Redis routing counts with PostgreSQL: drift is found, corrected and measured."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from litestar import Litestar

from leadroute.app import create_app
from leadroute.config import Settings
from leadroute.routing import Router
from leadroute.routing.reconcile import RECONCILE_LOCK, reconcile_once
from leadroute.rules import parse_ruleset
from leadroute.store.redis_client import redis_client
from ruleset_support import rules_text
from support import authed, connection, setup_pool


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
async def app(settings: Settings, clean: None) -> Litestar:
    return create_app(settings, ruleset=parse_ruleset(rules_text(1), path=Path("rules.yaml")))


@pytest.fixture
async def router(settings: Settings) -> AsyncIterator[Router]:
    """A Router on this test's loop over the app's routing state (the app runs on another loop)."""
    redis = redis_client(str(settings.redis_url))
    yield Router(redis, settings.redis_prefix, database_url=settings.database_url)
    await redis.aclose()


class TestReconcile:
    """Redis counts that drifted from PostgreSQL are rewritten from it; matching ones are left."""

    async def test_a_lost_release_and_a_phantom_claim_are_corrected(
        self, app: Litestar, router: Router, settings: Settings, caplog: pytest.LogCaptureFixture
    ) -> None:
        assert settings.database_url is not None
        async with authed(app) as client:
            await setup_pool(client, ["olive", "omar"])
            assert (await client.post("/v1/leads", json={"email": "kim@acme.example"})).status_code == 201
            before = await router.state.read()
            assert sum(before.open.values()) == 1
            # a release lost with a killed worker, and a claim whose transaction never committed
            owner = next(iter(before.open))
            await router.state.redis.hincrby(router.state.keys.open, owner, 1)
            await router.state.redis.hincrby(
                router.state.keys.open, "omar" if owner == "olive" else "olive", 1
            )

            drift = await reconcile_once(router, settings.database_url, now, periodic_seconds=None)
            assert drift is not None
            assert drift.size == 2
            assert (await router.state.read()).open == before.open
            assert "routing counts drifted from PostgreSQL by 2 lead(s)" in caplog.text

            again = await reconcile_once(router, settings.database_url, now, periodic_seconds=None)
            assert again is not None
            assert again.size == 0  # nothing to correct: the state is left as it is
            # and routing still works on the corrected state
            assert (await client.post("/v1/leads", json={"email": "lee@acme.example"})).status_code == 201

    async def test_periodic_runs_happen_once_a_period_and_one_instance_at_a_time(
        self, app: Litestar, router: Router, settings: Settings
    ) -> None:
        assert settings.database_url is not None
        async with authed(app) as client:
            await setup_pool(client)
            await router.state.redis.delete(router.state.keys.reconciled)
            first = await reconcile_once(router, settings.database_url, now, periodic_seconds=600)
            assert first is not None
            # another instance, in the same period: skipped
            assert await reconcile_once(router, settings.database_url, now, periodic_seconds=600) is None
            # another instance holds the reconcile lock: even an asked-for run is skipped
            async with connection(settings) as other:
                await other.execute("SELECT pg_advisory_lock($1)", RECONCILE_LOCK)
                assert await reconcile_once(router, settings.database_url, now, periodic_seconds=None) is None
                await other.execute("SELECT pg_advisory_unlock($1)", RECONCILE_LOCK)
            await router.state.redis.delete(router.state.keys.reconciled)
