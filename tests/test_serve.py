"""The README's run path: `leadroute serve` with no servers configured starts embedded ones.

Start, post the README's lead with the admin key the first start made, stop with SIGTERM, start
again: the lead is still there, and no server process is left behind after either stop.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil

from conftest import Servers
from process_support import ROOT, Served, cli_env, free_port, leadroute


def embedded_service(data_dir: Path, port: int, **values: str) -> Served:
    """`leadroute serve` configured with no database or Redis: it runs embedded ones in ``data_dir``."""
    return Served(data_dir.parent / f"serve-{port}.log", None, port=port, data_dir=str(data_dir), **values)


README_LEAD = {"email": "jane@acme.example", "title": "VP Sales", "employees": 5000, "country": "US"}


def readme_curl() -> str:
    """The README's first curl command (posting a lead), as written there."""
    text = (ROOT / "README.md").read_text()
    match = re.search(r"```sh\n(curl -s http://127\.0\.0\.1:8000/v1/leads.*?)```", text, re.S)
    assert match is not None, "the README's curl is gone"
    return match.group(1)


def admin_key(data_dir: Path) -> dict[str, str]:
    """The Authorization header with the key the first start wrote to ``data_dir/admin.key``."""
    return {"Authorization": f"Bearer {(data_dir / 'admin.key').read_text().strip()}"}


def servers_using(data_dir: Path) -> list[psutil.Process]:
    """Server processes whose working directory or arguments point into the data directory."""
    found = []
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        try:
            text = " ".join(proc.info["cmdline"] or []) + " " + (proc.info["cwd"] or "")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if str(data_dir) in text and proc.pid != os.getpid():
            found.append(proc)
    return found


class TestEmbeddedServe:
    """Zero configuration: embedded PostgreSQL and Valkey, demo owners seeded, data kept."""

    def test_start_post_stop_start_again(self, tmp_path: Path) -> None:
        data_dir = tmp_path / "data"
        port = free_port()

        first = embedded_service(data_dir, port)
        try:
            first.wait_ready()
            key_file = data_dir / "admin.key"
            assert key_file.stat().st_mode & 0o777 == 0o600  # the user's only
            token = key_file.read_text().strip()
            assert token.startswith("lr_live_")
            assert token in first.log.read_text()  # shown once, on stderr
            anonymous = httpx.post(first.base + "/v1/leads", json=README_LEAD, timeout=10)
            assert anonymous.status_code == 401
            assert "server" not in anonymous.headers  # no banner
            # the README's curl, as written (but for the port and the data directory)
            curl = readme_curl().replace("http://127.0.0.1:8000", first.base)
            curl = curl.replace(".leadroute/admin.key", str(key_file))
            posted = subprocess.run(
                ["bash", "-c", curl], capture_output=True, text=True, timeout=30, check=True
            )
            decision = json.loads(posted.stdout)
            assert decision["owner"] is not None  # the demo seed gave the pools owners
            assert decision["stage"] in {"sql", "mql"}

            # Sales-ops commands run next to the service use its servers, and leave them running.
            env = cli_env(data_dir=str(data_dir))
            listing = leadroute("rules", "list", env=env)
            assert listing.returncode == 0, listing.stderr
            assert "using the embedded servers of the running leadroute" in listing.stderr
            assert "*  " in listing.stdout  # the version the service activated
            imported = leadroute("owners", "import", "examples/owners.yaml", env=env)
            assert imported.returncode == 0, imported.stderr

            # The demo history, posted twice (the second run adds nothing), then replayed.
            demo = [sys.executable, "-m", "loadtests.demo", "--count", "20", "--url", first.base]
            demo += ["--key-file", str(key_file)]
            run = subprocess.run(demo, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
            assert run.returncode == 0, run.stdout + run.stderr
            assert "posted 20 new leads (0 were there already)" in run.stdout
            again = subprocess.run(demo, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
            assert again.returncode == 0, again.stdout + again.stderr
            assert "posted 0 new leads (20 were there already) and 0 activity events" in again.stdout
            replay = leadroute("rules", "replay", "--candidate", "rules/inbound.yaml", env=env)
            assert replay.returncode == 0, replay.stderr
            assert "Replayed 21 leads (0 skipped)" in replay.stdout  # the README's lead and the demo's
            assert httpx.get(first.base + "/health/ready", timeout=10).status_code == 200
        finally:
            assert first.stop() == 0, first.log.read_text()
        assert servers_using(data_dir) == []
        assert "data" in first.log.read_text()  # says where data lives

        second = embedded_service(data_dir, port)
        try:
            second.wait_ready()
            assert second.log.read_text().count("created an admin key") == 1  # the first start's only
            assert key_file.read_text().strip() == token  # the first start's key, still the one
            got = httpx.get(
                f"{second.base}/v1/leads/{decision['lead_id']}", headers=admin_key(data_dir), timeout=10
            )
            assert got.status_code == 200, got.text
            assert got.json()["owner"] == decision["owner"]
            owners = httpx.get(second.base + "/v1/owners", headers=admin_key(data_dir), timeout=10).json()
            assert len(owners) == 7  # seeded once, not again on the second start
        finally:
            assert second.stop() == 0, second.log.read_text()
        assert servers_using(data_dir) == []

    def test_a_broken_ruleset_refuses_to_start_naming_file_line_and_rule(self, tmp_path: Path) -> None:
        bad = tmp_path / "bad.yaml"
        bad.write_text(
            "version: 1\nscoring:\n  groups: {fit: {max: 10}}\n  rules:\n"
            "    - {id: broken-rule, group: fit, when: 'title =~~', points: 1}\n"
            "qualification:\n  - {stage: lead}\nrouting:\n  rules: []\n  fallback: unassigned\n"
        )
        env = cli_env(rules_path=str(bad), data_dir=str(tmp_path / "data"))
        proc = leadroute("serve", env=env)
        assert proc.returncode == 1
        assert f"{bad}:5" in proc.stderr
        assert "broken-rule" in proc.stderr
        assert not (tmp_path / "data").exists()  # refused before starting anything


def workers_of(proc: subprocess.Popen[bytes]) -> set[int]:
    """Pids of the live forked HTTP workers (the serve process's children that run leadroute)."""
    found = set()
    for child in psutil.Process(proc.pid).children():
        try:
            if "leadroute" in " ".join(child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE:
                found.add(child.pid)
        except psutil.Error:  # exited (or a zombie not yet reaped) between listing and reading
            continue
    return found


def wait_until(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


class TestWorkers:
    """LEADROUTE_WORKERS=N forks N whole instances, after the ruleset is compiled, onto one port."""

    def test_workers_serve_one_port_a_dead_one_is_replaced_and_sigterm_stops_all(
        self, tmp_path: Path
    ) -> None:
        data_dir = tmp_path / "data"
        service = embedded_service(data_dir, free_port(), workers="2")
        try:
            service.wait_ready()
            wait_until(lambda: len(workers_of(service.proc)) == 2)
            first = workers_of(service.proc)

            def post(i: int) -> int:
                lead = README_LEAD | {"email": f"lead{i}@company{i}.example"}
                headers = admin_key(data_dir)
                return httpx.post(
                    service.base + "/v1/leads", json=lead, headers=headers, timeout=30
                ).status_code

            with ThreadPoolExecutor(8) as pool:
                assert set(pool.map(post, range(40))) == {201}

            victim = min(first)
            os.kill(victim, signal.SIGKILL)
            wait_until(lambda: victim not in workers_of(service.proc) and len(workers_of(service.proc)) == 2)
            service.wait_ready()
            assert post(40) == 201
            # the survivor answers the readiness check; the replacement may still be starting
            wait_until(lambda: service.log.read_text().count("Application startup complete") == 3)
            log = service.log.read_text()  # each of the three workers ran its own lifespan
            assert "exited (killed by SIGKILL); another in 0.5 s" in log
            compiled = log.index("compiled in")  # by the parent, once, before it forked
            assert log.count("compiled in") == 1
            assert compiled < log.index("starting 2 worker processes")
        finally:
            assert service.stop() == 0, service.log.read_text()
        assert servers_using(data_dir) == []
        assert not any(psutil.pid_exists(pid) for pid in first)

    def test_workers_that_cannot_start_for_a_bug_stop_the_service(self, servers: Servers) -> None:
        """Start-up fails while PostgreSQL and Redis answer: not an outage, retrying cannot help;
        after a few backed-off tries with no worker serving, the supervisor stops (exit 1)."""
        script = textwrap.dedent(
            """
            import sys
            from contextlib import asynccontextmanager
            from litestar import Litestar
            from leadroute.config import Settings
            from leadroute.server import run_server

            @asynccontextmanager
            async def broken(app):
                raise RuntimeError("no database")
                yield

            port, database_url, redis_url = int(sys.argv[1]), sys.argv[2], sys.argv[3]
            settings = Settings(workers=2, port=port, database_url=database_url, redis_url=redis_url)
            sys.exit(run_server(Litestar(lifespan=[broken]), settings))
            """
        )
        proc = subprocess.run(
            [sys.executable, "-c", script, str(free_port()), servers.admin_dsn, servers.redis_url],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 1, proc.stderr
        assert "workers in a row failed to start, none is serving; stopping" in proc.stderr


class TestRulesCheckCommand:
    """`leadroute rules check` loads, type-checks and runs a file's tests."""

    def test_default_rules_pass(self) -> None:
        proc = leadroute("rules", "check", "rules")
        assert proc.returncode == 0, proc.stdout + proc.stderr

    def test_broken_rule_names_file_line_and_rule(self, tmp_path: Path) -> None:
        bad = tmp_path / "r.yaml"
        bad.write_text(
            "version: 1\nscoring:\n  groups: {fit: {max: 10}}\n  rules:\n"
            "    - {id: ok, group: fit, when: 'true', points: 1}\n"
            "    - {id: typo, group: fit, when: 'titel == \"CEO\"', points: 1}\n"
            "qualification:\n  - {stage: lead}\nrouting:\n  rules: []\n  fallback: unassigned\n"
        )
        proc = leadroute("rules", "check", str(bad))
        assert proc.returncode == 1
        assert f"{bad}:6" in proc.stderr
        assert "typo" in proc.stderr
        assert "titel" in proc.stderr
