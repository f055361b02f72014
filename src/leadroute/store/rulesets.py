"""Ruleset versions in PostgreSQL: stored sources, activations, and the rules that keep them honest.

A version number names one content forever: storing a ruleset whose version is already stored
with other content raises :class:`RulesetVersionConflict` ("bump the version"). Every switch of the
active ruleset is a row in ``ruleset_activations``; the active ruleset is the latest row. Writers
take one advisory lock, so two activations never interleave, and send ``NOTIFY
leadroute_rulesets`` in the same transaction, so every instance hears of a switch once it is
committed (:mod:`leadroute.rulesets.sync` listens).

Identity: a stored version keeps the sha256 it was stored with. Its source is parsed again when
it is loaded; if a newer leadroute computes another canonical checksum for the same text, the
stored one wins (same text, same version: same ruleset), so an upgrade never turns a stored
version into a "changed file".

Why one module of ~480 lines: every writer (store, activate, rollback, start-up adoption) takes
the same lock and shares ``_store_locked``/``_activate_locked``, and the errors and records
defined first are exactly what those functions raise and return.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import asyncpg
import msgspec

from leadroute.errors import ClientError
from leadroute.rules import MAX_VERSION, RuleProblem, Ruleset, RulesetError, check_pools, parse_ruleset
from leadroute.rules.evaluator import Evaluator
from leadroute.store.db import Connection
from leadroute.store.queries import QUERIES

__all__ = [
    "NOTIFY_CHANNEL",
    "Activation",
    "ActivationResult",
    "NothingToRollBack",
    "RulesetNotPublished",
    "RulesetVersionConflict",
    "RulesetVersionNotFound",
    "StartupRuleset",
    "StoredRuleset",
    "StoredVersion",
    "activate_version",
    "active_activation",
    "adopt_startup_ruleset",
    "check_file_version",
    "check_known_pools",
    "get_stored",
    "list_versions",
    "load_ruleset_by_id",
    "load_stored_ruleset",
    "publish_and_activate",
    "rollback",
    "start_ruleset",
    "store_ruleset",
    "unknown_pools",
    "version_status",
]

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "leadroute_rulesets"
"""The LISTEN/NOTIFY channel announcing a new activation (payload: JSON with ids and version)."""

Status = Literal["draft", "published"]
Action = Literal["start", "activate", "rollback", "watch"]


class RulesetVersionConflict(ClientError):
    """A ruleset's version is already stored with different content."""

    status = 409
    kind = "ruleset-version-conflict"
    title = "Ruleset version already used for other content"

    def __init__(self, file: str, version: int, stored_sha: str, new_sha: str, next_version: int) -> None:
        super().__init__(
            f"{file}: version {version} is already stored with different content (stored sha256 "
            f"{stored_sha[:12]}, this file {new_sha[:12]}); a stored version never changes — bump "
            f"'version:' to {next_version} (the next free number) and load it again",
            errors=[
                {
                    "field": "version",
                    "file": file,
                    "message": f"version {version} already names other content; use {next_version}",
                }
            ],
        )
        self.file = file
        self.version = version


class RulesetVersionNotFound(ClientError):
    status = 404
    kind = "ruleset-version-not-found"
    title = "No such ruleset version"

    def __init__(self, version: int) -> None:
        super().__init__(
            f"no ruleset version {version} is stored; upload it first (POST /v1/rulesets or "
            "`leadroute rules publish FILE`)",
            errors=[{"field": "version", "message": f"version {version} is not stored"}],
        )


class NothingToRollBack(ClientError):
    status = 409
    kind = "nothing-to-roll-back"
    title = "Nothing to roll back to"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, errors=[{"field": "version", "message": detail}])


class RulesetNotPublished(ClientError):
    status = 409
    kind = "ruleset-not-published"
    title = "Ruleset version was never published"

    def __init__(self, version: int) -> None:
        super().__init__(
            f"version {version} is a draft that was never active; rollback only returns to versions "
            f"that were live — activate it instead (POST /v1/rulesets/{version}/activate)",
            errors=[{"field": "version", "message": f"version {version} is a draft"}],
        )


class StoredRuleset(msgspec.Struct, frozen=True, kw_only=True):
    """One stored version, without its source unless asked for."""

    id: int
    version: int
    sha256: str
    description: str | None
    path: str | None
    status: str
    loaded_at: datetime
    created_by: str | None
    published_at: datetime | None
    published_by: str | None
    source: str | None = None


class StoredVersion(msgspec.Struct, frozen=True, kw_only=True):
    """A row of the version list: the stored ruleset, when it was active, and whether it is now."""

    ruleset: StoredRuleset
    first_activated_at: datetime | None
    last_activated_at: datetime | None
    active: bool


class Activation(msgspec.Struct, frozen=True, kw_only=True):
    """One row of ``ruleset_activations`` with the version it made active."""

    id: int
    ruleset_id: int
    version: int
    sha256: str
    action: str
    actor: str | None
    activated_at: datetime
    previous_id: int | None


class ActivationResult(msgspec.Struct, frozen=True, kw_only=True):
    """What an activate or rollback did: ``changed`` False when the version was already active."""

    active: Activation
    previous: Activation | None
    changed: bool


def _stored(row: asyncpg.Record, *, with_source: bool = False) -> StoredRuleset:
    return StoredRuleset(
        id=row["id"],
        version=row["version"],
        sha256=row["sha256"],
        description=row["description"],
        path=row["path"],
        status=row["status"],
        loaded_at=row["loaded_at"],
        created_by=row["created_by"],
        published_at=row["published_at"],
        published_by=row["published_by"],
        source=row["source"] if with_source else None,
    )


def _activation(row: asyncpg.Record | None) -> Activation | None:
    if row is None:
        return None
    return Activation(
        id=row["activation_id"],
        ruleset_id=row["ruleset_id"],
        version=row["version"],
        sha256=row["sha256"],
        action=row["action"],
        actor=row["actor"],
        activated_at=row["activated_at"],
        previous_id=row["previous_id"],
    )


def _same_content(row: asyncpg.Record, ruleset: Ruleset) -> bool:
    return bool(row["sha256"] == ruleset.sha256 or row["source"] == ruleset.source)


def _ruleset_from_row(row: asyncpg.Record, evaluator: Evaluator | None) -> Ruleset:
    """Parse a stored source; the stored checksum stays the version's identity."""
    path = Path(row["path"]) if row["path"] else Path(f"stored-v{row['version']}.yaml")
    ruleset = parse_ruleset(row["source"], path=path, evaluator=evaluator)
    if ruleset.sha256 != row["sha256"]:
        ruleset = dataclasses.replace(ruleset, sha256=row["sha256"])
    return ruleset


# -- reading ---------------------------------------------------------------------------------


async def _row_of_version(conn: Connection, version: int) -> asyncpg.Record | None:
    """The stored row of ``version``; None when not stored (or beyond what the column holds)."""
    if not -(2**31) <= version <= MAX_VERSION:  # a number a client typed: not stored, not a 500
        return None
    row: asyncpg.Record | None = await conn.fetchrow(QUERIES["ruleset_by_version"], version)
    return row


async def load_stored_ruleset(
    conn: Connection, version: int, *, evaluator: Evaluator | None = None
) -> tuple[Ruleset, int] | None:
    """The stored ruleset of ``version``, parsed and compiled, and its id; None if not stored.

    Raises :class:`leadroute.rules.RulesetError` if the stored source no longer loads.
    ``evaluator``: as for :func:`leadroute.rules.parse_ruleset`.
    """
    row = await _row_of_version(conn, version)
    if row is None:
        return None
    return _ruleset_from_row(row, evaluator), row["id"]


async def load_ruleset_by_id(
    conn: Connection, ruleset_id: int, *, evaluator: Evaluator | None = None
) -> tuple[Ruleset, int] | None:
    """Like :func:`load_stored_ruleset`, by row id (what activations and decisions point at)."""
    row = await conn.fetchrow(QUERIES["ruleset_by_id"], ruleset_id)
    if row is None:
        return None
    return _ruleset_from_row(row, evaluator), row["id"]


async def unknown_pools(conn: Connection, ruleset: Ruleset) -> list[RuleProblem]:
    """A problem for each routing rule of ``ruleset`` naming a pool that is not in the database."""
    known = {r["id"] for r in await conn.fetch(QUERIES["pool_ids"])}
    return check_pools(ruleset, known)


async def check_known_pools(conn: Connection, ruleset: Ruleset) -> None:
    """Raise :class:`RulesetError` naming each routing rule whose pool is not in the database."""
    problems = await unknown_pools(conn, ruleset)
    if problems:
        raise RulesetError(problems)


async def active_activation(conn: Connection) -> Activation | None:
    """The latest activation (what every instance should be running); None before the first."""
    return _activation(await conn.fetchrow(QUERIES["ruleset_active"]))


async def list_versions(conn: Connection) -> list[StoredVersion]:
    """Every stored version, newest first."""
    active = await active_activation(conn)
    return [
        StoredVersion(
            ruleset=_stored(row),
            first_activated_at=row["first_activated_at"],
            last_activated_at=row["last_activated_at"],
            active=active is not None and active.ruleset_id == row["id"],
        )
        for row in await conn.fetch(QUERIES["ruleset_list"])
    ]


async def get_stored(conn: Connection, version: int) -> tuple[StoredRuleset, list[dict[str, Any]]]:
    """One stored version with its source, and its activation history (oldest first)."""
    row = await _row_of_version(conn, version)
    if row is None:
        raise RulesetVersionNotFound(version)
    history = [dict(r) for r in await conn.fetch(QUERIES["ruleset_activations_of"], row["id"])]
    return _stored(row, with_source=True), history


# -- writing ---------------------------------------------------------------------------------


async def _conflict(conn: Connection, row: asyncpg.Record, ruleset: Ruleset) -> RulesetVersionConflict:
    highest: int = await conn.fetchval(QUERIES["ruleset_max_version"])
    return RulesetVersionConflict(
        ruleset.display_path,
        ruleset.version,
        row["sha256"],
        ruleset.sha256,
        max(highest, ruleset.version) + 1,
    )


async def _store_locked(
    conn: Connection, ruleset: Ruleset, *, status: Status, actor: str | None
) -> tuple[StoredRuleset, bool]:
    row = await _row_of_version(conn, ruleset.version)
    if row is not None:
        if not _same_content(row, ruleset):
            raise await _conflict(conn, row, ruleset)
        if status == "published" and row["status"] == "draft":
            await conn.execute(QUERIES["ruleset_publish"], row["id"], actor)
            return await _stored_by_id(conn, row["id"]), False
        return _stored(row), False
    ruleset_id = await conn.fetchval(
        QUERIES["ruleset_insert"],
        ruleset.version,
        ruleset.sha256,
        ruleset.description,
        ruleset.source,
        str(ruleset.path) if ruleset.path is not None else None,
        actor,
        status,
    )
    return await _stored_by_id(conn, ruleset_id), True


async def _stored_by_id(conn: Connection, ruleset_id: int) -> StoredRuleset:
    row = await conn.fetchrow(QUERIES["ruleset_by_id"], ruleset_id)
    assert row is not None
    return _stored(row)


async def store_ruleset(
    conn: Connection, ruleset: Ruleset, *, status: Status, actor: str | None
) -> tuple[StoredRuleset, bool]:
    """Store ``ruleset`` (once per version); True when it was new.

    Storing the same content again is a no-op (a draft stored again as ``published`` becomes
    published). Other content under a stored version raises :class:`RulesetVersionConflict`.
    """
    async with conn.transaction():
        await conn.execute(QUERIES["ruleset_lock"])
        return await _store_locked(conn, ruleset, status=status, actor=actor)


async def check_file_version(conn: Connection, ruleset: Ruleset) -> bool:
    """Raise :class:`RulesetVersionConflict` if ``ruleset``'s version is stored with other content;
    else whether it is stored (True) or new (False)."""
    row = await _row_of_version(conn, ruleset.version)
    if row is not None and not _same_content(row, ruleset):
        raise await _conflict(conn, row, ruleset)
    return row is not None


async def version_status(
    conn: Connection, ruleset: Ruleset
) -> tuple[Literal["new", "stored", "conflict"], str | None]:
    """What storing ``ruleset`` would do: store a ``new`` version, find it already ``stored`` with
    this content, or be refused (``conflict``, with the reason); writes nothing."""
    try:
        await check_file_version(conn, ruleset)
    except RulesetVersionConflict as exc:
        return "conflict", exc.detail
    return ("stored" if await _row_of_version(conn, ruleset.version) else "new"), None


async def _record_activation(
    conn: Connection,
    ruleset_id: int,
    *,
    action: Action,
    actor: str | None,
    previous_id: int | None,
) -> Activation:
    await conn.execute(QUERIES["ruleset_publish"], ruleset_id, actor)
    await conn.fetchrow(QUERIES["ruleset_activation_insert"], ruleset_id, action, actor, previous_id)
    active = _activation(await conn.fetchrow(QUERIES["ruleset_active"]))
    assert active is not None
    payload = msgspec.json.encode(
        {"activation_id": active.id, "ruleset_id": ruleset_id, "version": active.version}
    ).decode()
    await conn.execute(QUERIES["ruleset_notify"], payload)
    return active


async def _activate_locked(
    conn: Connection, ruleset_id: int, *, action: Action, actor: str | None
) -> ActivationResult:
    current = await active_activation(conn)
    if current is not None and current.ruleset_id == ruleset_id:
        return ActivationResult(active=current, previous=None, changed=False)
    active = await _record_activation(
        conn, ruleset_id, action=action, actor=actor, previous_id=current.id if current else None
    )
    return ActivationResult(active=active, previous=current, changed=True)


async def activate_version(
    conn: Connection, version: int, *, actor: str | None, action: Action = "activate"
) -> ActivationResult:
    """Make ``version`` the fleet's active ruleset (publishing it if it was a draft).

    One transaction: the activation row and the NOTIFY commit together. Activating the version
    that is already active changes nothing (``changed`` False).
    """
    async with conn.transaction():
        await conn.execute(QUERIES["ruleset_lock"])
        row = await _row_of_version(conn, version)
        if row is None:
            raise RulesetVersionNotFound(version)
        return await _activate_locked(conn, row["id"], action=action, actor=actor)


async def publish_and_activate(
    conn: Connection, ruleset: Ruleset, *, actor: str | None, action: Action
) -> tuple[StoredRuleset, ActivationResult]:
    """Store ``ruleset`` as published if new, and activate it; one transaction."""
    async with conn.transaction():
        await conn.execute(QUERIES["ruleset_lock"])
        stored, _ = await _store_locked(conn, ruleset, status="published", actor=actor)
        return stored, await _activate_locked(conn, stored.id, action=action, actor=actor)


async def rollback(conn: Connection, version: int | None, *, actor: str | None) -> ActivationResult:
    """Re-activate the version that was active before the current one, or ``version``.

    Without a version, rollback walks back: after v1 → v2 → v3, a rollback activates v2 and a
    second one v1 (not v3 again). With a version, it must have been published (live once).
    """
    async with conn.transaction():
        await conn.execute(QUERIES["ruleset_lock"])
        current = await active_activation(conn)
        if version is None:
            if current is None or current.previous_id is None:
                raise NothingToRollBack(
                    "no earlier activation to roll back to"
                    + (f"; version {current.version} is the first one activated" if current else "")
                )
            target = _activation(
                await conn.fetchrow(QUERIES["ruleset_activation_by_id"], current.previous_id)
            )
            assert target is not None
            active = await _record_activation(
                conn, target.ruleset_id, action="rollback", actor=actor, previous_id=target.previous_id
            )
            return ActivationResult(active=active, previous=current, changed=True)
        row = await _row_of_version(conn, version)
        if row is None:
            raise RulesetVersionNotFound(version)
        if row["status"] != "published":
            raise RulesetNotPublished(version)
        return await _activate_locked(conn, row["id"], action="rollback", actor=actor)


async def adopt_startup_ruleset(
    conn: Connection, ruleset: Ruleset, *, actor: str | None
) -> tuple[Ruleset, int]:
    """Decide what an instance starting with ``ruleset`` (its rules file) runs; returns (ruleset, id).

    - a version never stored: it is stored as published and activated (a deploy of a new file);
    - a version stored with the same content: nothing changes, so an activation or rollback made
      while the instance was down survives its restart (the first instance ever activates it);
    - a version stored with other content: :class:`RulesetVersionConflict` (the instance must
      not start).

    The instance then runs the fleet's active version, parsed from its stored source when it is
    not the file's.
    """
    async with conn.transaction():
        await conn.execute(QUERIES["ruleset_lock"])
        row = await _row_of_version(conn, ruleset.version)
        if row is not None and not _same_content(row, ruleset):
            raise await _conflict(conn, row, ruleset)
        current = await active_activation(conn)
        if row is None or current is None:
            stored, _ = await _store_locked(conn, ruleset, status="published", actor=actor)
            result = await _activate_locked(conn, stored.id, action="start", actor=actor)
            current = result.active
            file_id = stored.id
        else:
            file_id = row["id"]
    if current.ruleset_id == file_id:
        if ruleset.sha256 != current.sha256:  # same text, checksum from an older leadroute
            ruleset = dataclasses.replace(ruleset, sha256=current.sha256)
        return ruleset, file_id
    try:
        loaded = await load_ruleset_by_id(conn, current.ruleset_id)
    except RulesetError as exc:
        # Stored under an older leadroute and no longer valid: serve the file rather than nothing.
        log.error(
            "the active ruleset v%d no longer loads; this instance runs its file's v%d instead:\n%s",
            current.version,
            ruleset.version,
            exc,
        )
        return ruleset, file_id
    assert loaded is not None  # activations reference stored rows
    return loaded


@dataclasses.dataclass(frozen=True, slots=True)
class StartupRuleset:
    """What an instance runs after start: the ruleset, its row id, and why not its file, if so."""

    ruleset: Ruleset
    id: int
    file_conflict: str | None = None
    """Set when the rules file changed under a stored version: the instance runs the last good
    (active stored) version instead, and says so in its log and ``/health/ready``."""


async def start_ruleset(conn: Connection, ruleset: Ruleset, *, actor: str | None) -> StartupRuleset:
    """:func:`adopt_startup_ruleset`, except that a rules file edited without a version bump
    does not stop the instance: it runs the fleet's active stored version, with an ERROR.

    A sales-ops typo must not become an outage. There is no last good version when nothing was
    ever activated, or when the active one no longer loads: then the conflict is raised.
    """
    try:
        running, ruleset_id = await adopt_startup_ruleset(conn, ruleset, actor=actor)
    except RulesetVersionConflict as conflict:
        active = await active_activation(conn)
        if active is None:
            log.error("not starting: %s", conflict)
            raise
        try:
            loaded = await load_ruleset_by_id(conn, active.ruleset_id)
        except RulesetError:
            log.error(
                "not starting: %s (and the active version v%d no longer loads)", conflict, active.version
            )
            raise conflict from None
        assert loaded is not None  # activations reference stored rows
        text = f"{conflict}. Serving the last good version, v{active.version} (the active stored one)."
        log.error("RULES FILE REFUSED: %s", text)
        return StartupRuleset(loaded[0], loaded[1], text)
    return StartupRuleset(running, ruleset_id)
