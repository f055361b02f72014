"""Rulesets admin: the active one, stored versions, upload, activate, rollback, dry-run validation.

Versions are immutable once stored (see :mod:`leadroute.store.rulesets`). Activation and rollback
switch every instance of the fleet within a second (PostgreSQL NOTIFY plus a poll), and this
instance before it answers. Who did it is recorded with the version or activation: the API key
(``key:<id>``), with the person of the optional ``X-Actor`` header (``leadroute.access``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import FromPath

from leadroute.api.problems import problem_responses
from leadroute.errors import ClientError
from leadroute.rules import Ruleset, RulesetError, check_pools, parse_ruleset, run_ruleset_tests
from leadroute.runtime import Runtime
from leadroute.store.db import Connection
from leadroute.store.queries import QUERIES
from leadroute.store.rulesets import (
    Activation,
    ActivationResult,
    RulesetVersionConflict,
    RulesetVersionNotFound,
    StoredRuleset,
    activate_version,
    active_activation,
    check_file_version,
    get_stored,
    list_versions,
    load_stored_ruleset,
    rollback,
    store_ruleset,
)

__all__ = ["RulesetController", "RulesetTestsFailed", "UnsupportedRulesetType"]

MAX_RULESET_BYTES = 1024 * 1024
YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain"})

Actor = NamedDependency[str | None]
"""Who acts: ``key:<id>``, with the ``X-Actor`` header's person (``leadroute.access.provide_actor``)."""


class RulesetTestsFailed(ClientError):
    status = 422
    kind = "ruleset-tests-failed"
    title = "The ruleset's own tests fail"

    def __init__(self, ruleset: Ruleset, failed: list[tuple[str, list[str]]]) -> None:
        names = ", ".join(repr(name) for name, _ in failed)
        super().__init__(
            f"{ruleset.display_path} v{ruleset.version}: {len(failed)} test(s) fail ({names}); "
            "fix the rules or the expectations (`leadroute rules test FILE` shows the same diffs)",
            errors=[{"test": name, "message": "; ".join(diffs)} for name, diffs in failed],
        )


class UnsupportedRulesetType(ClientError):
    status = 415
    kind = "unsupported-media-type"
    title = "Send the rule file as YAML"

    def __init__(self, got: str) -> None:
        super().__init__(
            f"content-type {got!r} is not a rule file; send the YAML as application/yaml or text/plain",
            errors=[{"field": "content-type", "message": "use application/yaml or text/plain"}],
        )


class BadRequestField(ClientError):
    status = 400
    kind = "invalid-request"
    title = "Invalid request"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", errors=[{"field": field, "message": message}])


class RollbackIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``POST /v1/rulesets/rollback`` body (optional): the stored version to return to."""

    version: Annotated[int, msgspec.Meta(ge=1)] | None = None


def _version_dict(stored: StoredRuleset) -> dict[str, Any]:
    return {
        "version": stored.version,
        "sha256": stored.sha256,
        "description": stored.description,
        "status": stored.status,
        "path": stored.path,
        "created_at": stored.loaded_at,
        "created_by": stored.created_by,
        "published_at": stored.published_at,
        "published_by": stored.published_by,
    }


def _activation_dict(activation: Activation | None) -> dict[str, Any] | None:
    if activation is None:
        return None
    return {
        "version": activation.version,
        "sha256": activation.sha256,
        "action": activation.action,
        "by": activation.actor,
        "at": activation.activated_at,
    }


def _result_dict(result: ActivationResult, rt: Runtime) -> dict[str, Any]:
    return {
        "active": _activation_dict(result.active),
        "previous": _activation_dict(result.previous),
        "changed": result.changed,
        "instance_version": rt.rules.ruleset.version,
    }


def _ruleset_from_body(request: Request[Any, Any, Any], body: bytes) -> Ruleset:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media and media not in YAML_TYPES:
        raise UnsupportedRulesetType(media)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequestField("body", "the rule file is not UTF-8 text") from None
    name = Path(request.headers.get("x-ruleset-name", "uploaded.yaml")).name
    return parse_ruleset(text, path=Path(name))


async def _check_pools(conn: Connection, ruleset: Ruleset) -> None:
    known = {r["id"] for r in await conn.fetch(QUERIES["pool_ids"])}
    problems = check_pools(ruleset, known)
    if problems:
        raise RulesetError(problems)


class RulesetController(Controller):
    path = "/v1/rulesets"
    tags = ["rulesets"]  # noqa: RUF012

    @get("/active", summary="The ruleset deciding leads now (on this instance)")
    async def active(self, rt: NamedDependency[Runtime]) -> dict[str, Any]:
        """Version, checksum and size of the ruleset this instance runs."""
        rs = rt.rules.ruleset
        return {
            "version": rs.version,
            "sha256": rs.sha256,
            "description": rs.description,
            "path": str(rs.path),
            "scoring_rules": len(rs.scoring_rules),
            "qualification_rules": len(rs.qualification_rules),
            "routing_rules": len(rs.routing_rules),
        }

    @get("/", summary="Every stored ruleset version")
    async def list_(self, rt: NamedDependency[Runtime]) -> dict[str, Any]:
        """Versions newest first: status (draft or published), checksum, when stored, when active,
        and which one the fleet runs."""
        async with rt.db.acquire() as conn:
            versions = await list_versions(conn)
            active = await active_activation(conn)
        return {
            "active": _activation_dict(active),
            "versions": [
                _version_dict(v.ruleset)
                | {
                    "active": v.active,
                    "first_activated_at": v.first_activated_at,
                    "last_activated_at": v.last_activated_at,
                }
                for v in versions
            ],
        }

    @get(
        "/{version:int}", summary="One stored version, with its source", responses=problem_responses(400, 404)
    )
    async def read(self, rt: NamedDependency[Runtime], version: FromPath[int]) -> dict[str, Any]:
        """Metadata, the YAML source as stored, and every activation of this version."""
        async with rt.db.acquire() as conn:
            stored, history = await get_stored(conn, version)
            active = await active_activation(conn)
        return _version_dict(stored) | {
            "active": active is not None and active.ruleset_id == stored.id,
            "activations": [
                {"action": h["action"], "by": h["actor"], "at": h["activated_at"]} for h in history
            ],
            "source": stored.source,
        }

    @post(
        "/",
        request_max_body_size=MAX_RULESET_BYTES,
        summary="Upload a ruleset as a draft",
        responses={
            200: ResponseSpec(dict[str, Any], description="The same content is already stored"),
            **problem_responses(400, 409, 413, 415, 422),
        },
    )
    async def upload(
        self, rt: NamedDependency[Runtime], request: Request[Any, Any, Any], x_actor: Actor = None
    ) -> Response[dict[str, Any]]:
        """Store a rule file (YAML body) as a draft version, after it loads, its pools exist and
        its tests pass. 201 when stored; 200 when the same content is already stored; 409 when
        its version is stored with other content (bump the version); 422 naming the rule, line
        and test otherwise. Activate it with ``POST /v1/rulesets/{version}/activate``."""
        ruleset = _ruleset_from_body(request, await request.body())
        async with rt.db.acquire() as conn:
            await check_file_version(conn, ruleset)
            await _check_pools(conn, ruleset)
            outcomes = run_ruleset_tests(ruleset)
            failed = [(o.name, o.diffs) for o in outcomes if not o.passed]
            if failed:
                raise RulesetTestsFailed(ruleset, failed)
            stored, created = await store_ruleset(conn, ruleset, status="draft", actor=x_actor or "api")
        body = _version_dict(stored) | {
            "created": created,
            "tests": [{"name": o.name, "passed": o.passed} for o in outcomes],
        }
        return Response(body, status_code=201 if created else 200)

    @post(
        "/{version:int}/activate",
        status_code=200,
        summary="Activate a stored version fleet-wide",
        responses=problem_responses(400, 404, 409, 422),
    )
    async def activate(
        self, rt: NamedDependency[Runtime], version: FromPath[int], x_actor: Actor = None
    ) -> dict[str, Any]:
        """Make ``version`` active on every instance (a draft becomes published). Its pools are
        checked again, since pools may have changed since it was uploaded."""
        async with rt.db.acquire() as conn:
            loaded = await load_stored_ruleset(conn, version)
            if loaded is None:
                raise RulesetVersionNotFound(version)
            await _check_pools(conn, loaded[0])
            result = await activate_version(conn, version, actor=x_actor or "api")
        if rt.rulesets is not None:
            rt.rulesets.remember(loaded[1], loaded[0])  # parsed once: the switch below reuses it
            await rt.rulesets.refresh()
        return _result_dict(result, rt)

    @post(
        "/rollback",
        status_code=200,
        summary="Re-activate the previous (or a given) version",
        responses=problem_responses(400, 404, 409, 422),
    )
    async def rollback(
        self, rt: NamedDependency[Runtime], request: Request[Any, Any, Any], x_actor: Actor = None
    ) -> dict[str, Any]:
        """Without a body: return to the version active before the current one (repeat to go
        further back). With ``{"version": N}``: return to that published version."""
        raw = await request.body()
        try:
            body = msgspec.json.decode(raw, type=RollbackIn) if raw.strip() else RollbackIn()
        except msgspec.ValidationError as exc:
            message, _, where = str(exc).rpartition(" - at `")
            raise BadRequestField(
                where.rstrip("`").removeprefix("$.") or "body", message or str(exc)
            ) from None
        except msgspec.DecodeError as exc:
            raise BadRequestField("body", f"not valid JSON: {exc}") from None
        async with rt.db.acquire() as conn:
            result = await rollback(conn, body.version, actor=x_actor or "api")
        if rt.rulesets is not None:
            await rt.rulesets.refresh()
        return _result_dict(result, rt)

    @post(
        "/validate",
        status_code=200,
        request_max_body_size=MAX_RULESET_BYTES,
        summary="Check a ruleset file without storing it",
        responses=problem_responses(400, 413, 422),
    )
    async def validate(self, rt: NamedDependency[Runtime], request: Request[Any, Any, Any]) -> dict[str, Any]:
        """Load the YAML body, type-check it, check its pools exist, and run its tests. Writes nothing.

        ``version_status`` says whether an upload would store a ``new`` version, find it already
        ``stored`` with this content, or be refused (``conflict``: bump the version; ``passed`` is
        then false and ``version_message`` says why).

        A file that does not load, or names a pool that does not exist, is a 422 problem whose
        ``errors`` give the rule id, line and column of each fault.
        """
        body = await request.body()
        name = Path(request.headers.get("x-ruleset-name", "uploaded.yaml")).name
        ruleset = parse_ruleset(body.decode("utf-8", errors="replace"), path=Path(name))
        async with rt.db.acquire() as conn:
            await _check_pools(conn, ruleset)
            try:
                await check_file_version(conn, ruleset)
                stored = await conn.fetchval(QUERIES["ruleset_by_version"], ruleset.version)
                version_status, version_message = ("stored" if stored else "new"), None
            except RulesetVersionConflict as exc:
                version_status, version_message = "conflict", exc.detail
        outcomes = run_ruleset_tests(ruleset)
        return {
            "version": ruleset.version,
            "sha256": ruleset.sha256,
            "version_status": version_status,
            "version_message": version_message,
            "tests": [{"name": o.name, "passed": o.passed, "diffs": o.diffs} for o in outcomes],
            "passed": all(o.passed for o in outcomes) and version_status != "conflict",
        }
