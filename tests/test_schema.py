"""The migrated schema is what the code expects, and migrating is safe to race and to repeat."""

from __future__ import annotations

import asyncio

import asyncpg

from leadroute.config import Settings
from leadroute.store.db import connect
from leadroute.store.migrate import available, migrate
from leadroute.store.queries import QUERIES
from support import connection

EXPECTED_TABLES = {
    "owners",
    "pools",
    "pool_members",
    "rulesets",
    "leads",
    "idempotency_keys",
    "lead_events",
    "decisions",
    "assignments",
    "schema_migrations",
}


class TestSchema:
    """Migrations against a real PostgreSQL."""

    async def test_all_tables_exist_and_every_query_prepares(self, settings: Settings, clean: None) -> None:
        async with connection(settings) as conn:
            tables = {
                r["tablename"]
                for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            }
            assert tables >= EXPECTED_TABLES
            for name, sql in QUERIES.items():
                try:
                    # {where}: search_leads' filter slot (store/lead_search.py), empty = no filter
                    await conn.prepare(
                        sql.replace("{where}", "")
                    )  # parses and type-checks against the live schema
                except asyncpg.PostgresError as exc:  # pragma: no cover - the failure message is the point
                    raise AssertionError(f"query {name!r} does not match the schema: {exc}") from exc
            applied = await conn.fetchval("SELECT max(version) FROM schema_migrations")
            assert applied == available()[-1].version

    async def test_concurrent_migrations_apply_each_file_once(self, fresh_database: str) -> None:
        conns = [await connect(fresh_database) for _ in range(4)]
        try:
            results = await asyncio.gather(*(migrate(c) for c in conns))
            assert sorted(len(r) for r in results) == [0, 0, 0, len(available())]
            assert await migrate(conns[0]) == []  # and again: nothing to do
        finally:
            for c in conns:
                await c.close()
