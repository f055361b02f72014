"""The Litestar application: routes, the lifespan that opens PostgreSQL and Redis, the one
exception handler (errors become problems in :mod:`leadroute.api.problems`, or pages under
``/console``), and access: every ``/v1`` route needs a key with the scope
:data:`leadroute.access.ROUTE_SCOPES` gives it, every console page the one
:data:`leadroute.access.CONSOLE_SCOPES` gives it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from litestar import Litestar, Request, Response
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin
from litestar.plugins.prometheus import PrometheusConfig
from redis.asyncio import Redis

from leadroute.access import COMPONENTS as ACCESS_COMPONENTS
from leadroute.access import (
    AccessMiddleware,
    KeyCache,
    document_access,
    provide_actor,
    provide_x_actor,
    security_headers,
    seed_admin_key,
)
from leadroute.api.admission import AdmissionControl, InFlight
from leadroute.api.assignments import AssignmentController
from leadroute.api.audit import AuditController
from leadroute.api.batch import LeadBatchController
from leadroute.api.deps import provide_connection, provide_runtime
from leadroute.api.docs_ui import openapi_config, static_router
from leadroute.api.events import EventController
from leadroute.api.health import live, ready
from leadroute.api.inbound import InboundController
from leadroute.api.keys import KeyController
from leadroute.api.leads import LeadController
from leadroute.api.openapi import StrictStructSchemaPlugin
from leadroute.api.outcomes import OutcomeController
from leadroute.api.owners import OwnerController, PoolController, RoutingController
from leadroute.api.problems import problem_response, problem_responses
from leadroute.api.replay import ReplayController
from leadroute.api.reports import ReportController
from leadroute.api.rulesets import RulesetController
from leadroute.api.simulate import SimulateController
from leadroute.api.webhooks import WebhookController
from leadroute.config import Settings, SettingsError
from leadroute.console import console_error, console_router, is_console, template_config
from leadroute.console import static_router as console_static_router
from leadroute.inbound import Inbound, start_mappings
from leadroute.limits import RateLimiter, parse_limit, parse_scope_limits
from leadroute.limits.middleware import RateLimitMiddleware, RateLimits
from leadroute.outbound import relay as outbound_relay
from leadroute.routing.assign import Router
from leadroute.routing.reconcile import reconciler
from leadroute.rules import Ruleset, load_rules_path
from leadroute.rulesets import RulesetSync, actor
from leadroute.runtime import ActiveRuleset, Clock, Runtime, utc_now
from leadroute.store.db import create_pool
from leadroute.store.migrate import migrate
from leadroute.store.redis_client import redis_client
from leadroute.store.rulesets import start_ruleset
from leadroute.telemetry import MetricsController, tracer_provider
from leadroute.workflow.scheduler import WORKERS as TIMER_WORKERS
from leadroute.workflow.scheduler import scheduler as sla_scheduler

__all__ = ["answer_error", "create_app"]

log = logging.getLogger(__name__)


def answer_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """The app's exception handler: problem+json (:func:`leadroute.api.problems.problem_response`),
    but a page for a person under ``/console`` (an unknown console address is a 404 page too)."""
    if is_console(request.url.path):
        return console_error(request, exc)
    return problem_response(request, exc)


def _plugins(tracing: Any) -> list[Any]:
    """The OpenAPI schema plugin, and OpenTelemetry's when tracing is on (off costs nothing)."""
    plugins: list[Any] = [StrictStructSchemaPlugin()]
    if tracing is not None:
        plugins.append(
            OpenTelemetryPlugin(OpenTelemetryConfig(tracer_provider=tracing, exclude=["/metrics"]))
        )
    return plugins


def create_app(settings: Settings, *, ruleset: Ruleset | None = None, clock: Clock = utc_now) -> Litestar:
    """Build the app; the ruleset is loaded now (start-up fails on a bad one), connections at start.

    ``clock`` is the source of "now" for routing, timers and decay; tests pass one they control.
    """
    if settings.database_url is None or settings.redis_url is None:
        raise ValueError("create_app needs database and redis URLs; the CLI starts embedded servers first")
    if not settings.allow_embedded and settings.secret_key is None:
        raise SettingsError(
            "LEADROUTE_SECRET_KEY: required in production (LEADROUTE_ALLOW_EMBEDDED=false): it encrypts "
            "webhook secrets at rest; make one with `leadroute secrets generate-key`"
        )
    active_rules = ruleset or load_rules_path(settings.rules_path)

    gate = InFlight(settings.max_in_flight)  # admission control; its backlog is the runtime's

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        assert settings.database_url is not None
        assert settings.redis_url is not None
        db = await create_pool(
            settings.database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max
        )
        # the background work's own connections, one per timer worker: a flood of requests cannot
        # starve the timers
        background_db = await create_pool(settings.database_url, min_size=1, max_size=TIMER_WORKERS)
        redis: Redis = redis_client(settings.redis_url)
        limits.limiter = RateLimiter(redis, settings.redis_prefix)
        limits.keys = keys = KeyCache(ttl=settings.key_cache_seconds)
        try:
            async with db.acquire() as conn:
                await migrate(conn)
                if settings.admin_key is not None:
                    await seed_admin_key(conn, settings.admin_key)
                # a rules file changed under a stored version: the last good version, loudly
                started = await start_ruleset(conn, active_rules, actor=actor("start"))
                running, ruleset_id = started.ruleset, started.id
                # a bad mapping file never replaces the active one (leadroute.inbound._store)
                mappings = await start_mappings(conn, settings.mappings_path, actor=actor("start"))
            routing = Router(redis, settings.redis_prefix, database_url=settings.database_url, clock=clock)
            await routing.ensure_state(startup=True)  # first start, or Redis lost its data
            app.state.runtime = Runtime(
                settings=settings,
                db=db,
                background_db=background_db,
                redis=redis,
                routing=routing,
                rules=ActiveRuleset(running, ruleset_id),
                clock=clock,
                file_conflict=started.file_conflict,
                keys=keys,
                inbound=Inbound(mappings, httpx.AsyncClient(timeout=settings.webhook_timeout)),
                backlog=gate.backlog,
            )
            log.info(
                "ruleset %s v%s active (sha256 %s)",
                running.path,
                running.version,
                running.sha256[:12],
            )
            rulesets = app.state.runtime.rulesets = RulesetSync(app.state.runtime)
            await rulesets.start()  # follows fleet-wide activations (LISTEN + poll), watches the file
            try:
                async with (
                    sla_scheduler(app.state.runtime),  # fires due SLA timers in the background
                    reconciler(
                        routing, settings.database_url, clock, every_minutes=settings.reconcile_minutes
                    ),
                    outbound_relay(app.state.runtime) as app.state.outbound,  # webhooks, CRM write-back
                ):
                    yield
            finally:
                await rulesets.stop()
                await app.state.runtime.inbound.close()
        finally:
            await redis.aclose()
            await db.close()
            await background_db.close()
            if tracing is not None:
                tracing.shutdown()  # exports what is buffered

    tracing = tracer_provider(settings.otlp_traces_endpoint)
    limits = RateLimits(
        per_address=parse_limit(settings.rate_limit_address, setting="LEADROUTE_RATE_LIMIT_ADDRESS"),
        per_scope=parse_scope_limits(settings.rate_limits, setting="LEADROUTE_RATE_LIMITS"),
    )
    plugins = _plugins(tracing)
    prometheus = PrometheusConfig(
        app_name="leadroute", prefix="leadroute_http", group_path=True, exclude=["/metrics"]
    )
    app = Litestar(
        route_handlers=[
            MetricsController,
            static_router(),
            LeadController,
            LeadBatchController,
            OutcomeController,
            ReportController,
            AssignmentController,
            EventController,
            InboundController,
            OwnerController,
            PoolController,
            RoutingController,
            RulesetController,
            ReplayController,
            SimulateController,
            WebhookController,
            KeyController,
            AuditController,
            console_router(),  # /console: the sales-ops pages, signed in with an API key
            console_static_router(),
            live,
            ready,
        ],
        dependencies={
            "rt": Provide(provide_runtime, sync_to_thread=False),
            "conn": Provide(provide_connection),
            "actor": Provide(provide_actor, sync_to_thread=False),
            # rulesets.py names its actor parameter after the header it used to read
            "x_actor": Provide(provide_x_actor, sync_to_thread=False),
        },
        before_send=[security_headers],
        lifespan=[lifespan],
        middleware=[
            prometheus.middleware,
            DefineMiddleware(AdmissionControl, gate=gate),
            DefineMiddleware(RateLimitMiddleware, limits=limits, by="address"),
            AccessMiddleware,  # 401/403/415 and CORS, before any /v1 handler runs
            DefineMiddleware(RateLimitMiddleware, limits=limits, by="key"),  # the key, per route scope
        ],
        exception_handlers={Exception: answer_error},  # every error, mapped in one place
        plugins=plugins,
        template_config=template_config(),
        openapi_config=openapi_config(components=ACCESS_COMPONENTS),
        # Logging is the process's (set up by the CLI). Litestar's default replaces the root
        # handlers with a queue whose listener thread does not survive a fork into workers.
        logging_config=None,
        debug=False,
    )
    app.state.admission = gate  # the Retry-After of an Overloaded (no connection free) too
    document_access(app, problem_responses)  # each /v1 operation's scope, 401, 403 and 415 in /schema
    return app
