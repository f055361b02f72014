"""Keep one instance's ruleset in step with the fleet, and (opt-in) with its rules file.

Every instance runs the ruleset of the latest row of ``ruleset_activations``. It learns of a new
one three ways, all ending in :meth:`RulesetSync.refresh`:

- ``NOTIFY leadroute_rulesets``, sent by the activating transaction at commit, heard on a
  connection of its own (``LISTEN``): a switch reaches every instance in milliseconds;
- a poll of the active activation every ``LEADROUTE_RULESET_POLL_INTERVAL`` seconds, in case a
  notification was missed while the listening connection was down (the poll reconnects it);
- its own activate/rollback requests, which refresh before answering.

``refresh`` parses and compiles the new ruleset first and then replaces ``rt.rules`` in one
assignment, so a request sees the old ruleset or the new one, never half of either. Refreshes
run one at a time and always install what PostgreSQL says is active *now*, so two quick
activations cannot land out of order.

With ``LEADROUTE_WATCH_RULES=true`` the instance also re-reads ``LEADROUTE_RULES_PATH`` every
``LEADROUTE_WATCH_INTERVAL`` seconds. A changed file is loaded, its pools checked and its tests run;
only if all pass is it published and activated (fleet-wide, as above). Otherwise the failure is
logged and the last good version stays active.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
from pathlib import Path
from typing import Any

import asyncpg

from leadroute.outage import OUTAGES, dependency_down
from leadroute.rules import Ruleset, RulesetError, load_rules_path, run_ruleset_tests
from leadroute.rules._loader import rule_files
from leadroute.rules.evaluator import evaluator_for
from leadroute.runtime import ActiveRuleset, Runtime
from leadroute.store.db import connect
from leadroute.store.rulesets import (
    NOTIFY_CHANNEL,
    RulesetVersionConflict,
    active_activation,
    load_ruleset_by_id,
    publish_and_activate,
    unknown_pools,
)

__all__ = ["RulesetSync", "actor", "rules_digest"]

log = logging.getLogger(__name__)


def actor(kind: str) -> str:
    """Who did it, as recorded on a version or activation: ``kind@host:pid``."""
    return f"{kind}@{socket.gethostname()}:{os.getpid()}"


def rules_digest(path: Path) -> str:
    """A digest of the rule file(s) at ``path`` (a file, or the YAML files of a directory).

    Contents, not mtimes: a rewrite within the file system's timestamp resolution still counts.
    """
    digest = hashlib.sha256()
    try:
        for file in rule_files(path):  # the files load_rules_path reads
            digest.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
    except OSError as exc:
        digest.update(f"unreadable: {type(exc).__name__}".encode())
    return digest.hexdigest()


class RulesetSync:
    """The listener, poll and (opt-in) watch of one instance; ``start`` in the lifespan, ``stop`` after."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        settings = rt.settings
        assert settings.database_url is not None
        self._dsn = settings.database_url
        self._poll_interval = settings.ruleset_poll_interval
        self._watch_path = settings.rules_path if settings.watch_rules else None
        self._watch_interval = settings.watch_interval
        self._evaluator = evaluator_for(settings.rules_evaluator)
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._listener: asyncpg.Connection[Any] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._cache: dict[int, Ruleset] = {rt.rules.id: rt.rules.ruleset}
        self._broken: set[int] = set()
        """Stored rulesets that failed to load here: logged once, not every poll."""
        self._file_digest: str | None = None

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen, then catch up once (an activation may have landed while we started)."""
        await self._ensure_listener()
        await self.refresh()
        self._tasks.append(asyncio.create_task(self._follow(), name="ruleset-follow"))
        if self._watch_path is not None:
            self._file_digest = rules_digest(self._watch_path)
            self._tasks.append(asyncio.create_task(self._watch(), name="ruleset-watch"))
            log.info("watching %s for rule changes every %gs", self._watch_path, self._watch_interval)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._listener is not None:
            listener, self._listener = self._listener, None
            with contextlib.suppress(Exception):
                await listener.close(timeout=2)

    @property
    def listening(self) -> bool:
        """True while the LISTEN connection is up."""
        return self._listener is not None and not self._listener.is_closed()

    @property
    def listener_pid(self) -> int | None:
        """The PostgreSQL backend pid of the LISTEN connection (None while it is down)."""
        return self._listener.get_server_pid() if self.listening and self._listener is not None else None

    async def _ensure_listener(self) -> None:
        if self.listening:
            return
        if self._listener is not None:
            self._listener.terminate()
            self._listener = None
        try:
            conn = await connect(self._dsn, timeout=5)
            await conn.add_listener(NOTIFY_CHANNEL, self._notified)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            if OUTAGES.is_down("postgres"):
                return  # said once by the outage log
            log.warning(
                "cannot LISTEN for ruleset activations (%s); polling every %gs until it works",
                type(exc).__name__,
                self._poll_interval,
            )
            return
        conn.add_termination_listener(self._lost)
        self._listener = conn

    def _notified(self, conn: object, pid: int, channel: str, payload: object) -> None:
        self._wake.set()

    def _lost(self, conn: object) -> None:
        if conn is not self._listener:  # closed by stop()
            return
        log.warning("the ruleset LISTEN connection closed; reconnecting")
        self._wake.set()

    # -- following the fleet ----------------------------------------------------------------

    def remember(self, ruleset_id: int, ruleset: Ruleset) -> None:
        """A stored ruleset already parsed by the caller: a switch to it will not parse it again."""
        self._cache.setdefault(ruleset_id, ruleset)

    async def _follow(self) -> None:
        """Refresh on every notification, and at least every poll interval."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._poll_interval)
            self._wake.clear()
            try:
                await self._ensure_listener()
                await self.refresh()
            except Exception as exc:
                if (down := dependency_down(exc)) is not None:  # one line per outage
                    OUTAGES.down(down, exc, "the ruleset refresh")
                    continue
                log.exception("ruleset refresh failed; retrying in %gs", self._poll_interval)

    async def refresh(self) -> bool:
        """Install the fleet's active ruleset if this instance runs another one; True if it switched."""
        async with self._lock:
            async with self.rt.db.acquire() as conn:
                active = await active_activation(conn)
                if active is None or active.ruleset_id == self.rt.rules.id:
                    return False
                ruleset = self._cache.get(active.ruleset_id)
                if ruleset is None:
                    if active.ruleset_id in self._broken:
                        return False
                    try:
                        loaded = await load_ruleset_by_id(conn, active.ruleset_id, evaluator=self._evaluator)
                    except RulesetError as exc:
                        self._broken.add(active.ruleset_id)
                        log.error(
                            "ruleset v%d was activated but does not load here; v%d stays active:\n%s",
                            active.version,
                            self.rt.rules.ruleset.version,
                            exc,
                        )
                        return False
                    assert loaded is not None
                    ruleset = loaded[0]
                    self._cache[active.ruleset_id] = ruleset
            previous = self.rt.rules.ruleset
            self.rt.rules = ActiveRuleset(ruleset, active.ruleset_id)  # the switch: one reference
            log.info(
                "ruleset v%d (sha256 %s) active, was v%d (%s)",
                ruleset.version,
                ruleset.sha256[:12],
                previous.version,
                active.action,
            )
            return True

    # -- watching the rules file ------------------------------------------------------------

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._watch_interval)
            try:
                await self.check_rules_file()
            except Exception:
                log.exception("checking the rules file failed; the active ruleset stays")

    async def check_rules_file(self) -> bool:
        """If the rules file changed since last seen, try it; True if it became active."""
        assert self._watch_path is not None
        digest = rules_digest(self._watch_path)
        if digest == self._file_digest:
            return False
        self._file_digest = digest
        return await self.adopt_file(self._watch_path)

    async def adopt_file(self, path: Path) -> bool:
        """Load ``path``, check its pools, run its tests; publish and activate it if all pass.

        A file edited by hand is what its editor wants live: a version already stored with the
        same content is re-activated too. Failures are logged (file positions, rule ids and test
        names: never lead data) and change nothing.
        """
        current = self.rt.rules.ruleset.version
        try:
            ruleset = load_rules_path(path, evaluator=self._evaluator)
        except RulesetError as exc:
            log.error("rules file %s changed but does not load; v%d stays active:\n%s", path, current, exc)
            return False
        async with self.rt.db.acquire() as conn:
            problems = await unknown_pools(conn, ruleset)
        if problems:
            log.error(
                "rules file %s v%d names unknown pools; v%d stays active:\n%s",
                path,
                ruleset.version,
                current,
                RulesetError(problems),
            )
            return False
        failed = [o.name for o in run_ruleset_tests(ruleset) if not o.passed]
        if failed:
            log.error(
                "rules file %s v%d: %d test(s) fail (%s; run `leadroute rules test` for the diffs); "
                "v%d stays active",
                path,
                ruleset.version,
                len(failed),
                ", ".join(repr(name) for name in failed),
                current,
            )
            return False
        try:
            async with self.rt.db.acquire() as conn:
                stored, result = await publish_and_activate(
                    conn, ruleset, actor=actor("watch"), action="watch"
                )
        except RulesetVersionConflict as exc:
            log.error("%s; v%d stays active", exc, current)
            return False
        self._cache.setdefault(stored.id, ruleset)
        await self.refresh()
        if result.changed:
            log.info("rules file %s v%d published and activated", path, ruleset.version)
        return result.changed
