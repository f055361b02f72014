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

import contextlib
import os
import re
import shutil
from collections.abc import AsyncIterator, Collection
from pathlib import Path
from typing import Final

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from conftest import PHASE_REPORTS
from process_support import Served
from support import AUTH

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


def api(served: Served) -> httpx.AsyncClient:
    """A client of the JSON API with the admin key (to set things up and check what happened)."""
    return httpx.AsyncClient(base_url=served.base, headers=AUTH, timeout=30)


async def new_key(served: Served, *scopes: str) -> str:
    """A key with ``scopes``, made through the API."""
    async with api(served) as http:
        r = await http.post("/v1/keys", json={"name": "browser test", "scopes": list(scopes)})
        assert r.status_code == 201, r.text
        key: str = r.json()["key"]
        return key


async def sign_in(page: Page, served: Served, key: str) -> None:
    """Sign in through the form, as a person would."""
    await page.goto(f"{served.base}/console/sign-in")
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, through Playwright (never a browser Playwright downloaded)."""
    executable = chromium_or_skip()
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield launched
        await launched.close()


@contextlib.asynccontextmanager
async def watched_page(
    browser: Browser,
    request: pytest.FixtureRequest,
    *,
    accept_dialogs: bool = False,
    expected_errors: Collection[str] = (),
) -> AsyncIterator[Page]:
    """A fresh context and page that fails its test on any browser error (a CSP violation, a
    script error) other than ``expected_errors``, or any request that leaves the module's
    ``served`` server; a screenshot and the HTML in test-artifacts/ when the test failed."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    opened = await context.new_page()
    opened.set_default_timeout(15_000)
    if accept_dialogs:
        opened.on("dialog", lambda dialog: dialog.accept())  # the confirm() before activate / pause
    problems: list[str] = []
    opened.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    opened.on("pageerror", lambda e: problems.append(str(e)))
    offsite: list[str] = []  # every asset is the console's own: nothing is fetched elsewhere
    server: Served = request.getfixturevalue("served")
    opened.on("request", lambda r: None if r.url.startswith(server.base) else offsite.append(r.url))
    try:
        yield opened
        assert [p for p in problems if p not in expected_errors] == []
        assert [u for u in offsite if not u.startswith("data:")] == []
    finally:
        reports = request.node.stash.get(PHASE_REPORTS, {})
        if "call" in reports and reports["call"].failed:
            folder = artifacts_dir()
            folder.mkdir(parents=True, exist_ok=True)
            name = artifact_name(request.node.nodeid)
            await opened.screenshot(path=str(folder / f"{name}.png"), full_page=True)
            (folder / f"{name}.html").write_text(await opened.content())
        await context.close()
