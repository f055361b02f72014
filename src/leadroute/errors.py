"""leadroute's errors, and the one place they become ``application/problem+json``.

    LeadrouteError
    ├── ClientError                 4xx: the caller can fix it; the problem names the field or rule
    │   ├── NotFound                404
    │   ├── IdempotencyConflict     422: same key, different body
    │   ├── UnknownOwner            422: an action names an owner that does not exist
    │   ├── WorkflowConflict        409: the lead's workflow state does not allow the action
    │   │   └── NotCurrentOwner     409: only the lead's current owner may do this
    │   └── PoolError               422: a pool cannot be saved as given (``pool``, ``field``)
    │       └── UnknownOwners       422: a pool names owners that do not exist
    ├── CommandError                a CLI command cannot run (CLI)
    └── OwnersFileError             an owners file cannot be read (CLI)

Errors raised by the pure core (``intake.InvalidLead``, ``rules.RulesetError``) stay free of HTTP;
``problem_for`` maps them too. Every problem has ``type``, ``title``, ``status``, ``detail`` and,
where it helps, ``errors``: a list of ``{field | rule, message}``.
"""

from __future__ import annotations

from typing import Any

from litestar.plugins.problem_details import ProblemDetailsException

__all__ = [
    "ClientError",
    "CommandError",
    "IdempotencyConflict",
    "LeadrouteError",
    "NotCurrentOwner",
    "NotFound",
    "OwnersFileError",
    "PoolError",
    "UnknownOwner",
    "UnknownOwners",
    "WorkflowConflict",
    "problem",
]

PROBLEM_BASE = "https://leadroute.dev/problems/"


class LeadrouteError(Exception):
    """Base of every error leadroute raises on purpose."""


class ClientError(LeadrouteError):
    """Something the client sent is wrong; answered with a 4xx problem."""

    status = 400
    kind = "bad-request"
    title = "Bad request"

    def __init__(self, detail: str, *, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []


class NotFound(ClientError):
    status = 404
    kind = "not-found"
    title = "Not found"

    def __init__(
        self, what: str, ident: str, *, detail: str | None = None, errors: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(detail or f"no {what} with id {ident!r}", errors=errors)


class IdempotencyConflict(ClientError):
    status = 422
    kind = "idempotency-key-reused"
    title = "Idempotency key reused with a different body"

    def __init__(self, key: str) -> None:
        super().__init__(
            "this idempotency key was already used for a different request body; "
            "use a new key for a new lead, or resend the original body",
            errors=[{"field": "Idempotency-Key", "message": "already used for a different body"}],
        )
        self.key = key


class PoolError(ClientError):
    """A pool cannot be saved as given: ``pool`` is which, ``field`` which of its fields is wrong
    (an owners-file import turns them into the file and line the pool was written on)."""

    status = 422

    def __init__(
        self, pool: str, field: str, detail: str, *, errors: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(detail, errors=errors)
        self.pool = pool
        self.field = field


class UnknownOwners(PoolError):
    kind = "unknown-owner"
    title = "Unknown owner"

    def __init__(self, pool: str, owners: list[str]) -> None:
        super().__init__(
            pool,
            "members",
            f"pool {pool!r} names owners that do not exist: {', '.join(owners)}",
            errors=[{"field": "members", "message": f"unknown owner {o!r}"} for o in owners],
        )


class WorkflowConflict(ClientError):
    """The lead's state does not allow this action (closed, no owner, ...): 409."""

    status = 409
    kind = "workflow-conflict"
    title = "The lead's workflow state does not allow this"


class NotCurrentOwner(WorkflowConflict):
    kind = "not-current-owner"
    title = "Not the lead's current owner"

    def __init__(self, owner_id: str, current: str | None) -> None:
        super().__init__(
            f"owner {owner_id!r} is not the lead's current owner"
            + (f" (it is {current!r})" if current else " (the lead has no owner)"),
            errors=[{"field": "owner_id", "message": "not the current owner"}],
        )


class UnknownOwner(ClientError):
    status = 422
    kind = "unknown-owner"
    title = "Unknown owner"

    def __init__(self, owner_id: str) -> None:
        super().__init__(
            f"no owner with id {owner_id!r}",
            errors=[{"field": "owner_id", "message": f"unknown owner {owner_id!r}"}],
        )


class CommandError(LeadrouteError):
    """A CLI command cannot run; the message says why and what to do."""


class OwnersFileError(LeadrouteError):
    """An owners file cannot be read or does not match the format."""


def problem(
    status: int, kind: str, title: str, detail: str, errors: list[dict[str, Any]] | None = None
) -> ProblemDetailsException:
    """Build the Litestar exception that renders as RFC 9457 problem+json."""
    extra: dict[str, Any] = {"errors": errors} if errors else {}
    return ProblemDetailsException(
        status_code=status, type_=PROBLEM_BASE + kind, title=title, detail=detail, extra=extra
    )
