"""The console in a real browser: Debian's Chromium driven by Playwright against a served
``leadroute serve`` process on real PostgreSQL and Redis (see tests/browser_support.py for the
browser, the skip rule and where screenshots of failures go)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from browser_support import artifact_name, artifacts_dir, chromium_or_skip
from conftest import PHASE_REPORTS
from leadroute.config import Settings
from leadroute.store.migrate import migrate
from process_support import Served
from support import AUTH, POOL_RULES, connection, lead

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture(scope="module")
async def served(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    """One ``leadroute serve`` for the module, on emptied tables, with owners, a pool and leads."""
    async with connection(settings) as conn:
        await migrate(conn)
        tables = await conn.fetchval(
            "SELECT string_agg(quote_ident(tablename), ', ') FROM pg_tables"
            " WHERE schemaname = current_schema() AND tablename <> 'schema_migrations'"
        )
        await conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    folder = tmp_path_factory.mktemp("console")
    rules = folder / "rules.yaml"
    rules.write_text(POOL_RULES)
    server = Served(
        folder / "serve.log",
        settings,
        rules_path=str(rules),
        db_pool_min="2",
        db_pool_max="10",
        log_level="WARNING",
        reconcile_minutes="0",
    )
    try:
        server.wait_ready()
        async with api(server) as http:
            for ident in ("olive", "oscar", "otto"):
                assert (
                    await http.put(f"/v1/owners/{ident}", json={"name": ident.title()})
                ).status_code == 200
            members = {"members": ["olive", "oscar", "otto"]}
            assert (await http.put("/v1/pools/sales", json=members)).status_code == 200
            for n in range(12):
                r = await http.post("/v1/leads", json=lead(n, company=f"Company {n}"))
                assert r.status_code == 201, r.text
        yield server
    finally:
        server.stop()


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


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, through Playwright (never a browser Playwright downloaded)."""
    executable = chromium_or_skip()
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield launched
        await launched.close()


@pytest.fixture
async def page(browser: Browser, request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    """A fresh browser context and page; a screenshot and the HTML in test-artifacts/ on failure."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    opened = await context.new_page()
    opened.set_default_timeout(15_000)
    opened.on("dialog", lambda dialog: dialog.accept())  # the confirm() before activate / pause
    try:
        yield opened
    finally:
        reports = request.node.stash.get(PHASE_REPORTS, {})
        if "call" in reports and reports["call"].failed:
            folder = artifacts_dir()
            folder.mkdir(parents=True, exist_ok=True)
            name = artifact_name(request.node.nodeid)
            await opened.screenshot(path=str(folder / f"{name}.png"), full_page=True)
            (folder / f"{name}.html").write_text(await opened.content())
        await context.close()


async def sign_in(page: Page, served: Served, key: str) -> None:
    """Sign in through the form, as a person would."""
    await page.goto(f"{served.base}/console/sign-in")
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()


class TestSigningIn:
    """A person signs in with a key, with the keyboard only."""

    async def test_keyboard_only_sign_in(self, page: Page, served: Served) -> None:
        await page.goto(f"{served.base}/console/leads")
        assert page.url.startswith(f"{served.base}/console/sign-in?next=")
        # the key field has the focus; Tab goes to the button; Enter signs in
        focused = await page.evaluate("document.activeElement.id")
        assert focused == "key"
        await page.keyboard.type(await new_key(served, "leads:read"))
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.textContent") == "Sign in"
        await page.keyboard.press("Enter")
        await expect(page).to_have_url(f"{served.base}/console/leads")
        await expect(page.get_by_role("heading", name="Leads")).to_be_visible()
        # skip link first, for keyboard users
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.textContent") == "Skip to content"

    async def test_a_wrong_key_says_so(self, page: Page, served: Served) -> None:
        await page.goto(f"{served.base}/console/sign-in")
        await page.get_by_label("API key").fill("lr_live_0000beef_" + "x" * 43)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("alert")).to_contain_text("That key is not valid")


class TestLeads:
    """Find a lead by email and read its timeline."""

    async def test_find_a_lead_and_read_its_timeline(self, page: Page, served: Served) -> None:
        await sign_in(page, served, await new_key(served, "leads:read"))
        await page.get_by_label("Email").fill("person7@company-7.example")
        await page.get_by_role("button", name="Search").click()
        rows = page.locator("table.list tbody tr")
        await expect(rows).to_have_count(1)
        await rows.first.get_by_role("link").click()
        await expect(page.get_by_role("heading", name="Timeline")).to_be_visible()
        timeline = page.locator("ol.timeline")
        await expect(timeline).to_contain_text("lead.received")
        await expect(timeline).to_contain_text("lead.scored")
        await expect(timeline).to_contain_text("Assigned to")
        await expect(page.locator("#explain-summary")).to_contain_text("by round robin in pool 'sales'")
        # the page's address is the lead's stable link
        lead_id = page.url.rsplit("/", 1)[1]
        async with api(served) as http:
            story = (await http.get(f"/v1/leads/{lead_id}")).json()
        assert story["lead"]["email"] == "person7@company-7.example"
