"""The Dashboard and Calibration pages in a real browser (Debian's Chromium through Playwright)
against a served ``leadroute serve`` with generated leads and outcomes (tests/browser_support.py:
the browser, the skip rule, screenshots of failures in test-artifacts/)."""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from browser_support import api, artifacts_dir, chromium, new_key, sign_in, watched_page
from leadroute.config import Settings
from leadroute.store.migrate import migrate
from process_support import Served
from support import POOL_RULES, connection, lead

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

LEADS = 24


@pytest.fixture(scope="module")
async def served(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    """One ``leadroute serve`` on emptied tables: three reps in a pool, generated leads (a third
    of them VPs) and outcomes (most VPs won, some leads rejected by sales)."""
    async with connection(settings) as conn:
        await migrate(conn)
        tables = await conn.fetchval(
            "SELECT string_agg(quote_ident(tablename), ', ') FROM pg_tables"
            " WHERE schemaname = current_schema() AND tablename <> 'schema_migrations'"
        )
        await conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    folder = tmp_path_factory.mktemp("console-reports")
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
    rng = random.Random(14)
    try:
        server.wait_ready()
        async with api(server) as http:
            for ident in ("olive", "oscar", "otto"):
                assert (
                    await http.put(f"/v1/owners/{ident}", json={"name": ident.title()})
                ).status_code == 200
            assert (
                await http.put("/v1/pools/sales", json={"members": ["olive", "oscar", "otto"]})
            ).status_code == 200
            for n in range(LEADS):
                title = "VP Sales" if n % 3 == 0 else "Analyst"
                r = await http.post("/v1/leads", json=lead(n, title=title))
                assert r.status_code == 201, r.text
                outcome = (
                    ("won" if rng.random() < 0.7 else "lost")
                    if title == "VP Sales"
                    else ("disqualified_by_sales" if rng.random() < 0.3 else None)
                )
                if outcome is not None:
                    body: dict[str, object] = {"outcome": outcome}
                    if outcome == "won":
                        body["amount"] = float(rng.randrange(5000, 40000, 500))
                    done = await http.post(f"/v1/leads/{r.json()['lead_id']}/outcome", json=body)
                    assert done.status_code == 201, done.text
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


@pytest.fixture
async def page(browser: Browser, request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    async with watched_page(browser, request) as opened:
        yield opened


class TestDashboard:
    """A manager opens the dashboard from the navigation and reads the charts and tables."""

    async def test_the_dashboard_with_generated_leads(self, page: Page, served: Served) -> None:
        await sign_in(page, served, await new_key(served, "leads:read"))
        await page.get_by_role("link", name="Dashboard").click()
        await expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
        await expect(page.get_by_text(f"{LEADS} leads arrived in the window")).to_be_visible()
        for chart in ("Leads per hour by stage", "Pool sales: actual and expected share", "Queue depth now"):
            await expect(page.get_by_role("img", name=chart)).to_be_visible()
        shares = page.locator("#shares tbody tr")
        await expect(shares).to_have_count(3)  # olive, oscar, otto: 8 leads each by round robin
        await expect(shares.first).to_contain_text("33.3%")
        # the window form, with the keyboard: one day back
        await page.get_by_label("Last days").fill("1")
        await page.keyboard.press("Enter")
        await expect(page).to_have_url(f"{served.base}/console/dashboard?days=1&start=&end=")
        await expect(page.get_by_text(f"{LEADS} leads arrived in the window")).to_be_visible()


class TestCalibration:
    """A rule writer reads conversion by score band and changes the bands."""

    async def test_calibration_on_generated_outcomes(self, page: Page, served: Served) -> None:
        await sign_in(page, served, await new_key(served, "rules:write"))
        await page.get_by_role("link", name="Calibration").click()
        await expect(page.get_by_role("heading", name="Calibration")).to_be_visible()
        summary = page.locator("#calibration-summary")
        await expect(summary).to_contain_text(f"{LEADS} leads")
        await expect(page.get_by_role("img", name="Conversion by score band")).to_be_visible()
        await expect(
            page.get_by_role("img", name="Conversion with and without each scoring rule")
        ).to_be_visible()
        # VPs score 60; the others 0: every converted lead is in the 60-80 band
        band = page.locator("#bands tbody tr", has_text="60-80")
        await expect(band).to_contain_text(str(LEADS // 3))
        await page.get_by_label("Score band edges").fill("0,30")
        await page.get_by_label("Decision per lead").select_option("intake")
        await page.get_by_role("button", name="Show").click()
        await expect(page.locator("#bands tbody tr")).to_have_count(3)
        await expect(page.locator("#bands tbody tr", has_text=">= 30")).to_contain_text(str(LEADS // 3))
        await expect(page.get_by_label("Decision per lead")).to_have_value("intake")
        await expect(page.get_by_role("img", name="Won revenue per lead by score band (USD)")).to_be_visible()


class TestScreenshots:
    """The two pages of a real run, for docs/reports.md: ``REPORTS_SCREENSHOTS=docs
    ./scripts/test tests/test_console_reports_browser.py -k screenshot`` writes
    ``docs/dashboard.png`` and ``docs/calibration.png``; test-artifacts/ always gets them."""

    async def test_screenshots(self, page: Page, served: Served) -> None:
        await sign_in(page, served, await new_key(served, "leads:read", "rules:write"))
        folders = [artifacts_dir()]
        if wanted := os.environ.get("REPORTS_SCREENSHOTS"):
            folders.append(Path(wanted))
        for name, heading in (("calibration", "Conversion by score band"), ("dashboard", "Share per rep")):
            await page.goto(f"{served.base}/console/{name}")
            await expect(page.get_by_role("heading", name=heading)).to_be_visible()
            for folder in folders:
                folder.mkdir(parents=True, exist_ok=True)
                target = folder / f"{name}.png"
                await page.screenshot(path=str(target), full_page=False)
                assert target.stat().st_size > 10_000
