"""The Litestar application: routes, error mapping, and the lifespan that opens PostgreSQL and Redis."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Request, Response
from litestar.di import Provide
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import OpenAPIConfig
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)
from redis.asyncio import Redis

from leadroute.api.assignments import AssignmentController
from leadroute.api.deps import provide_runtime
from leadroute.api.events import EventController
from leadroute.api.health import live, ready
from leadroute.api.leads import LeadController
from leadroute.api.owners import OwnerController, PoolController, RoutingController
from leadroute.api.replay import ReplayController
from leadroute.api.rulesets import RulesetController
from leadroute.api.simulate import SimulateController
from leadroute.config import Settings
from leadroute.errors import ClientError, problem
from leadroute.intake import InvalidEvent, InvalidLead, MalformedBody
from leadroute.routing.assign import Router
from leadroute.rules import Ruleset, RulesetError, load_rules_path
from leadroute.rulesets import RulesetSync, actor
from leadroute.runtime import ActiveRuleset, Clock, Runtime, utc_now
from leadroute.store.db import create_pool
from leadroute.store.migrate import migrate
from leadroute.store.rulesets import adopt_startup_ruleset
from leadroute.workflow.scheduler import scheduler as sla_scheduler

__all__ = ["create_app"]

log = logging.getLogger(__name__)


def create_app(settings: Settings, *, ruleset: Ruleset | None = None, clock: Clock = utc_now) -> Litestar:
    """Build the app; the ruleset is loaded now (start-up fails on a bad one), connections at start.

    ``clock`` is the source of "now" for routing, timers and decay; tests pass one they control.
    """
    if settings.database_url is None or settings.redis_url is None:
        raise ValueError("create_app needs database and redis URLs; the CLI starts embedded servers first")
    active_rules = ruleset or load_rules_path(settings.rules_path)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        assert settings.database_url is not None
        assert settings.redis_url is not None
        db = await create_pool(
            settings.database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max
        )
        redis: Redis = Redis.from_url(settings.redis_url)
        try:
            async with db.acquire() as conn:
                await migrate(conn)
                running, ruleset_id = await adopt_startup_ruleset(conn, active_rules, actor=actor("start"))
            routing = Router(redis, settings.redis_prefix, database_url=settings.database_url, clock=clock)
            await routing.ensure_state(startup=True)  # first start, or Redis lost its data
            app.state.runtime = Runtime(
                settings=settings,
                db=db,
                redis=redis,
                routing=routing,
                rules=ActiveRuleset(running, ruleset_id),
                clock=clock,
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
                async with sla_scheduler(app.state.runtime):  # fires due SLA timers in the background
                    yield
            finally:
                await rulesets.stop()
        finally:
            await redis.aclose()
            await db.close()

    return Litestar(
        route_handlers=[
            LeadController,
            AssignmentController,
            EventController,
            OwnerController,
            PoolController,
            RoutingController,
            RulesetController,
            ReplayController,
            SimulateController,
            live,
            ready,
        ],
        dependencies={"rt": Provide(provide_runtime, sync_to_thread=False)},
        lifespan=[lifespan],
        # every other HTTPException goes to _http_error (the plugin's own handler would replace it,
        # answering without ``type`` or ``errors``)
        plugins=[ProblemDetailsPlugin(ProblemDetailsConfig(enable_for_all_http_exceptions=False))],
        exception_handlers={
            ClientError: _client_error,
            InvalidLead: _invalid_lead,
            RulesetError: _invalid_ruleset,
            ValidationException: _validation_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
        openapi_config=OpenAPIConfig(title="leadroute", version="1", path="/schema"),
        # Logging is the process's (set up by the CLI). Litestar's default replaces the root
        # handlers with a queue whose listener thread does not survive a fork into workers.
        logging_config=None,
        debug=False,
    )


def _client_error(request: Request[Any, Any, Any], exc: ClientError) -> Response[Any]:
    return problem(exc.status, exc.kind, exc.title, exc.detail, exc.errors).to_response(request)


def _invalid_lead(request: Request[Any, Any, Any], exc: InvalidLead) -> Response[Any]:
    errors = [{"field": e.field, "message": e.message} for e in exc.errors]
    if isinstance(exc, MalformedBody):
        return problem(400, "malformed-body", "Malformed request body", str(exc), errors).to_response(request)
    what = "event" if isinstance(exc, InvalidEvent) else "lead"
    detail = f"invalid {what}: " + "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return problem(422, f"invalid-{what}", f"Invalid {what}", detail, errors).to_response(request)


def _invalid_ruleset(request: Request[Any, Any, Any], exc: RulesetError) -> Response[Any]:
    errors = [
        {"rule": p.rule_id, "file": str(p.file), "line": p.line, "column": p.column, "message": p.message}
        for p in exc.problems
    ]
    return problem(422, "invalid-ruleset", "Invalid ruleset", str(exc), errors).to_response(request)


_NAMED_FIELD = re.compile(r"(?:unknown|required) field `([^`]+)`")


def _field_of(error: dict[str, Any]) -> str:
    """The field a request-validation error is about: Litestar reports an unknown or missing key
    of the body as the handler's ``data`` parameter; name the key itself (or the body) instead."""
    key = error.get("key") or error.get("source") or "body"
    named = _NAMED_FIELD.search(str(error.get("message", "")))
    if named is None:
        return "body" if key == "data" else str(key)
    return named.group(1) if key in {"data", "body"} else f"{key}.{named.group(1)}"


def _message_of(error: dict[str, Any]) -> str:
    message = str(error.get("message", ""))
    # a required body that is absent reaches us as Litestar's KeyError text, "'data'"
    return "a JSON body is required" if message == "'data'" else message


def _validation_error(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    extra = exc.extra if isinstance(exc.extra, list) else []
    errors = [{"field": _field_of(e), "message": _message_of(e)} for e in extra]
    return problem(400, "invalid-request", "Invalid request", exc.detail, errors).to_response(request)


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if isinstance(exc, ProblemDetailsException):
        return exc.to_response(request)
    if exc.status_code == 400:  # the body is not JSON (Litestar could not decode it)
        errors = [{"field": "body", "message": exc.detail}]
        return problem(400, "malformed-body", "Malformed request body", exc.detail, errors).to_response(
            request
        )
    kind = {404: "not-found", 405: "method-not-allowed", 413: "body-too-large"}.get(
        exc.status_code, "http-error"
    )
    return problem(exc.status_code, kind, exc.detail, exc.detail).to_response(request)


def _internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    # The lead body can hold PII: log the exception type and route, never the request.
    log.exception("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path)
    return problem(
        500, "internal", "Internal error", "the request failed on our side; it is safe to retry"
    ).to_response(request)
