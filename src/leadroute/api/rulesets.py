"""Rulesets admin: the active one, stored versions, upload, activate, rollback, dry-run validation.

Versions are immutable once stored (see :mod:`leadroute.store.rulesets`). Activation and rollback
switch every instance of the fleet within a second (PostgreSQL NOTIFY plus a poll), and this
instance before it answers. Who did it is recorded with the version or activation: the API key
(``key:<id>``), with the person of the optional ``X-Actor`` header (``leadroute.access``).

Each handler is one call into :mod:`leadroute.rulesets.admin`; a rule file (YAML body) reaches it
as a :class:`RuleFile` (body, media type and ``X-Ruleset-Name``), read by the ``rule_file``
dependency.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody

from leadroute.api.bodies import parsed_body
from leadroute.api.problems import problem_responses
from leadroute.rulesets import admin
from leadroute.rulesets.admin import (
    ActivationAnswer,
    RollbackIn,
    RuleFile,
    RulesetSummary,
    Uploaded,
    Validation,
    VersionDetail,
    VersionList,
)
from leadroute.runtime import Runtime

__all__ = ["MAX_RULESET_BYTES", "RulesetController"]

MAX_RULESET_BYTES = 1024 * 1024

Actor = NamedDependency[str | None]
"""Who acts: ``key:<id>``, with the ``X-Actor`` header's person (``leadroute.access.provide_actor``)."""
Rt = NamedDependency[Runtime]


async def read_rule_file(request: Request[Any, Any, Any]) -> RuleFile:
    """The request's rule file: its body, content type, and ``X-Ruleset-Name`` (a bare name)."""
    return RuleFile(
        body=await request.body(),
        media=request.headers.get("content-type", "").split(";")[0].strip().lower(),
        name=Path(request.headers.get("x-ruleset-name", "uploaded.yaml")).name,
    )


_SWITCH = problem_responses(400, 404, 409, 422)


class RulesetController(Controller):
    path = "/v1/rulesets"
    tags = ["rulesets"]  # noqa: RUF012
    dependencies = {"rule_file": Provide(read_rule_file)}  # noqa: RUF012

    @get("/active", summary="The ruleset deciding leads now (on this instance)")
    async def active(self, rt: Rt) -> RulesetSummary:
        """Version, checksum and size of the ruleset this instance runs."""
        return admin.active_summary(rt)

    @get("/", summary="Every stored ruleset version")
    async def list_(self, rt: Rt) -> VersionList:
        """Versions newest first: status (draft or published), checksum, when stored, when active,
        and which one the fleet runs."""
        return await admin.versions(rt)

    @get(
        "/{version:int}", summary="One stored version, with its source", responses=problem_responses(400, 404)
    )
    async def read(self, rt: Rt, version: FromPath[int]) -> VersionDetail:
        """Metadata, the YAML source as stored, and every activation of this version."""
        return await admin.version_detail(rt, version)

    @post(
        "/",
        request_max_body_size=MAX_RULESET_BYTES,
        summary="Upload a ruleset as a draft",
        responses={
            200: ResponseSpec(Uploaded, description="The same content is already stored"),
            **problem_responses(400, 409, 413, 415, 422),
        },
    )
    async def upload(
        self, rt: Rt, rule_file: NamedDependency[RuleFile], x_actor: Actor = None
    ) -> Response[Uploaded]:
        """Store a rule file (YAML body) as a draft version, after it loads, its pools exist and
        its tests pass. 201 when stored; 200 when the same content is already stored; 409 when
        its version is stored with other content (bump the version); 422 naming the rule, line
        and test otherwise. Activate it with ``POST /v1/rulesets/{version}/activate``."""
        uploaded = await admin.upload(rt, rule_file, x_actor)
        return Response(uploaded, status_code=201 if uploaded.created else 200)

    @post(
        "/{version:int}/activate",
        status_code=200,
        summary="Activate a stored version fleet-wide",
        responses=_SWITCH,
    )
    async def activate(self, rt: Rt, version: FromPath[int], x_actor: Actor = None) -> ActivationAnswer:
        """Make ``version`` active on every instance (a draft becomes published). Its pools are
        checked again, since pools may have changed since it was uploaded."""
        return await admin.activate(rt, version, x_actor)

    @post(
        "/rollback",
        status_code=200,
        dto=parsed_body(RollbackIn, admin.parse_rollback),
        return_dto=None,
        summary="Re-activate the previous (or a given) version",
        responses=_SWITCH,
    )
    async def rollback(
        self, rt: Rt, data: JSONBody[RollbackIn | None] = None, x_actor: Actor = None
    ) -> ActivationAnswer:
        """Without a body: return to the version active before the current one (repeat to go
        further back). With ``{"version": N}``: return to that published version."""
        return await admin.roll_back(rt, data, x_actor)

    @post(
        "/validate",
        status_code=200,
        request_max_body_size=MAX_RULESET_BYTES,
        summary="Check a ruleset file without storing it",
        responses=problem_responses(400, 413, 422),
    )
    async def validate(self, rt: Rt, rule_file: NamedDependency[RuleFile]) -> Validation:
        """Load the YAML body, type-check it, check its pools exist, and run its tests. Writes nothing.

        ``version_status`` says whether an upload would store a ``new`` version, find it already
        ``stored`` with this content, or be refused (``conflict``: bump the version; ``passed`` is
        then false and ``version_message`` says why).

        A file that does not load, or names a pool that does not exist, is a 422 problem whose
        ``errors`` give the rule id, line and column of each fault.
        """
        return await admin.validate(rt, rule_file)
