"""What the rulesets admin API does: show, upload, validate, activate and roll back versions.

Each function is one route of :mod:`leadroute.api.rulesets` and answers with a Struct (the JSON
the route sends). Storage and its rules (immutable versions, one lock, NOTIFY) are
:mod:`leadroute.store.rulesets`; this module adds what an HTTP client needs on top: a rule file
is checked (it loads, its pools exist, its tests pass) before it is stored, and this instance
switches before it answers an activation.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from leadroute.errors import ClientError
from leadroute.replay import InvalidBody
from leadroute.rules import Ruleset, parse_ruleset, run_ruleset_tests
from leadroute.runtime import Runtime
from leadroute.store.rulesets import (
    Activation,
    ActivationResult,
    RulesetVersionNotFound,
    StoredRuleset,
    activate_version,
    active_activation,
    check_file_version,
    check_known_pools,
    get_stored,
    list_versions,
    load_stored_ruleset,
    rollback,
    store_ruleset,
    version_status,
)
from leadroute.structs import FrozenStruct, Struct

__all__ = [
    "YAML_TYPES",
    "ActivationAnswer",
    "ActivationView",
    "BadRequestField",
    "RollbackIn",
    "RuleFile",
    "RulesetSummary",
    "RulesetTestsFailed",
    "Uploaded",
    "Validation",
    "VersionDetail",
    "VersionList",
    "VersionView",
    "activate",
    "active_summary",
    "parse_rollback",
    "roll_back",
    "upload",
    "validate",
    "version_detail",
    "versions",
]

YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain"})
"""Content types an upload may have (none at all is taken as YAML too)."""


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


class BadRequestField(InvalidBody):
    """A request field is malformed (a 400, where :class:`InvalidBody` is a 422)."""

    status = 400


# -- what the routes take ----------------------------------------------------------------------


class RuleFile(FrozenStruct, frozen=True, kw_only=True):
    """A rule file as a request carries it: the raw body, its media type and its file name."""

    body: bytes
    media: str
    """The content type without parameters, lower case ("" when none was sent)."""
    name: str
    """From ``X-Ruleset-Name`` (a bare file name), ``uploaded.yaml`` by default."""


class RollbackIn(FrozenStruct, frozen=True, kw_only=True):
    """``POST /v1/rulesets/rollback`` body (optional): the stored version to return to."""

    version: Annotated[int, msgspec.Meta(ge=1)] | None = None


_ROLLBACK = msgspec.json.Decoder(RollbackIn)


def parse_rollback(body: bytes) -> RollbackIn:
    """The rollback body; an empty one means "the previous version". Bad ones are a 400."""
    if not body.strip():
        return RollbackIn()
    try:
        return _ROLLBACK.decode(body)
    except msgspec.ValidationError as exc:
        raise BadRequestField.from_validation(exc) from None
    except msgspec.DecodeError as exc:
        raise BadRequestField("body", f"not valid JSON: {exc}") from None


# -- what the routes answer --------------------------------------------------------------------


class RulesetSummary(Struct, kw_only=True):
    """The ruleset this instance runs: version, checksum and size."""

    version: int
    sha256: str
    description: str | None
    path: str
    scoring_rules: int
    qualification_rules: int
    routing_rules: int


class ActivationView(Struct, kw_only=True):
    """One activation: which version became active, how, by whom and when."""

    version: int
    sha256: str
    action: str
    """``start``, ``activate``, ``rollback`` or ``watch``."""
    by: str | None
    at: datetime


class VersionView(Struct, kw_only=True):
    """A stored version's metadata."""

    version: int
    sha256: str
    description: str | None
    status: str
    """``draft`` (uploaded, never active) or ``published``."""
    path: str | None
    created_at: datetime
    created_by: str | None
    published_at: datetime | None
    published_by: str | None


class ListedVersion(VersionView, kw_only=True):
    """A row of the version list."""

    active: bool
    first_activated_at: datetime | None
    last_activated_at: datetime | None


class VersionList(Struct, kw_only=True):
    """Every stored version, newest first, and the fleet's active one."""

    active: ActivationView | None
    versions: list[ListedVersion]


class HistoryEntry(Struct, kw_only=True):
    """One activation of a version (the version is the one shown)."""

    action: str
    by: str | None
    at: datetime


class VersionDetail(VersionView, kw_only=True):
    """One stored version with its activations and its YAML source."""

    active: bool
    activations: list[HistoryEntry]
    source: str | None


class TestPassed(Struct, kw_only=True):
    name: str
    passed: bool


class TestOutcome(Struct, kw_only=True):
    name: str
    passed: bool
    diffs: list[str]
    """What differs from the test's expectation (empty when it passes)."""


class Uploaded(VersionView, kw_only=True):
    """The stored version; ``created`` false when the same content was already stored."""

    created: bool
    tests: list[TestPassed]


class ActivationAnswer(Struct, kw_only=True):
    """What an activation or rollback did, and the version this instance runs now."""

    active: ActivationView
    previous: ActivationView | None
    changed: bool
    """False when the version was already active (nothing changed)."""
    instance_version: int


class Validation(Struct, kw_only=True):
    """A dry run of an upload: whether it would be stored, and its tests."""

    version: int
    sha256: str
    version_status: Literal["new", "stored", "conflict"]
    """An upload would store a ``new`` version, find it ``stored`` with this content, or be
    refused (``conflict``: bump the version)."""
    version_message: str | None
    tests: list[TestOutcome]
    passed: bool


def _version(stored: StoredRuleset) -> dict[str, Any]:
    """The :class:`VersionView` fields of ``stored`` (each answer about a version starts with them)."""
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


def _activation(activation: Activation) -> ActivationView:
    return ActivationView(
        version=activation.version,
        sha256=activation.sha256,
        action=activation.action,
        by=activation.actor,
        at=activation.activated_at,
    )


def _answer(result: ActivationResult, rt: Runtime) -> ActivationAnswer:
    return ActivationAnswer(
        active=_activation(result.active),
        previous=_activation(result.previous) if result.previous is not None else None,
        changed=result.changed,
        instance_version=rt.rules.ruleset.version,
    )


# -- the routes --------------------------------------------------------------------------------


def active_summary(rt: Runtime) -> RulesetSummary:
    """Version, checksum and size of the ruleset this instance runs."""
    rs = rt.rules.ruleset
    return RulesetSummary(
        version=rs.version,
        sha256=rs.sha256,
        description=rs.description,
        path=str(rs.path),
        scoring_rules=len(rs.scoring_rules),
        qualification_rules=len(rs.qualification_rules),
        routing_rules=len(rs.routing_rules),
    )


async def versions(rt: Runtime) -> VersionList:
    """Every stored version, newest first, with when it was active and whether it is now."""
    async with rt.db.acquire() as conn:
        stored = await list_versions(conn)
        active = await active_activation(conn)
    return VersionList(
        active=_activation(active) if active is not None else None,
        versions=[
            ListedVersion(
                **_version(v.ruleset),
                active=v.active,
                first_activated_at=v.first_activated_at,
                last_activated_at=v.last_activated_at,
            )
            for v in stored
        ],
    )


async def version_detail(rt: Runtime, version: int) -> VersionDetail:
    """One stored version with its source and every activation of it; 404 when not stored."""
    async with rt.db.acquire() as conn:
        stored, history = await get_stored(conn, version)
        active = await active_activation(conn)
    return VersionDetail(
        **_version(stored),
        active=active is not None and active.ruleset_id == stored.id,
        activations=[HistoryEntry(action=h["action"], by=h["actor"], at=h["activated_at"]) for h in history],
        source=stored.source,
    )


def _ruleset_of(file: RuleFile) -> Ruleset:
    """An uploaded rule file, strictly: YAML media type, UTF-8 text, a ruleset that loads."""
    if file.media and file.media not in YAML_TYPES:
        raise UnsupportedRulesetType(file.media)
    try:
        text = file.body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequestField("body", "the rule file is not UTF-8 text") from None
    return parse_ruleset(text, path=Path(file.name))


async def upload(rt: Runtime, file: RuleFile, actor: str | None) -> Uploaded:
    """Store a rule file as a draft after it loads, its version is free or holds this content,
    its pools exist and its tests pass (each refusal a problem naming the rule, line or test)."""
    ruleset = _ruleset_of(file)
    async with rt.db.acquire() as conn:
        await check_file_version(conn, ruleset)
        await check_known_pools(conn, ruleset)
        outcomes = run_ruleset_tests(ruleset)
        failed = [(o.name, o.diffs) for o in outcomes if not o.passed]
        if failed:
            raise RulesetTestsFailed(ruleset, failed)
        stored, created = await store_ruleset(conn, ruleset, status="draft", actor=actor or "api")
    return Uploaded(
        **_version(stored),
        created=created,
        tests=[TestPassed(name=o.name, passed=o.passed) for o in outcomes],
    )


async def activate(rt: Runtime, version: int, actor: str | None) -> ActivationAnswer:
    """Make ``version`` active fleet-wide (its pools checked again), and on this instance now."""
    async with rt.db.acquire() as conn:
        loaded = await load_stored_ruleset(conn, version)
        if loaded is None:
            raise RulesetVersionNotFound(version)
        await check_known_pools(conn, loaded[0])
        result = await activate_version(conn, version, actor=actor or "api")
    if rt.rulesets is not None:
        rt.rulesets.remember(loaded[1], loaded[0])  # parsed once: the switch below reuses it
        await rt.rulesets.refresh()
    return _answer(result, rt)


async def roll_back(rt: Runtime, request: RollbackIn | None, actor: str | None) -> ActivationAnswer:
    """Return to the version active before the current one, or to ``request.version``."""
    async with rt.db.acquire() as conn:
        result = await rollback(conn, request.version if request else None, actor=actor or "api")
    if rt.rulesets is not None:
        await rt.rulesets.refresh()
    return _answer(result, rt)


async def validate(rt: Runtime, file: RuleFile) -> Validation:
    """Everything an upload checks, without storing: loads, pools, version, tests."""
    ruleset = parse_ruleset(file.body.decode("utf-8", errors="replace"), path=Path(file.name))
    async with rt.db.acquire() as conn:
        await check_known_pools(conn, ruleset)
        status, message = await version_status(conn, ruleset)
    outcomes = run_ruleset_tests(ruleset)
    return Validation(
        version=ruleset.version,
        sha256=ruleset.sha256,
        version_status=status,
        version_message=message,
        tests=[TestOutcome(name=o.name, passed=o.passed, diffs=o.diffs) for o in outcomes],
        passed=all(o.passed for o in outcomes) and status != "conflict",
    )
