"""``leadroute rules publish|activate|rollback|list``: ruleset versions from the command line.

They work on ``LEADROUTE_DATABASE_URL`` (embedded servers when it is unset). Activation and
rollback commit an activation row and ``NOTIFY leadroute_rulesets`` together, so every running
instance on that database switches within a second.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg

from leadroute.config import Settings
from leadroute.rules import Ruleset, RulesetError, load_rules_path, run_ruleset_tests
from leadroute.rules.evaluator import evaluator_for
from leadroute.store.db import connect
from leadroute.store.migrate import migrate
from leadroute.store.rulesets import (
    ActivationResult,
    RulesetVersionConflict,
    RulesetVersionNotFound,
    StoredVersion,
    activate_version,
    active_activation,
    check_file_version,
    check_known_pools,
    list_versions,
    load_stored_ruleset,
    publish_and_activate,
    rollback,
    store_ruleset,
)

if TYPE_CHECKING:
    from leadroute.embedded import EmbeddedServers

__all__ = [
    "check_serve_version",
    "rules_activate",
    "rules_list",
    "rules_publish",
    "rules_rollback",
    "stored_version_check",
]

log = logging.getLogger("leadroute")

Servers = Callable[[Settings], AbstractContextManager[Settings]]


def _cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _run(settings: Settings, servers: Servers, job: Callable[[asyncpg.Connection], Awaitable[int]]) -> int:
    async def run(dsn: str | None) -> int:
        assert dsn is not None  # servers() sets it
        conn = await connect(dsn)
        try:
            await migrate(conn)
            return await job(conn)
        finally:
            await conn.close()

    with servers(settings) as live:
        return asyncio.run(run(live.database_url))


async def _pool_problems(conn: asyncpg.Connection, ruleset: Ruleset) -> RulesetError | None:
    """The refusal :func:`check_known_pools` raises (the API answers it as a 422), to print."""
    try:
        await check_known_pools(conn, ruleset)
    except RulesetError as exc:
        return exc
    return None


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "-"


def _switched(result: ActivationResult) -> str:
    active = result.active
    if not result.changed:
        return f"version {active.version} is already active; nothing changed"
    was = f" (was version {result.previous.version})" if result.previous is not None else ""
    return (
        f"version {active.version} (sha256 {active.sha256[:12]}) is active{was}; "
        "running instances switch within a second"
    )


def rules_publish(settings: Settings, args: argparse.Namespace, *, servers: Servers) -> int:
    """Store a rule file as a published version after it loads, its pools exist and its tests pass."""
    path: Path = args.path or settings.rules_path
    try:
        ruleset = load_rules_path(path, evaluator=evaluator_for(settings.rules_evaluator))
    except RulesetError as exc:
        print(exc, file=sys.stderr)
        return 1
    outcomes = run_ruleset_tests(ruleset)
    failed = [o for o in outcomes if not o.passed]
    if failed:
        for outcome in failed:
            print(f"{ruleset.display_path}: test {outcome.name!r} fails:", file=sys.stderr)
            for diff in outcome.diffs:
                print(f"  {diff}", file=sys.stderr)
        print(f"not published: {len(failed)} of {len(outcomes)} test(s) fail", file=sys.stderr)
        return 1

    async def job(conn: asyncpg.Connection) -> int:
        await check_file_version(conn, ruleset)  # the clearer error before the pool check
        if problems := await _pool_problems(conn, ruleset):
            print(problems, file=sys.stderr)
            return 1
        who = _cli_actor()
        if args.activate:
            stored, result = await publish_and_activate(conn, ruleset, actor=who, action="activate")
            print(f"published version {stored.version} from {ruleset.display_path}")
            print(_switched(result))
            return 0
        stored, created = await store_ruleset(conn, ruleset, status="published", actor=who)
        if created:
            print(
                f"published version {stored.version} (sha256 {stored.sha256[:12]}) from "
                f"{ruleset.display_path}; activate it with `leadroute rules activate {stored.version}`"
            )
        else:
            print(f"version {stored.version} is already stored with this content ({stored.status})")
        return 0

    return _run(settings, servers, job)


def rules_activate(settings: Settings, args: argparse.Namespace, *, servers: Servers) -> int:
    """Activate a stored version on every instance."""
    version: int = args.version

    async def job(conn: asyncpg.Connection) -> int:
        loaded = await load_stored_ruleset(conn, version, evaluator=evaluator_for(settings.rules_evaluator))
        if loaded is None:
            raise RulesetVersionNotFound(version)
        if problems := await _pool_problems(conn, loaded[0]):
            print(problems, file=sys.stderr)
            return 1
        print(_switched(await activate_version(conn, version, actor=_cli_actor())))
        return 0

    return _run(settings, servers, job)


def rules_rollback(settings: Settings, args: argparse.Namespace, *, servers: Servers) -> int:
    """Re-activate the version active before the current one, or the given one."""

    async def job(conn: asyncpg.Connection) -> int:
        print(_switched(await rollback(conn, args.version, actor=_cli_actor())))
        return 0

    return _run(settings, servers, job)


def rules_list(settings: Settings, args: argparse.Namespace, *, servers: Servers) -> int:
    """Print the stored versions, newest first; ``*`` marks the active one."""

    async def job(conn: asyncpg.Connection) -> int:
        versions = await list_versions(conn)
        if not versions:
            print("no ruleset stored yet (the first `leadroute serve` stores its rules file)")
            return 0
        for line in _table(versions):
            print(line)
        return 0

    return _run(settings, servers, job)


def _table(versions: list[StoredVersion]) -> Iterator[str]:
    rows = [("", "VERSION", "STATUS", "SHA256", "STORED", "LAST ACTIVE", "DESCRIPTION")]
    for v in versions:
        r = v.ruleset
        rows.append(
            (
                "*" if v.active else "",
                str(r.version),
                r.status,
                r.sha256[:12],
                _when(r.loaded_at),
                _when(v.last_activated_at),
                (r.description or "").splitlines()[0][:50] if r.description else "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        yield "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()


async def check_serve_version(settings: Settings, ruleset: Ruleset) -> None:
    """Before ``serve`` starts: say loudly if the rules file changed under a stored version.

    The instances then run the last good (active stored) version: see
    :func:`leadroute.store.rulesets.start_ruleset`. Raises :class:`RulesetVersionConflict` only
    when there is no such version (nothing was ever activated), so the server refuses to start
    with the message, not a traceback.
    """
    assert settings.database_url is not None  # the caller's servers() set it
    conn = await connect(settings.database_url)
    try:
        try:
            await check_file_version(conn, ruleset)
        except RulesetVersionConflict as conflict:
            active = await active_activation(conn)
            if active is None:
                raise
            log.error(
                "RULES FILE REFUSED: %s. Serving the last good version, v%d (the active stored one), "
                "until a rules file with a new version is deployed; /health/ready says so meanwhile",
                conflict,
                active.version,
            )
    finally:
        await conn.close()


async def _version_against(dsn: str, ruleset: Ruleset, where: str) -> tuple[bool | None, str]:
    try:
        conn = await connect(dsn, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        return None, f"NOT CHECKED against the stored versions: cannot reach {where} ({type(exc).__name__})"
    try:
        stored = await check_file_version(conn, ruleset)
    except RulesetVersionConflict as exc:
        serve = "`leadroute serve` would keep running the last good version"
        return False, f"{exc.detail} (checked against {where}; {serve})"
    except asyncpg.UndefinedTableError:
        stored = False  # never migrated: nothing is stored yet
    finally:
        await conn.close()
    what = "stored with this content" if stored else "not stored yet (a new version)"
    return True, f"version {ruleset.version} is {what} in {where}"


def _running_embedded(data_dir: Path) -> EmbeddedServers | None:
    try:
        from leadroute.embedded import EmbeddedServers
    except ImportError:  # installed without the embedded servers (the container image)
        return None
    servers = EmbeddedServers(data_dir.resolve())
    return servers if servers.running_elsewhere() else None


def stored_version_check(settings: Settings, path: Path) -> tuple[bool | None, str]:
    """Compare the rules file at ``path`` with the stored versions: True (fine), False (its
    version is stored with other content: a changed file without a bump) or None (not checked).

    It uses ``LEADROUTE_DATABASE_URL``, else the embedded servers of a ``leadroute serve`` running
    on the data directory; it starts no servers (a check must be quick and leave nothing behind),
    so without either it says it could not check.
    """
    try:
        ruleset = load_rules_path(path, evaluator=evaluator_for(settings.rules_evaluator))
    except RulesetError:
        return None, "NOT CHECKED against the stored versions: the file does not load"
    if settings.database_url is not None:
        return asyncio.run(_version_against(settings.database_url, ruleset, "LEADROUTE_DATABASE_URL"))
    servers = _running_embedded(settings.data_dir)
    if servers is None:
        return None, (
            "NOT CHECKED against the stored versions: LEADROUTE_DATABASE_URL is not set and no "
            f"leadroute serve runs embedded servers in {settings.data_dir}; a version edited without "
            "a bump would only show at the next start"
        )
    where = f"the running embedded servers in {servers.data_dir}"
    return asyncio.run(_version_against(servers.database_url, ruleset, where))
