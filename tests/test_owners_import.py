"""The owners file loads owners and pools; importing twice changes nothing."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from leadroute.config import Settings
from leadroute.errors import OwnersFileError, UnknownOwners
from leadroute.store.owners import import_owners, load_owners_file

ROOT = Path(__file__).resolve().parent.parent


class TestOwnersImport:
    """`leadroute owners import FILE` semantics, on a real database."""

    async def test_demo_file_imports_and_is_idempotent(self, settings: Settings, clean: None) -> None:
        data = load_owners_file(ROOT / "examples" / "owners.yaml")
        conn = await asyncpg.connect(settings.database_url)
        try:
            assert await import_owners(conn, data) == (7, 3)
            snapshot = await conn.fetch("SELECT * FROM owners ORDER BY id")
            members = await conn.fetch("SELECT * FROM pool_members ORDER BY pool_id, owner_id")
            await import_owners(conn, data)
            assert await conn.fetch("SELECT * FROM owners ORDER BY id") == snapshot
            assert await conn.fetch("SELECT * FROM pool_members ORDER BY pool_id, owner_id") == members
        finally:
            await conn.close()

    async def test_pool_naming_an_unknown_owner_imports_nothing(
        self, settings: Settings, clean: None, tmp_path: Path
    ) -> None:
        f = tmp_path / "owners.yaml"
        f.write_text("owners:\n  - {id: ann, name: Ann}\npools:\n  - {id: p, members: [ann, ghost]}\n")
        conn = await asyncpg.connect(settings.database_url)
        try:
            with pytest.raises(UnknownOwners, match="ghost"):
                await import_owners(conn, load_owners_file(f))
            assert await conn.fetchval("SELECT count(*) FROM owners") == 0
        finally:
            await conn.close()

    def test_typo_in_the_file_is_an_error_naming_the_key(self, tmp_path: Path) -> None:
        f = tmp_path / "owners.yaml"
        f.write_text("owners:\n  - {id: ann, name: Ann, actve: false}\n")
        with pytest.raises(OwnersFileError, match="actve"):
            load_owners_file(f)
