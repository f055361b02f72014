"""leadroute run as a user runs it: a CLI command in a child process, `leadroute serve` until stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from leadroute.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cli_env(settings: Settings | None = None, **values: str) -> dict[str, str]:
    """This process's environment without its ``LEADROUTE_*`` variables, then the test's database
    and Redis (``settings``, if given) and each of ``values`` as ``LEADROUTE_<NAME>``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADROUTE_")}
    if settings is not None:
        env |= {
            "LEADROUTE_DATABASE_URL": str(settings.database_url),
            "LEADROUTE_REDIS_URL": str(settings.redis_url),
            "LEADROUTE_REDIS_PREFIX": settings.redis_prefix,
        }
        if settings.admin_key is not None:
            env["LEADROUTE_ADMIN_KEY"] = settings.admin_key
        if settings.secret_key is not None:
            env["LEADROUTE_SECRET_KEY"] = settings.secret_key
    env |= {f"LEADROUTE_{name.upper()}": value for name, value in values.items()}
    return env


def leadroute(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI from the repo root, as a user would, and capture what it says."""
    return subprocess.run(
        [sys.executable, "-m", "leadroute", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class Served:
    """One ``leadroute serve`` child process on a port of its own, its output in ``log``.

    ``settings`` and ``values`` configure it as in :func:`cli_env`.
    """

    def __init__(self, log: Path, settings: Settings | None = None, *, port: int = 0, **values: str) -> None:
        port = port or free_port()
        env = cli_env(settings, port=str(port), **values)
        self.base = f"http://127.0.0.1:{port}"
        self.log = log
        with log.open("ab") as out:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "leadroute", "serve"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"leadroute serve exited early:\n{self.log.read_text()}")
            try:
                if httpx.get(self.base + "/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        pytest.fail(f"leadroute serve not ready in {timeout}s:\n{self.log.read_text()}")

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, and its exit code; killed (and -9) if it has not exited within ``timeout``."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return self.proc.wait(timeout=10)
        return self.proc.returncode


def serve_on(settings: Settings, rules: Path, log: Path) -> Served:
    """``leadroute serve`` on the test database and Redis with ``rules``, a small pool, quiet logs."""
    return Served(
        log, settings, rules_path=str(rules), db_pool_min="2", db_pool_max="10", log_level="WARNING"
    )
