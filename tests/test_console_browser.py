"""The console in a real browser: Debian's Chromium driven by Playwright against a served
``leadroute serve`` process on real PostgreSQL and Redis (see tests/browser_support.py for the
browser, the skip rule and where screenshots of failures go)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from browser_support import api, artifacts_dir, chromium, new_key, sign_in, watched_page
from console_support import DRAFT_RULES
from leadroute.config import Settings
from leadroute.store.migrate import migrate
from outbound_support import receiver
from process_support import Served
from support import POOL_RULES, connection, lead

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
expect.set_options(timeout=15_000)  # a shared CI machine under the whole suite can be slow

PEOPLE = [
    ("Ada", "Lovelace", "Analytical Engines"),
    ("Grace", "Hopper", "Cobol Systems"),
    ("Alan", "Turing", "Bletchley Labs"),
    ("Katherine", "Johnson", "Orbital Mechanics"),
    ("Edsger", "Dijkstra", "Shortest Path"),
    ("Barbara", "Liskov", "Substitution Works"),
    ("Donald", "Knuth", "Literate Programs"),
    ("Margaret", "Hamilton", "Apollo Guidance"),
    ("Tim", "Berners-Lee", "Hypertext Co"),
    ("Radia", "Perlman", "Spanning Trees"),
    ("Ken", "Thompson", "Unix Tools"),
    ("Frances", "Allen", "Optimizing Compilers"),
]
"""The module's leads (made-up contacts at made-up companies, VPs all: ``support.lead``)."""


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
    hooks = contextlib.ExitStack()
    crm = hooks.enter_context(receiver())  # a webhook receiver: leads' timelines show deliveries
    server = Served(
        folder / "serve.log",
        settings,
        rules_path=str(rules),
        db_pool_min="2",
        db_pool_max="10",
        log_level="WARNING",
        reconcile_minutes="0",
        outbound_poll_seconds="0.2",
        webhook_allow_private="true",
    )
    try:
        server.wait_ready()
        async with api(server) as http:
            made = await http.post(
                "/v1/webhooks", json={"url": crm.url + "/crm", "events": ["lead.assigned"]}
            )
            assert made.status_code == 201, made.text
            for ident in ("olive", "oscar", "otto"):
                assert (
                    await http.put(f"/v1/owners/{ident}", json={"name": ident.title()})
                ).status_code == 200
            members = {"members": ["olive", "oscar", "otto"]}
            assert (await http.put("/v1/pools/sales", json=members)).status_code == 200
            for n, (first, last, company) in enumerate(PEOPLE):
                body = lead(n, first_name=first, last_name=last, company=company, employees=50 * (n + 1))
                r = await http.post("/v1/leads", json=body)
                assert r.status_code == 201, r.text
                if n % 3 == 0:  # some are accepted: their timelines go on
                    decided = r.json()
                    accept = {"owner_id": decided["owner"]}
                    done = await http.post(f"/v1/assignments/{decided['lead_id']}/accept", json=accept)
                    assert done.status_code == 200, done.text
        yield server
    finally:
        server.stop()
        hooks.close()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


@pytest.fixture
async def page(browser: Browser, request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    refused = "Failed to load resource: the server responded with a status of {}"
    expected = {refused.format("401 (Unauthorized)"), refused.format("403 (Forbidden)")}  # on purpose
    async with watched_page(browser, request, accept_dialogs=True, expected_errors=expected) as opened:
        yield opened


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


class TestWithoutJavaScript:
    """Every page reads, and every form works, with JavaScript turned off."""

    async def test_sign_in_search_and_read_a_lead(self, browser: Browser, served: Served) -> None:
        context = await browser.new_context(java_script_enabled=False)
        try:
            page = await context.new_page()
            await sign_in(page, served, await new_key(served, "leads:read"))
            await page.get_by_label("Company or domain").fill("company-2.example")
            await page.get_by_role("button", name="Search").click()
            await page.locator("table.list tbody tr").first.get_by_role("link").click()
            await expect(page.locator("ol.timeline")).to_contain_text("Assigned to")
            await page.get_by_role("link", name="Queues").click()
            await expect(page.get_by_role("heading", name="Queued leads")).to_be_visible()
        finally:
            await context.close()


class TestLeads:
    """Find a lead by email and read its timeline."""

    async def test_find_a_lead_and_read_its_timeline(self, page: Page, served: Served) -> None:
        await sign_in(page, served, await new_key(served, "leads:read"))
        await page.get_by_label("Email").fill("person4@company-4.example")
        await page.get_by_role("button", name="Search").click()
        rows = page.locator("table.list tbody tr")
        await expect(rows).to_have_count(1)
        await expect(rows.first).to_contain_text("Shortest Path")
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
        assert story["lead"]["email"] == "person4@company-4.example"


class TestRules:
    """Try a lead in the playground; upload a draft, replay it, and activate it (or be refused)."""

    async def test_playground(self, page: Page, served: Served) -> None:
        await sign_in(page, served, await new_key(served, "rules:write"))
        nav = page.get_by_role("navigation", name="Console")
        await nav.get_by_role("link", name="Playground").click()
        await page.get_by_label("Email").fill("vp@bigco.example")
        await page.get_by_label("Job title").fill("VP Sales")
        await page.get_by_label("Employees").fill("1200")
        await page.get_by_role("button", name="Decide").click()
        await expect(page.locator("#decision-stage")).to_have_text("lead")
        await expect(page.locator("#decision-score")).to_have_text("60")
        await expect(page.locator("#decision")).to_contain_text("senior")
        await expect(page.locator("#decision")).to_contain_text("pool sales")
        # the form keeps what was typed, to change one field and decide again
        await expect(page.get_by_label("Job title")).to_have_value("VP Sales")
        await page.get_by_label("Decide with").select_option("draft")
        await page.get_by_label("Draft text (when deciding with the draft)").fill(DRAFT_RULES)
        await page.get_by_role("button", name="Decide").click()
        await expect(page.locator("#decision-stage")).to_have_text("mql")

    async def test_upload_replay_and_activate(self, page: Page, served: Served, tmp_path: Path) -> None:
        draft = tmp_path / "senior-mql.yaml"
        draft.write_text(DRAFT_RULES)
        writer = await new_key(served, "rules:write")
        await sign_in(page, served, writer)
        await page.get_by_role("navigation", name="Console").get_by_role("link", name="Rules").click()
        await page.get_by_role("link", name="New draft").click()
        await page.get_by_label("Rule file (optional: it replaces the text below)").set_input_files(draft)
        await expect(page.get_by_label("Rule file text")).to_have_value(DRAFT_RULES)  # console.js
        await page.get_by_role("button", name="Validate").click()
        await expect(page.get_by_role("heading", name="Version 2 is valid")).to_be_visible()
        await page.get_by_role("button", name="Upload as draft").click()
        await expect(page.get_by_role("status")).to_contain_text("Stored as draft version 2")
        await page.get_by_label("Leads of the last N days").fill("7")
        await page.get_by_role("button", name="Replay v2").click()
        await expect(page.locator("#replay-summary")).to_contain_text("leads of the last 7 days replayed")
        matrix = page.locator("#stage-matrix")
        lead_row = matrix.get_by_role("row").filter(
            has=page.get_by_role("rowheader", name="lead", exact=True)
        )
        # every VP lead (all the module's leads) would go from lead to mql: the mql column
        assert (
            await lead_row.locator("td").nth(2).inner_text()
            == await lead_row.locator("td.changed").inner_text()
        )
        assert "lead -> mql" in await page.locator("ul.examples").inner_text()
        # rules:write alone: activation is refused, with the scope it needs
        await page.get_by_role("button", name="Activate v2").click()
        await expect(page.get_by_role("heading", name="Your key may not do this")).to_be_visible()
        await expect(page.get_by_role("alert")).to_contain_text("'rules:activate'")
        async with api(served) as http:
            assert (await http.get("/v1/rulesets/active")).json()["version"] == 1
        # a key with rules:activate activates it
        await page.get_by_role("button", name="Sign out").click()
        await sign_in(page, served, await new_key(served, "rules:write", "rules:activate"))
        await page.goto(f"{served.base}/console/rules/2")
        await page.get_by_role("button", name="Activate v2").click()
        await expect(page.get_by_role("status")).to_contain_text("Version 2 is now active")
        async with api(served) as http:
            assert (await http.get("/v1/rulesets/active")).json()["version"] == 2
            # back to version 1 for the other tests, through the console's rollback
        await page.get_by_role("button", name="Roll back").click()
        await expect(page.get_by_role("status")).to_contain_text("Version 1 is now active")


class TestRouting:
    """Pause an owner and resume them."""

    async def test_pause_an_owner(self, page: Page, served: Served) -> None:
        await sign_in(page, served, await new_key(served, "routing:admin"))
        await page.get_by_role("navigation", name="Console").get_by_role("link", name="Routing").click()
        pool = page.get_by_role("region", name="Pool sales")
        await expect(pool).to_contain_text("3 of 3 can take a lead now")
        await page.get_by_role("button", name="Pause Otto").click()
        await expect(pool).to_contain_text("2 of 3 can take a lead now")
        await expect(page.locator("#owner-otto")).to_contain_text("paused")
        async with api(served) as http:
            assert (await http.get("/v1/owners/otto")).json()["active"] is False
        await page.get_by_role("button", name="Resume Otto").click()
        await expect(pool).to_contain_text("3 of 3 can take a lead now")


class TestTheReadmeScreenshot:
    """The lead page of a real run, for the README (``CONSOLE_SCREENSHOT=docs/console.png``)."""

    async def test_screenshot(self, page: Page, served: Served) -> None:
        await sign_in(page, served, await new_key(served, "leads:read", "rules:write", "routing:admin"))
        await page.get_by_label("Company or domain").fill("Orbital")
        await page.get_by_role("button", name="Search").click()
        await page.locator("table.list tbody tr").first.get_by_role("link").click()
        await expect(page.locator("ol.timeline")).to_contain_text("Accepted by")
        for _ in range(30):  # the relay sends within about a second
            if "delivered" in await page.locator("ol.timeline").inner_text():
                break
            await page.wait_for_timeout(500)
            await page.reload()
        await expect(page.locator("ol.timeline")).to_contain_text("lead.assigned to wh_")
        await expect(page.locator("ol.timeline")).to_contain_text("delivered after 1 attempt(s)")
        folder = artifacts_dir()
        folder.mkdir(parents=True, exist_ok=True)
        targets = [folder / "console-lead.png"]
        if wanted := os.environ.get("CONSOLE_SCREENSHOT"):
            targets.append(Path(wanted))
        for target in targets:
            await page.screenshot(path=str(target), full_page=False)
            assert target.stat().st_size > 10_000
