"""The embedded PostgreSQL and Valkey: data survives restarts, crashes do not block the next start."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis

import leadroute.embedded
from leadroute.embedded import EmbeddedServers, EmbeddedServersError
from leadroute.store.db import connect

# A leadroute process that starts the servers, reports them and waits to be killed.
_OWNER = """
import json, sys, time
from pathlib import Path
from leadroute.embedded import EmbeddedServers
servers = EmbeddedServers(Path(sys.argv[1]))
servers.start()
print(json.dumps([servers.postgres_pid, servers.valkey_pid]), flush=True)
time.sleep(300)
"""


def _write(servers: EmbeddedServers, value: str) -> None:
    async def write() -> None:
        conn = await connect(servers.database_url)
        try:
            await conn.execute("CREATE TABLE IF NOT EXISTS kept (value text)")
            await conn.execute("INSERT INTO kept VALUES ($1)", value)
        finally:
            await conn.close()

    asyncio.run(write())
    with redis.Redis.from_url(servers.redis_url) as client:
        client.set("kept", value)


def _read(servers: EmbeddedServers) -> tuple[list[str], bytes | None]:
    async def read() -> list[str]:
        conn = await connect(servers.database_url)
        try:
            return [row["value"] for row in await conn.fetch("SELECT value FROM kept ORDER BY value")]
        finally:
            await conn.close()

    rows = asyncio.run(read())
    with redis.Redis.from_url(servers.redis_url) as client:
        key: bytes | None = client.get("kept")
    return rows, key


def _gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def _wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not _gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _processes_in(directory: Path) -> list[int]:
    """Pids of live processes working inside `directory` (the servers and their children)."""
    pids = []
    for proc in psutil.process_iter(["cwd", "status"]):
        cwd = proc.info["cwd"]
        if cwd and proc.info["status"] != psutil.STATUS_ZOMBIE and Path(cwd).is_relative_to(directory):
            pids.append(proc.pid)
    return pids


@pytest.fixture
def tmp_dir(tmp_path: Path) -> Iterator[Path]:
    """``tmp_path``, except as root: a fresh directory in /tmp.

    As root the servers run as a system user, who must be able to walk to the data directory.
    Every pytest session resets ``/tmp/pytest-of-root`` to mode 0700, so a session started
    meanwhile (a colleague's, an editor's) would lock the servers out of ``tmp_path``.
    """
    if os.geteuid() != 0:
        yield tmp_path
        return
    directory = Path(tempfile.mkdtemp(prefix="leadroute-test-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def crashed_owner(tmp_dir: Path) -> Iterator[tuple[Path, subprocess.Popen[str], list[int]]]:
    """A leadroute process that started the servers on ``tmp_dir / "data"``, still running."""
    data_dir = tmp_dir / "data"
    env = {**os.environ, "PYTHONPATH": str(Path(leadroute.embedded.__file__).parents[1])}
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER, str(data_dir)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert owner.stdout is not None
    pids: list[int] = json.loads(owner.stdout.readline())
    yield data_dir, owner, pids
    owner.kill()
    owner.wait()
    owner.stdout.close()
    for pid in _processes_in(data_dir):  # whatever a failing test left behind
        psutil.Process(pid).kill()


class TestRestart:
    """Data written before a clean stop is there after the next start; nothing is left running."""

    def test_data_survives_stop_and_start(self, tmp_dir: Path) -> None:
        servers = EmbeddedServers(tmp_dir)
        servers.start()
        servers.start()  # idempotent
        pids = [servers.postgres_pid, servers.valkey_pid]
        _write(servers, "first")
        servers.stop()
        servers.stop()  # safe twice

        assert all(pid is not None and _gone(pid) for pid in pids)
        assert _processes_in(tmp_dir) == []

        with EmbeddedServers(tmp_dir) as again:
            assert _read(again) == (["first"], b"first")

    def test_listens_on_unix_sockets_only(self, tmp_dir: Path) -> None:
        with EmbeddedServers(tmp_dir) as servers:
            for pid in (servers.postgres_pid, servers.valkey_pid):
                assert psutil.Process(pid).net_connections(kind="inet") == []
            assert servers.database_url.startswith("postgresql://postgres@/leadroute?host=")
            assert servers.redis_url == f"unix://{tmp_dir}/run/valkey.sock"

    def test_a_deep_data_dir_gets_short_socket_paths(self, tmp_dir: Path) -> None:
        deep = tmp_dir.joinpath(*["a-rather-long-directory-name"] * 4)
        with EmbeddedServers(deep) as servers:
            assert servers.socket_dir.parent == Path("/tmp")
            assert len(str(servers.socket_dir / ".s.PGSQL.5432")) < 104
            _write(servers, "deep")
            assert _read(servers) == (["deep"], b"deep")

    def test_a_data_dir_has_one_owner(self, tmp_dir: Path) -> None:
        with EmbeddedServers(tmp_dir), pytest.raises(EmbeddedServersError, match="in use by another"):
            EmbeddedServers(tmp_dir).start()


class TestCrash:
    """A crashed owner or server never stops the next start, and no unrelated process is touched."""

    def test_servers_killed_leave_stale_sockets_and_pid_files(
        self, crashed_owner: tuple[Path, subprocess.Popen[str], list[int]]
    ) -> None:
        data_dir, owner, pids = crashed_owner
        for pid in [owner.pid, *pids]:
            os.kill(pid, signal.SIGKILL)
        owner.wait()
        assert all(_wait_gone(pid) for pid in pids)
        stale = ["postgres/postmaster.pid", "run/.s.PGSQL.5432", "run/.s.PGSQL.5432.lock", "run/valkey.sock"]
        assert all((data_dir / name).exists() for name in stale)

        with EmbeddedServers(data_dir) as servers:
            _write(servers, "after crash")
            assert _read(servers) == (["after crash"], b"after crash")

    def test_pid_files_naming_an_unrelated_live_process(
        self, crashed_owner: tuple[Path, subprocess.Popen[str], list[int]]
    ) -> None:
        data_dir, owner, pids = crashed_owner
        for pid in [owner.pid, *pids]:
            os.kill(pid, signal.SIGKILL)
        owner.wait()
        assert all(_wait_gone(pid) for pid in pids)
        # After a reboot or in a container, the dead server's pid often belongs to someone else.
        with subprocess.Popen(["sleep", "60"]) as unrelated:
            for name in ("postgres/postmaster.pid", "run/.s.PGSQL.5432.lock"):
                lines = (data_dir / name).read_text().splitlines()
                (data_dir / name).write_text("\n".join([str(unrelated.pid), *lines[1:]]) + "\n")
            (data_dir / "valkey/valkey.pid").write_text(f"{unrelated.pid}\n")
            (data_dir / "postgres/.handle_pids.json").write_text(json.dumps([owner.pid, unrelated.pid]))

            with EmbeddedServers(data_dir) as servers:
                assert servers.postgres_pid != unrelated.pid
                _write(servers, "x")
            assert unrelated.poll() is None
            unrelated.kill()

    def test_servers_orphaned_by_a_killed_owner_are_stopped_cleanly(
        self, crashed_owner: tuple[Path, subprocess.Popen[str], list[int]]
    ) -> None:
        data_dir, owner, pids = crashed_owner
        orphans = EmbeddedServers(data_dir)  # same sockets: talk to the orphans without owning them
        _write(orphans, "written before the crash")
        owner.kill()
        owner.wait()
        assert not any(_gone(pid) for pid in pids)  # the servers outlive their owner

        with EmbeddedServers(data_dir) as servers:
            assert all(_gone(pid) for pid in pids)
            assert _read(servers) == (["written before the crash"], b"written before the crash")
        assert _processes_in(data_dir) == []
