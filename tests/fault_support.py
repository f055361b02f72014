"""PostgreSQL and Redis servers of a test's own, on free TCP ports, to stop and start at will.

Fault tests break these, never the shared servers other tests (and engineers) use. PostgreSQL
is Debian's (``/usr/lib/postgresql/<major>/bin``), run as the ``postgres`` system user when the
tests run as root (it refuses root); Redis is ``redis-server`` without persistence, so a restart
loses the routing state exactly as a lost Redis would.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from process_support import free_port

PG_BINS = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
REDIS_SERVER = shutil.which("redis-server")


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


def _wait(condition: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout}s")
        time.sleep(0.1)


class OwnPostgres:
    """A throw-away PostgreSQL cluster on 127.0.0.1:``port`` (trust auth, user ``postgres``)."""

    def __init__(self) -> None:
        if not PG_BINS:
            pytest.skip("no PostgreSQL binaries under /usr/lib/postgresql")
        self.bin = PG_BINS[-1].parent
        self.port = free_port()
        # not under pytest's tmp_path: its parents are private to root, and postgres runs as postgres
        self.root = Path(tempfile.mkdtemp(prefix="leadroute-fault-pg-"))
        self.root.chmod(0o755)
        self.data = self.root / "data"
        self.user: dict[str, Any] = {}
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            self.user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        subprocess.run(
            [str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync"],
            check=True,
            capture_output=True,
            **self.user,
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.root / "postgres.log"

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    *(str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port)),
                    *("-k", str(self.root), "-c", "listen_addresses=127.0.0.1"),
                    *("-c", "fsync=off", "-c", "max_connections=200"),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                **self.user,
            )
        _wait(self._accepts, "PostgreSQL did not accept connections")

    def _accepts(self) -> bool:
        run = subprocess.run(
            [str(self.bin.parent / "bin" / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
            capture_output=True,
            check=False,
        )
        return run.returncode == 0

    def stop(self) -> None:
        """Fast shutdown (SIGINT): open sessions are terminated, as in a real restart."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(timeout=30)
        self.proc = None
        _wait(lambda: not _answers(self.port), "PostgreSQL did not stop")

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class OwnRedis:
    """A throw-away ``redis-server`` on 127.0.0.1:``port``, without persistence."""

    def __init__(self, root: Path) -> None:
        if REDIS_SERVER is None:
            pytest.skip("no redis-server")
        self.port = free_port()
        self.root = root
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert REDIS_SERVER is not None
        with (self.root / "redis.log").open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    *(REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1"),
                    *("--save", "", "--appendonly", "no", "--dir", str(self.root)),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        _wait(lambda: _answers(self.port), "redis-server did not listen")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self.proc = None

    def close(self) -> None:
        self.stop()


class Deps:
    """A test module's own PostgreSQL and Redis, and settings that point at them (with the test
    admin key, under a Redis key prefix of the module's)."""

    def __init__(self, pg: OwnPostgres, redis: OwnRedis, *, prefix: str) -> None:
        from leadroute.config import Settings
        from support import ADMIN_KEY

        self.pg = pg
        self.redis = redis
        self.settings = Settings.from_env(
            {}, database_url=pg.dsn, redis_url=redis.url, redis_prefix=prefix, admin_key=ADMIN_KEY
        )

    def ensure_up(self) -> None:
        """Start whichever server a test stopped."""
        for server in (self.pg, self.redis):
            if server.proc is None:
                server.start()


@contextlib.contextmanager
def own_servers(tmp_path_factory: pytest.TempPathFactory, *, prefix: str) -> Iterator[Deps]:
    """Start both servers, import the example owners, and remove them all at the end."""
    from process_support import cli_env, leadroute

    pg = OwnPostgres()
    redis = OwnRedis(tmp_path_factory.mktemp("redis"))
    try:
        pg.start()
        redis.start()
        found = Deps(pg, redis, prefix=prefix)
        imported = leadroute("owners", "import", "examples/owners.yaml", env=cli_env(found.settings))
        assert imported.returncode == 0, imported.stderr
        yield found
    finally:
        redis.close()
        pg.close()
