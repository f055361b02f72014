"""The container image's recipe, checked without Docker: pinned runtime dependencies only, a
numeric user, no embedded servers or demo seed unless asked for."""

from __future__ import annotations

import re
import tomllib

from process_support import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()
LOCK = (ROOT / "requirements.lock").read_text()
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


class TestImage:
    """What `docker build` would produce, read from the Dockerfile and the lock file."""

    def test_every_runtime_dependency_is_pinned_with_a_hash(self) -> None:
        pinned = dict(re.findall(r"^([a-z0-9._-]+)==(\S+) \\$", LOCK, flags=re.MULTILINE))
        assert pinned, "requirements.lock pins nothing"
        assert {_name(r) for r in PROJECT["dependencies"]} <= set(pinned)
        assert LOCK.count("--hash=sha256:") >= len(pinned)

    def test_no_dev_or_embedded_package_is_locked(self) -> None:
        extras = PROJECT["optional-dependencies"]
        unwanted = {_name(r) for r in extras["dev"] + extras["embedded"]} - {"leadroute", "httpx"}
        pinned = set(re.findall(r"^([a-z0-9._-]+)==", LOCK, flags=re.MULTILINE))
        assert unwanted & pinned == set()  # (httpx comes with litestar's test client)

    def test_dependencies_are_installed_from_the_lock_only(self) -> None:
        assert "pip install --require-hashes --no-deps -r requirements.lock" in DOCKERFILE
        assert "pip install --no-deps ." in DOCKERFILE

    def test_runs_as_a_numeric_user_without_embedded_servers_or_demo_data(self) -> None:
        user = re.findall(r"^USER (\S+)$", DOCKERFILE, flags=re.MULTILINE)
        assert user == ["${UID}:${UID}"]
        assert re.search(r"^ARG UID=\d+$", DOCKERFILE, flags=re.MULTILINE)
        assert "LEADROUTE_ALLOW_EMBEDDED=false" in DOCKERFILE
        assert "LEADROUTE_SEED_DEMO=false" in DOCKERFILE
        assert 'ARG EXTRAS=""' in DOCKERFILE
