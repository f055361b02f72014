"""Ordered SQL migrations, applied under an advisory lock.

Migrations are ``migrations/NNNN_name.sql`` files applied in order, each in its own
transaction, and recorded in ``schema_migrations``. Several instances starting at once take
the same transaction-level advisory lock, so one applies and the others then find nothing to do.
A migration that was applied but whose file changed since is refused: edit by adding a new one.
"""

from __future__ import annotations

import hashlib
import logging
from importlib import resources
from typing import NamedTuple

from leadroute.errors import MigrationError
from leadroute.store.db import Connection

__all__ = ["MIGRATION_LOCK", "Migration", "MigrationError", "available", "migrate"]

log = logging.getLogger(__name__)

MIGRATION_LOCK = 0x1EAD_0001
"""``pg_advisory_xact_lock`` key; arbitrary but fixed, so every instance contends on it."""


class Migration(NamedTuple):
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available() -> list[Migration]:
    """The migration files shipped with this package, in order."""
    found = []
    for entry in resources.files("leadroute.store").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            number, _, name = entry.name.removesuffix(".sql").partition("_")
            found.append(Migration(int(number), name, entry.read_text(encoding="utf-8")))
    found.sort()
    if len({m.version for m in found}) != len(found):
        raise MigrationError("two migration files share a number")
    return found


async def migrate(conn: Connection) -> list[Migration]:
    """Apply pending migrations; return the ones applied by this call."""
    applied_now: list[Migration] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {
            r["version"]: r["checksum"]
            for r in await conn.fetch("SELECT version, checksum FROM schema_migrations")
        }
        for migration in available():
            if migration.version in done:
                if done[migration.version] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version:04d}_{migration.name} was changed after it was "
                        "applied; add a new migration instead of editing an applied one"
                    )
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            log.info("applied migration %04d_%s", migration.version, migration.name)
            applied_now.append(migration)
    return applied_now
