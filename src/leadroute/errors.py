"""Every error leadroute raises on purpose, in one tree (no HTTP here: see ``api.problems``).

    LeadrouteError
    ├── ClientError                 4xx: the caller can fix it; the problem names the field or rule
    │   ├── NotFound                404
    │   ├── IdempotencyConflict     422: same key, different body
    │   ├── PoolError               422: a pool cannot be saved as given (``pool``, ``field``)
    │   │   ├── UnknownOwners       422: a pool names owners that do not exist
    │   │   └── UnknownEscalation, FallbackLoop, FallbackTooLong      (store.owners)
    │   ├── InvalidField            422: an owner or pool field is malformed        (store.owners)
    │   ├── RulesetVersionConflict, RulesetVersionNotFound,
    │   │   NothingToRollBack, RulesetNotPublished                  (store.rulesets)
    │   ├── RulesetTestsFailed, UnsupportedRulesetType, BadRequestField (api.rulesets)
    │   ├── InvalidBody, UnknownRulesetVersion                      (replay)
    │   ├── UnknownOwner            422: an action names an owner that does not exist
    │   └── WorkflowConflict        409: the lead's workflow state does not allow the action
    │       └── NotCurrentOwner     409: only the lead's current owner may do this
    ├── InvalidLead                 422: a lead (or event) field is wrong; also a ValueError
    │   ├── MalformedBody           400: the body is not JSON, or not an object
    │   └── InvalidEvent            422: an activity event field is wrong           (intake.events)
    ├── RulesetError                422: a rule file cannot be used; ``problems`` says where
    ├── RoutingStateLost            Redis lost the routing state mid-claim: roll back and retry
    ├── SettingsError               a ``LEADROUTE_*`` variable is missing or malformed (start-up)
    ├── MigrationError              applied migrations disagree with the files (start-up)
    ├── EmbeddedServersError        an embedded server could not start or stop (CLI)
    ├── Overloaded                  503: no database connection free in time (admission control)
    ├── UpstreamUnavailable         503: a CRM API leadroute must read failed; the sender retries
    ├── CommandError                a CLI command cannot run (CLI)
    └── OwnersFileError             an owners file cannot be read (CLI)

Errors marked with a module are defined there (beside the code that raises them) and subclass
a class of this tree; the rest are defined here and re-exported where they used to live
(``intake.InvalidLead``, ``rules.RulesetError``, ``routing.RoutingStateLost``,
``config.SettingsError``, ``store.migrate.MigrationError``, ``embedded.EmbeddedServersError``).

``api.problems`` maps every one of them to ``application/problem+json`` in one function; the
pure core raises them without knowing about HTTP. Their messages name the field or rule and never
echo submitted values (a lead can hold personal data), so they are safe to log and to return.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

__all__ = [
    "ClientError",
    "ClientGone",
    "CommandError",
    "EmbeddedServersError",
    "FieldError",
    "Forbidden",
    "IdempotencyConflict",
    "InvalidLead",
    "LeadrouteError",
    "MalformedBody",
    "MigrationError",
    "NotAuthenticated",
    "NotCurrentOwner",
    "NotFound",
    "Overloaded",
    "OwnersFileError",
    "PoolError",
    "RoutingStateLost",
    "RuleProblem",
    "RulesetError",
    "SettingsError",
    "UnknownOwner",
    "UnknownOwners",
    "UnsupportedMediaType",
    "UpstreamUnavailable",
    "WorkflowConflict",
]


class LeadrouteError(Exception):
    """Base of every error leadroute raises on purpose."""


# -- the client's fault: a 4xx problem ---------------------------------------------------------


class ClientError(LeadrouteError):
    """Something the client sent is wrong; answered with a 4xx problem.

    ``status``, ``kind`` (the last part of the problem ``type`` URI) and ``title`` are class
    attributes, so a subclass states its HTTP answer where it is declared.
    """

    status = 400
    kind = "bad-request"
    title = "Bad request"
    headers: dict[str, str] | None = None
    """Response headers the answer carries (``WWW-Authenticate`` on a 401)."""

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


class NotAuthenticated(ClientError):
    """No key, or one that is malformed, unknown, revoked or rotated away: 401.

    The same answer whatever the request names, so it tells nothing about what exists.
    """

    status = 401
    kind = "unauthenticated"
    title = "A valid API key is required"

    def __init__(self, detail: str, *, error: str | None = "invalid_token") -> None:
        super().__init__(detail)
        # RFC 6750: no error code when no credentials were sent at all
        self.headers = {"WWW-Authenticate": "Bearer" + (f' error="{error}"' if error else "")}


class Forbidden(ClientError):
    """A valid key that may not do this (its scopes, or the origin it was sent from): 403.

    Decided before the route runs, so a lead id that does not exist is a 403 too, never a 404.
    """

    status = 403
    kind = "forbidden"
    title = "This key may not do this"

    def __init__(self, detail: str, *, scope: str | None = None) -> None:
        super().__init__(detail)
        challenge = 'Bearer error="insufficient_scope"' + (f' scope="{scope}"' if scope else "")
        self.headers = {"WWW-Authenticate": challenge}


class UnsupportedMediaType(ClientError):
    """A body that is not JSON sent to a JSON route (a form post, ``text/plain``): 415."""

    status = 415
    kind = "unsupported-media-type"
    title = "Unsupported media type"

    def __init__(self, got: str, *, expected: str = "application/json") -> None:
        super().__init__(
            f"this route takes {expected} bodies, not {got[:100]!r}",
            errors=[{"field": "Content-Type", "message": f"must be {expected}"}],
        )


class IdempotencyConflict(ClientError):
    status = 422
    kind = "idempotency-key-reused"
    title = "Idempotency key reused with a different body"

    def __init__(self, key: str, field: str = "Idempotency-Key") -> None:
        what = "idempotency key" if field == "Idempotency-Key" else field
        super().__init__(
            f"this {what} was already used for a different request body (the Idempotency-Key "
            "header and event_id share one namespace); use a new key for a new request, or resend "
            "the original body",
            errors=[{"field": field, "message": "already used for a different body"}],
        )
        self.key = key
        self.field = field


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


# -- a lead refused at intake ------------------------------------------------------------------


# Positional (``FieldError("email", "...")`` is written all over intake), so not the kw_only base.
class FieldError(msgspec.Struct, frozen=True):
    """One problem with one field.

    ``field`` is the lead field's name; extra attributes are named ``attributes.<key>`` and a
    problem with the body as a whole is named ``body``.
    """

    field: str
    message: str


class InvalidLead(LeadrouteError, ValueError):
    """A lead that cannot be accepted; ``errors`` lists every bad field, in the schema's field order
    (``leadroute.intake.order.error_order``).

    Also a ``ValueError``: rule-file tests build leads with the intake code and catch it as one.
    """

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("invalid lead: " + ", ".join(e.field for e in errors))


class MalformedBody(InvalidLead):
    """The body is not JSON, or its top level is not an object; ``message`` says which."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__([FieldError("body", message)])

    def __str__(self) -> str:
        return self.message


# -- a rule file that cannot be used -----------------------------------------------------------


# Positional (the rules loader builds thousands of these), so not the kw_only base.
class RuleProblem(msgspec.Struct, frozen=True):
    """One thing wrong with a rule file, and where."""

    file: str
    line: int
    column: int
    rule_id: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}: "
        rule = f"rule {self.rule_id!r}: " if self.rule_id else ""
        return f"{where}{rule}{self.message}"


class RulesetError(LeadrouteError):
    """A rule file that cannot be used; ``problems`` lists everything found wrong with it."""

    def __init__(self, problems: Iterable[RuleProblem]) -> None:
        self.problems: list[RuleProblem] = list(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(problem) for problem in self.problems)


# -- the service's own state -------------------------------------------------------------------


class RoutingStateLost(LeadrouteError):
    """A script found the generation key gone: Redis lost its data and must be rebuilt."""


class SettingsError(LeadrouteError):
    """A setting is missing or malformed; the message names the environment variable."""


class MigrationError(LeadrouteError):
    """The database's applied migrations disagree with the files."""


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


class ClientGone(ClientError):
    """The client closed its connection before the request's transaction started: its work is
    dropped (nobody would read the answer; a client that retries sends its idempotency key again).
    Answered 499, as nginx logs it, to nobody."""

    status = 499
    kind = "client-closed-request"
    title = "Client closed the request"

    def __init__(self) -> None:
        super().__init__("the client closed the connection before the change started")


class Overloaded(LeadrouteError):
    """This instance has no database connection free within the acquire timeout: 503, retry soon."""

    retry_after = 1


class UpstreamUnavailable(LeadrouteError):
    """A third-party API an inbound route must read (HubSpot's CRM API) failed or is not set up:
    503 with ``Retry-After``, so the vendor that sent the webhook retries it later."""

    retry_after = 30


class EmbeddedServersError(LeadrouteError):
    """An embedded server could not be started or stopped; the message says why and where."""


class CommandError(LeadrouteError):
    """A CLI command cannot run; the message says why and what to do."""


class OwnersFileError(LeadrouteError):
    """An owners file cannot be read or does not match the format."""
