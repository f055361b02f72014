"""The owners file loads owners and pools; importing twice changes nothing."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from leadroute.config import Settings
from leadroute.errors import OwnersFileError, UnknownOwners
from leadroute.store.owners_file import CSV_COLUMNS, import_owners, load_owners_file
from process_support import ROOT, cli_env, leadroute
from support import connection


class TestOwnersImport:
    """`leadroute owners import FILE` semantics, on a real database."""

    async def test_demo_file_imports_and_is_idempotent(self, settings: Settings, clean: None) -> None:
        data = load_owners_file(ROOT / "examples" / "owners.yaml")
        async with connection(settings) as conn:
            assert await import_owners(conn, data) == (7, 3)
            snapshot = await conn.fetch("SELECT * FROM owners ORDER BY id")
            members = await conn.fetch("SELECT * FROM pool_members ORDER BY pool_id, owner_id")
            await import_owners(conn, data)
            assert await conn.fetch("SELECT * FROM owners ORDER BY id") == snapshot
            assert await conn.fetch("SELECT * FROM pool_members ORDER BY pool_id, owner_id") == members

    async def test_pool_naming_an_unknown_owner_imports_nothing(
        self, settings: Settings, clean: None, tmp_path: Path
    ) -> None:
        f = tmp_path / "owners.yaml"
        f.write_text("owners:\n  - {id: ann, name: Ann}\npools:\n  - {id: p, members: [ann, ghost]}\n")
        async with connection(settings) as conn:
            with pytest.raises(OwnersFileError, match="ghost") as info:
                await import_owners(conn, load_owners_file(f))
            assert str(info.value).startswith(f"{f}:4:22: pool 'p' names owners that do not exist: ghost")
            assert isinstance(info.value.__cause__, UnknownOwners)
            assert await conn.fetchval("SELECT count(*) FROM owners") == 0

    def test_typo_in_the_file_is_an_error_naming_the_key(self, tmp_path: Path) -> None:
        f = tmp_path / "owners.yaml"
        f.write_text("owners:\n  - {id: ann, name: Ann, actve: false}\n")
        with pytest.raises(OwnersFileError, match="actve") as info:
            load_owners_file(f)
        assert str(info.value).startswith(f"{f}:2:26: owner 'ann': unknown key 'actve' (allowed: id, name,")


OWNERS_YAML = """\
owners:
  - id: ann
    name: Ann
  - id: bob
    name: Bob
    timezone: Paris
    capacity: {max_open: -1}
"""


class TestYamlErrorsNameTheLine:
    """YAML owners-file errors name file:line:column (found like rule-file errors) and the entry."""

    @pytest.mark.parametrize(
        ("text", "where", "message"),
        [
            # OwnerIn's own checks point at the field they are about, not at the owner
            (OWNERS_YAML.replace("-1", "1"), "6:15", "owner 'bob': unknown timezone 'Paris'"),
            (
                OWNERS_YAML.replace("Paris", "UTC"),
                "7:26",
                "owner 'bob': capacity.max_open: Expected 'int' >= 0",
            ),
            (
                OWNERS_YAML.replace("Paris", "UTC").replace("max_open: -1", "max_opn: 1"),
                "7:16",
                "owner 'bob': capacity: unknown key 'max_opn' (allowed: max_open, max_per_day)",
            ),
            (
                "owners:\n  - id: ann\n    name: Ann\n    working_hours:\n      weekdays: 09:00-18:00\n",
                "5:7",
                "owner 'ann': working_hours: 'weekdays' is not a weekday",
            ),
            (
                "owners:\n  - id: ann\n    name: Ann\n  - name: Bob\n",
                "4:5",
                "owners[1]: missing required key 'id'",
            ),
            (
                "owners: []\npools:\n  - id: sales\n    strategy: fastest\n",
                "4:15",
                "pool 'sales': strategy: Invalid enum value 'fastest' (use one of round_robin, weighted,",
            ),
            ("owners: []\npool: []\n", "2:1", "unknown key 'pool' (allowed: owners, pools)"),
            ("owners: []\nmemberships: {p: [ann]}\n", "2:1", "'memberships' is for CSV files"),
            ("owners:\n  - id: ann\n   name: Ann\n", "3:4", "YAML syntax error: expected <block end>"),
            (
                "owners:\n  - id: ann\n    name: Ann\n    name: Anne\n",
                "4:5",
                "key 'name' is written twice; keep one",
            ),
            (
                "owners:\n  - id: ann\n    name: Ann\n  - id: ann\n    name: Anne\n",
                "4:9",
                "owner 'ann' is listed twice (first on line 2); keep one entry per id",
            ),
        ],
    )
    def test_error_names_file_line_and_column(
        self, tmp_path: Path, text: str, where: str, message: str
    ) -> None:
        f = tmp_path / "owners.yaml"
        f.write_text(text)
        with pytest.raises(OwnersFileError) as info:
            load_owners_file(f)
        assert str(info.value).startswith(f"{f}:{where}: {message}")


class TestOwnersFileFields:
    """Every owner and pool field loads, is normalized, and re-imports without a change."""

    async def test_yaml_fields_are_stored_normalized(self, settings: Settings, clean: None) -> None:
        data = load_owners_file(ROOT / "examples" / "owners.yaml")
        async with connection(settings) as conn:
            await import_owners(conn, data)
            emma = await conn.fetchrow("SELECT * FROM owners WHERE id = 'emma'")
            pool = await conn.fetchrow("SELECT * FROM pools WHERE id = 'enterprise-na'")
        assert emma is not None
        assert pool is not None
        assert emma["timezone"] == "Europe/Berlin"
        assert emma["working_hours"] == {d: ["09:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")}
        assert emma["out_of_office"] == [{"from": "2026-12-24", "to": "2027-01-02"}]
        assert list(emma["skills"]) == ["de", "en"]
        assert (pool["strategy"], pool["required_skill"], pool["escalate_to"]) == (
            "weighted",
            "enterprise",
            "inbound",
        )

    async def test_csv_imports_and_is_idempotent(self, settings: Settings, clean: None) -> None:
        data = load_owners_file(ROOT / "examples" / "owners.csv")
        async with connection(settings) as conn:
            assert await import_owners(conn, data) == (4, 3)
            before = [
                await conn.fetch(f"SELECT * FROM {t} ORDER BY 1, 2")
                for t in ("owners", "pools", "pool_members")
            ]
            await import_owners(conn, load_owners_file(ROOT / "examples" / "owners.csv"))
            after = [
                await conn.fetch(f"SELECT * FROM {t} ORDER BY 1, 2")
                for t in ("owners", "pools", "pool_members")
            ]
            alice = await conn.fetchrow("SELECT * FROM owners WHERE id = 'alice'")
            members = await conn.fetch("SELECT pool_id, owner_id FROM pool_members ORDER BY 1, 2")
        assert after == before
        assert alice is not None
        assert (alice["max_open"], alice["max_per_day"], alice["weight"]) == (40, 15, 2)
        assert list(alice["skills"]) == ["en", "enterprise", "fr"]
        assert alice["crm_user_id"] == "0055e000001AbcD"
        assert [(m["pool_id"], m["owner_id"]) for m in members] == [
            ("emea", "emma"),
            ("emea", "grace"),
            ("enterprise-na", "alice"),
            ("enterprise-na", "bob"),
            ("inbound", "bob"),
        ]

    @pytest.mark.parametrize(
        ("row", "message"),
        [
            ("ann,Ann,,,Mars/Base,,,,,,,,", "unknown timezone"),
            ("ann,Ann,,,,mon-fri 9-5,,,,,,,", "mon-fri=09:00-18:00"),
            ("ann,Ann,,maybe,,,,,,,,,", "not true or false"),
            ("ann,Ann,,,,,2026-12-24,,,,,,", "2026-12-24/2027-01-02"),
            ("ann,Ann,,,,,,,,0,,,", "weight"),
            ("ann,Ann,,,,,,99999999999,,,,,", "<= 1000000"),
            ("ann,Ann,,,,,,,,,,,bad pool", "'bad pool' is not a pool id"),
            ("ann,Ann,,,,,,,,,,,inbound;" + "p" * 65, "is not a pool id"),
        ],
    )
    def test_csv_errors_name_the_line(self, tmp_path: Path, row: str, message: str) -> None:
        f = tmp_path / "owners.csv"
        f.write_text(",".join(CSV_COLUMNS) + "\n" + row + ",\n")  # slack_user_id: empty
        with pytest.raises(OwnersFileError, match=message) as info:
            load_owners_file(f)
        assert f"{f}:2" in str(info.value)

    def test_csv_row_with_more_cells_than_columns_is_an_error(self, tmp_path: Path) -> None:
        # an unquoted comma in a name: the extra cells used to be dropped without a word
        f = tmp_path / "owners.csv"
        f.write_text("id,name\nann,Ann\nzed,Zed,extra,cells\n")
        with pytest.raises(OwnersFileError) as info:
            load_owners_file(f)
        assert str(info.value).startswith(f"{f}:3: the row has 4 cells for 2 columns")
        assert "double quotes" in str(info.value)

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("id,name,name\nann,Ann,Anne\n", ":1: column(s) name appear twice in the header; keep one"),
            (
                "id,name\nann,Ann\nbob,Bob\nann,Anne\n",
                ":4: owner 'ann' is listed twice (first on line 2); keep one row per owner",
            ),
        ],
    )
    def test_csv_repeated_columns_and_owners_are_errors(
        self, tmp_path: Path, text: str, message: str
    ) -> None:
        f = tmp_path / "owners.csv"
        f.write_text(text)
        with pytest.raises(OwnersFileError) as info:
            load_owners_file(f)
        assert str(info.value) == f"{f}{message}"

    def test_csv_row_with_fewer_cells_than_columns_is_an_error(self, tmp_path: Path) -> None:
        # a missing cell shifts the values after it: the timezone would land in email
        f = tmp_path / "owners.csv"
        f.write_text("id,name,email,timezone\nann,Ann,Europe/Berlin\n")
        with pytest.raises(OwnersFileError) as info:
            load_owners_file(f)
        assert str(info.value).startswith(f"{f}:2: the row has 3 cells for 4 columns")
        assert "leaving it empty" in str(info.value)

    def test_csv_quoted_commas_and_line_numbers_after_blank_and_multiline_rows(self, tmp_path: Path) -> None:
        f = tmp_path / "owners.csv"
        f.write_text('id,name\n"smith","Smith, Jr."\n\n"ann","Ann\nB."\nzed,Zed,extra\n')
        with pytest.raises(OwnersFileError, match="3 cells for 2 columns") as info:
            load_owners_file(f)
        assert f"{f}:6:" in str(info.value)  # the line in the file, not the row's position
        f.write_text('id,name\n"smith","Smith, Jr."\n\nann,Ann\n')
        data = load_owners_file(f)
        assert [(o.id, o.name) for o in data.owners] == [("smith", "Smith, Jr."), ("ann", "Ann")]

    @pytest.mark.parametrize("name", ["owners.csv", "owners.yaml"])
    def test_a_file_that_is_not_utf8_is_an_error_not_a_traceback(self, tmp_path: Path, name: str) -> None:
        f = tmp_path / name
        f.write_bytes(b"\xff\xfeid,name\n")
        with pytest.raises(OwnersFileError, match="not UTF-8"):
            load_owners_file(f)

    def test_csv_unknown_column_is_an_error(self, tmp_path: Path) -> None:
        f = tmp_path / "owners.csv"
        f.write_text("id,name,timzone\nann,Ann,UTC\n")
        with pytest.raises(OwnersFileError, match="timzone"):
            load_owners_file(f)

    def test_yaml_bad_hours_and_timezone_are_errors(self, tmp_path: Path) -> None:
        f = tmp_path / "owners.yaml"
        f.write_text("owners:\n  - {id: ann, name: Ann, timezone: Paris}\n")
        with pytest.raises(OwnersFileError, match="unknown timezone 'Paris'"):
            load_owners_file(f)
        f.write_text("owners:\n  - {id: ann, name: Ann, working_hours: {weekdays: '09:00-18:00'}}\n")
        with pytest.raises(OwnersFileError, match="weekdays"):
            load_owners_file(f)


class TestImportFallbackLoops:
    """An import that would make a fallback chain loop imports nothing and names file and line."""

    async def test_yaml_two_pool_cycle_names_the_file_line_and_loop(
        self, settings: Settings, clean: None, tmp_path: Path
    ) -> None:
        f = tmp_path / "owners.yaml"
        f.write_text(
            "owners:\n  - {id: ann, name: Ann}\n"
            "pools:\n"
            "  - id: a\n    members: [ann]\n    fallback: b\n"
            "  - id: b\n    members: [ann]\n    fallback: a\n"
        )
        async with connection(settings) as conn:
            with pytest.raises(OwnersFileError) as info:
                await import_owners(conn, load_owners_file(f))
            assert str(info.value).startswith(
                f"{f}:6:15: pool 'a': fallback 'b' makes the fallback chain loop"
            )
            assert "(a -> b -> a)" in str(info.value)
            assert await conn.fetchval("SELECT count(*) FROM pools") == 0
            assert await conn.fetchval("SELECT count(*) FROM owners") == 0

    async def test_yaml_loop_through_a_pool_already_stored(
        self, settings: Settings, clean: None, tmp_path: Path
    ) -> None:
        f = tmp_path / "owners.yaml"
        f.write_text("owners: []\npools:\n  - {id: overflow, fallback: sales}\n")
        async with connection(settings) as conn:
            await conn.execute("INSERT INTO pools (id, fallback) VALUES ('sales', 'overflow')")
            with pytest.raises(OwnersFileError, match=r"overflow -> sales -> overflow") as info:
                await import_owners(conn, load_owners_file(f))
            assert str(info.value).startswith(f"{f}:3:30: pool 'overflow'")

    async def test_csv_pool_created_into_a_loop_names_the_line(
        self, settings: Settings, clean: None, tmp_path: Path
    ) -> None:
        # CSV creates missing pools falling back to 'unassigned'; here that is a pool whose
        # fallback names the new one, so creating it would close a loop
        f = tmp_path / "owners.csv"
        f.write_text("id,name,pools\nann,Ann,\nben,Ben,emea\n")
        async with connection(settings) as conn:
            await conn.execute("INSERT INTO pools (id, fallback) VALUES ('unassigned', 'emea')")
            with pytest.raises(OwnersFileError, match=r"emea -> unassigned -> emea") as info:
                await import_owners(conn, load_owners_file(f))
            assert str(info.value).startswith(f"{f}:3: pool 'emea'")
            assert await conn.fetchval("SELECT count(*) FROM owners") == 0

    def test_cli_reports_the_loop_and_exits_1(self, settings: Settings, clean: None, tmp_path: Path) -> None:
        f = tmp_path / "owners.yaml"
        f.write_text("pools:\n  - {id: inbound, fallback: inbound}\n")
        done = leadroute("owners", "import", str(f), env=cli_env(settings))
        assert done.returncode == 1
        assert f"leadroute: {f}:2:29: pool 'inbound': fallback 'inbound'" in done.stderr
        assert "(inbound -> inbound)" in done.stderr


class TestImportCommand:
    def test_cli_imports_twice_and_the_second_changes_nothing(self, settings: Settings, clean: None) -> None:
        def run() -> subprocess.CompletedProcess[str]:
            return leadroute("owners", "import", "examples/owners.yaml", env=cli_env(settings))

        first = run()
        assert first.returncode == 0, first.stderr
        assert "imported 7 owner(s) and 3 pool(s)" in first.stdout
        snapshot = asyncio.run(_tables(settings))
        second = run()
        assert second.returncode == 0, second.stderr
        assert asyncio.run(_tables(settings)) == snapshot


async def _tables(settings: Settings) -> list[list[tuple[object, ...]]]:
    async with connection(settings) as conn:
        return [
            [tuple(r) for r in await conn.fetch(f"SELECT * FROM {t} ORDER BY 1, 2")]
            for t in ("owners", "pools", "pool_members")
        ]
