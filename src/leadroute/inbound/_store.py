"""Mapping versions in PostgreSQL, and which version of each mapping an instance runs.

At start-up every file of ``LEADROUTE_MAPPINGS_PATH`` is loaded (its tests run) and compared with
the stored versions of its name (``inbound_mappings``, migration 0013), under one advisory lock:

- the file loads and its version is new: the file runs, stored as the active version;
- it loads, with the version and content of a stored one: the file runs, made active again;
- it loads, but its version is stored with other content: the active stored version runs,
  with an ERROR saying to bump the version;
- it does not load (syntax, unknown field, failing test): the active stored version runs, with
  an ERROR naming file:line.

A bad file therefore never replaces the active mapping. Only when no version of that name was
ever stored does a bad file stop the start (there is nothing good to run).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from leadroute.errors import LeadrouteError, NotFound
from leadroute.inbound._format import Mapping
from leadroute.inbound._load import load_mappings, parse_mapping
from leadroute.store.db import Connection
from leadroute.store.queries import QUERIES

__all__ = [
    "ActiveMappings",
    "Inbound",
    "MappingVersionConflict",
    "NoGoodMapping",
    "start_mappings",
    "stored_conflict",
]

log = logging.getLogger(__name__)


class MappingVersionConflict(LeadrouteError):
    """A file's version is stored with other content: a stored version never changes."""


class NoGoodMapping(LeadrouteError):
    """A mapping file cannot be used and no version of it was ever stored: nothing to run."""


@dataclass(frozen=True, slots=True)
class ActiveMappings:
    """The mappings an instance runs, by name, and why a file is not the one running (if so)."""

    mappings: dict[str, Mapping] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> Mapping | None:
        return self.mappings.get(name)


async def _store(conn: Connection, mapping: Mapping, actor: str) -> None:
    """Store ``mapping`` as a new version or activate its stored twin; raises MappingVersionConflict."""
    conflict = await stored_conflict(conn, mapping)
    if conflict is not None:
        raise MappingVersionConflict(conflict)
    row = await conn.fetchrow(QUERIES["mapping_get"], mapping.name, mapping.version)
    if row is None:
        await conn.execute(
            QUERIES["mapping_insert"],
            mapping.name,
            mapping.version,
            mapping.sha256,
            mapping.source_text,
            mapping.path,
            actor,
        )
        return
    await conn.execute(QUERIES["mapping_activate"], row["id"], mapping.name)


async def stored_conflict(conn: Connection, mapping: Mapping) -> str | None:
    """Why ``mapping`` would be refused at start-up (its version stored with other content), else
    None. Reads only: what ``leadroute mappings check`` asks the database."""
    row = await conn.fetchrow(QUERIES["mapping_get"], mapping.name, mapping.version)
    if row is None or row["sha256"] == mapping.sha256:
        return None
    free = await conn.fetchval(QUERIES["mapping_next_version"], mapping.name)
    return (
        f"{mapping.path}: version {mapping.version} of mapping {mapping.name!r} is already stored "
        f"with different content (stored sha256 {row['sha256'][:12]}, this file "
        f"{mapping.sha256[:12]}); a stored version never changes — bump 'version:' to {free} "
        "(the next free number)"
    )


async def _last_good(conn: Connection, name: str, why: str) -> Mapping:
    row: Any = await conn.fetchrow(QUERIES["mapping_active"], name)
    if row is None:
        raise NoGoodMapping(f"{why}\nno version of mapping {name!r} was ever stored: fix the file to start")
    mapping = parse_mapping(row["source"], path=row["path"] or f"{name}.yaml", name=name)
    log.error(
        "mapping %s: the file is not used, version %s (sha256 %s) stays active: %s",
        name,
        mapping.version,
        mapping.sha256[:12],
        why,
    )
    return mapping


async def start_mappings(conn: Connection, directory: Path, *, actor: str) -> ActiveMappings:
    """Load the mapping files of ``directory`` and settle each one's running version (see above).

    Raises :class:`NoGoodMapping` when a file cannot be used and nothing of its name is stored.
    """
    loaded, failed = load_mappings(directory)
    running: dict[str, Mapping] = {}
    problems: dict[str, str] = {}
    async with conn.transaction():
        await conn.execute(QUERIES["mapping_lock"])
        for name, mapping in loaded.items():
            try:
                async with conn.transaction():  # a savepoint: a conflict leaves the others stored
                    await _store(conn, mapping, actor)
            except MappingVersionConflict as exc:
                problems[name] = str(exc)
                running[name] = await _last_good(conn, name, str(exc))
            else:
                running[name] = mapping
        for name, error in failed.items():
            problems[name] = str(error)
            running[name] = await _last_good(conn, name, str(error))
    for mapping in running.values():
        log.info("mapping %s v%s active (sha256 %s)", mapping.name, mapping.version, mapping.sha256[:12])
    return ActiveMappings(running, problems)


@dataclass(slots=True)
class Inbound:
    """What the inbound routes use: the running mappings and one HTTP client (HubSpot's CRM API)."""

    mappings: ActiveMappings
    client: httpx.AsyncClient

    def mapping(self, name: str) -> Mapping:
        """The running mapping ``name``; raises NotFound."""
        found = self.mappings.get(name)
        if found is None:
            raise NotFound(
                "mapping", name, detail=f"no mapping named {name!r} is loaded (mappings/{name}.yaml)"
            )
        return found

    async def close(self) -> None:
        await self.client.aclose()
