"""Every error becomes an RFC 9457 ``application/problem+json`` answer here, in one function.

:func:`problem_for` maps an exception to a :class:`Problem`; :func:`problem_response` is the one
exception handler the app registers (for ``Exception``, so nothing escapes it); and
:func:`problem_responses` is what a route passes as ``responses=`` to document the problems it
can answer with in ``/schema/openapi.json``.

=====================================  ======  ===========================  =====================
exception                              status  ``type`` (after the base)    ``errors``
=====================================  ======  ===========================  =====================
``ClientError`` (and its subclasses)   its own its ``kind``                 its ``errors``
``MalformedBody``                      400     ``malformed-body``           ``body``
``InvalidEvent`` / ``InvalidLead``     422     ``invalid-event`` / ``-lead`` one per field
``RulesetError``                       422     ``invalid-ruleset``          rule, file, line, ...
Litestar ``ValidationException``       400     ``invalid-request``          one per field
Litestar ``HTTPException``, 400        400     ``malformed-body``           ``body``
``RecursionError`` (a too deep body)   400     ``malformed-body``           ``body``
Litestar ``HTTPException``, other      its own ``not-found``, ...           none
PostgreSQL or Redis does not answer    503     ``dependency-unavailable``   none (``Retry-After``)
``Overloaded`` (no connection free)    503     ``overloaded``               none (``Retry-After``)
``UpstreamUnavailable`` (a CRM API)     503     ``upstream-unavailable``     none (``Retry-After``)
``ClientGone``, a client that left     499     ``client-closed-request``    none (nobody reads it)
anything else                          500     ``internal``                 none (logged)
=====================================  ======  ===========================  =====================
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import ResponseSpec

from leadroute.errors import (
    ClientError,
    ClientGone,
    InvalidLead,
    MalformedBody,
    Overloaded,
    RulesetError,
    UpstreamUnavailable,
)
from leadroute.intake import InvalidEvent
from leadroute.outage import OUTAGES, RETRY_AFTER, dependency_down
from leadroute.structs import Struct

__all__ = [
    "PROBLEM_BASE",
    "PROBLEM_MEDIA_TYPE",
    "Problem",
    "ProblemResponses",
    "problem_for",
    "problem_response",
    "problem_responses",
]

log = logging.getLogger("leadroute.app")

PROBLEM_BASE = "https://leadroute.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"

ProblemEntry = dict[str, str | int | None]
"""One thing wrong: ``field`` or ``rule`` (with ``file``, ``line``, ``column``) or ``test``, and
``message``."""


class Problem(Struct, kw_only=True, omit_defaults=True):
    """An RFC 9457 problem: what went wrong, and each field or rule it went wrong at."""

    status: int
    """The HTTP status, repeated."""
    type: str
    """``https://leadroute.dev/problems/<kind>``: stable, for programs to branch on."""
    title: str
    """The kind of problem, for people."""
    detail: str
    """This occurrence, for people: names the field or rule and what to do."""
    errors: list[ProblemEntry] = []  # noqa: RUF012  (msgspec copies a mutable default)
    """Each field, rule or test at fault (left out when there is none)."""


def _problem(
    status: int, kind: str, title: str, detail: str, errors: list[ProblemEntry] | None = None
) -> Problem:
    return Problem(status=status, type=PROBLEM_BASE + kind, title=title, detail=detail, errors=errors or [])


def problem_for(exc: Exception) -> Problem:  # noqa: PLR0911, PLR0912  (one case per row of the table)
    """The problem that answers ``exc`` (see the table in the module docstring)."""
    match exc:
        case ClientError():
            return _problem(exc.status, exc.kind, exc.title, exc.detail, exc.errors)
        case MalformedBody():
            errors: list[ProblemEntry] = [{"field": e.field, "message": e.message} for e in exc.errors]
            return _problem(400, "malformed-body", "Malformed request body", str(exc), errors)
        case InvalidLead():
            errors = [{"field": e.field, "message": e.message} for e in exc.errors]
            what = "event" if isinstance(exc, InvalidEvent) else "lead"
            detail = f"invalid {what}: " + "; ".join(f"{e['field']}: {e['message']}" for e in errors)
            return _problem(422, f"invalid-{what}", f"Invalid {what}", detail, errors)
        case RulesetError():
            errors = [
                {"rule": p.rule_id, "file": p.file, "line": p.line, "column": p.column, "message": p.message}
                for p in exc.problems
            ]
            return _problem(422, "invalid-ruleset", "Invalid ruleset", str(exc), errors)
        case ValidationException():
            extra = exc.extra if isinstance(exc.extra, list) else []
            errors = [{"field": _field_of(e), "message": _message_of(e)} for e in extra]
            return _problem(400, "invalid-request", "Invalid request", exc.detail, errors)
        case RecursionError():  # a body nested past msgspec's limit, on a route that decodes it itself
            message = "the body is nested too deeply"
            return _problem(
                400,
                "malformed-body",
                "Malformed request body",
                message,
                [{"field": "body", "message": message}],
            )
        case HTTPException(status_code=400):  # the body is not JSON (Litestar could not decode it)
            errors = [{"field": "body", "message": exc.detail}]
            return _problem(400, "malformed-body", "Malformed request body", exc.detail, errors)
        case HTTPException(status_code=500, detail="client disconnected prematurely"):
            # the client left while its body was being read (Litestar's words): answered to nobody
            return problem_for(ClientGone())
        case HTTPException():
            kind = _HTTP_KINDS.get(exc.status_code, "http-error")
            return _problem(exc.status_code, kind, exc.detail, exc.detail)
        case UpstreamUnavailable():
            return _problem(503, "upstream-unavailable", "Upstream API unavailable", str(exc))
        case Overloaded():
            detail = "this instance is busy; retry after the seconds Retry-After gives"
            return _problem(503, "overloaded", "Overloaded", detail)
        case _ if (down := dependency_down(exc)) is not None:  # see leadroute.outage
            detail = f"{down} does not answer; retry after {RETRY_AFTER} s"
            return _problem(503, "dependency-unavailable", "Service temporarily unavailable", detail)
        case _:
            detail = "the request failed on our side; it is safe to retry"
            return _problem(500, "internal", "Internal error", detail)


_HTTP_KINDS = {404: "not-found", 405: "method-not-allowed", 413: "body-too-large"}


def problem_response(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    """The app's one exception handler: ``exc`` as a problem+json response."""
    problem = problem_for(exc)
    headers = exc.headers if isinstance(exc, HTTPException) and exc.status_code == 405 else None
    if isinstance(exc, ClientError):
        headers = exc.headers  # WWW-Authenticate on a 401 or 403
    if isinstance(exc, Overloaded):
        gate = getattr(request.app.state, "admission", None)  # the load-based estimate, if served
        headers = {"Retry-After": str(gate.retry_after() if gate is not None else exc.retry_after)}
    elif isinstance(exc, UpstreamUnavailable):
        headers = {"Retry-After": str(exc.retry_after)}
    elif problem.status == 503 and (down := dependency_down(exc)) is not None:
        OUTAGES.down(down, exc, f"{request.method} {request.url.path}")  # one line per outage
        headers = {"Retry-After": str(RETRY_AFTER)}
    elif problem.status >= 500:
        # The lead body can hold PII: log the exception type and route, never the request.
        log.exception("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path)
    return Response(problem, status_code=problem.status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


_DESCRIPTIONS = {
    400: "The request is malformed: not JSON, a wrong type, an unknown or missing field",
    401: "No API key, or one that is not valid (``Authorization: Bearer <key>``)",
    403: "The key does not have the scope this route needs, or not for this origin",
    404: "Nothing has this id",
    409: "The request conflicts with what is stored",
    413: "The body is larger than this route takes",
    415: "The body's content type is not one this route takes",
    422: "The request is well-formed but cannot be applied; ``errors`` names the field or rule",
    503: "A dependency does not answer",
}


ProblemResponses = Callable[..., dict[int, ResponseSpec]]
"""The type of :func:`problem_responses` (``leadroute.access`` takes it, so it needs no import of this)."""


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI ``responses=`` for a route: each status it can answer with, as a :class:`Problem`."""
    return {
        status: ResponseSpec(
            data_container=Problem,
            description=_DESCRIPTIONS.get(status, "A problem"),
            media_type=PROBLEM_MEDIA_TYPE,
            generate_examples=False,
        )
        for status in statuses
    }


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
