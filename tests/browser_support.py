"""The browser tests' harness: Debian's Chromium driven by Playwright, against a served process.

- The browser is ``/usr/bin/chromium`` (the Debian package ``chromium``, which ``.ci/run``
  installs), launched with ``executable_path``: Playwright's own browser downloads are never
  used. ``CHROMIUM_PATH`` names another binary.
- No Chromium: the tests are skipped with the reason, except in CI (``CI=true``), where that is
  a failure: CI must run them.
- A failing test leaves a screenshot of the page (and its HTML) in ``test-artifacts/`` at the
  repository root (``TEST_ARTIFACTS_DIR`` names another folder): the hook in
  ``tests/conftest.py`` tells the ``page`` fixture how the test went.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Final

import pytest

ROOT: Final = Path(__file__).resolve().parent.parent
CHROMIUM: Final = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


def artifacts_dir() -> Path:
    """Where failing browser tests leave their screenshots."""
    return Path(os.environ.get("TEST_ARTIFACTS_DIR", ROOT / "test-artifacts"))


def chromium_or_skip() -> str:
    """The Chromium binary; skips the test when there is none, fails in CI."""
    found = CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium")
    if found:
        return found
    reason = f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run installs it)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}: the browser tests must run in CI")
    pytest.skip(reason)


def artifact_name(nodeid: str) -> str:
    """A file name for a test: its node id with anything unsafe replaced."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.split("::", 1)[-1])[:150]
