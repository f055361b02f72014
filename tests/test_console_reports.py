"""The console's Dashboard and Calibration pages (in-process, real PostgreSQL and Redis): who may
see them, what they show, the window form, and a lead's outcome on its timeline."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from conftest import FakeClock
from console_support import console_client, new_key, sign_in, text_of
from sla_support import sla_rules
from support import Client, lead, post_one, setup_pool

SVG = "{http://www.w3.org/2000/svg}"


async def _outcome(admin: Client, lead_id: str, outcome: str, **more: Any) -> None:
    r = await admin.post(f"/v1/leads/{lead_id}/outcome", json={"outcome": outcome, **more})
    assert r.status_code == 201, r.text


async def _day(admin: Client, clock: FakeClock) -> list[dict[str, Any]]:
    """Six leads ten minutes apart to alice and bob; two won, one rejected by sales."""
    await setup_pool(admin, ["alice", "bob"])
    decisions = []
    for n in range(6):
        decisions.append(await post_one(admin, lead(n)))
        clock.advance(minutes=10)
    await _outcome(admin, decisions[0]["lead_id"], "won", amount=12000, reason="signed")
    await _outcome(admin, decisions[1]["lead_id"], "won")
    await _outcome(admin, decisions[2]["lead_id"], "disqualified_by_sales")
    return decisions


def _figures(html: str) -> list[ET.Element]:
    """Every inline chart of a page, parsed (so each must be well-formed)."""
    found = []
    for chunk in html.split("<svg ")[1:]:
        found.append(ET.fromstring("<svg " + chunk.split("</svg>", 1)[0] + "</svg>"))
    return found


class TestDashboard:
    async def test_a_manager_sees_the_distribution_with_charts_and_tables(
        self, make_app: Any, clock: FakeClock
    ) -> None:
        async with console_client(make_app(sla_rules(30), clock=clock)) as c:
            await _day(c, clock)
            await sign_in(c, await new_key(c, "leads:read"))
            r = await c.get("/console/dashboard")
            assert r.status_code == 200, r.text
            text = text_of(r.text)
            assert "6 leads arrived in the window" in text
            figures = _figures(r.text)
            titles = [f.findtext(f"{SVG}title") for f in figures]
            assert titles[:3] == [
                "Leads per hour by stage",
                "Pool sales: actual and expected share",
                "Time to assign and to accept (minutes)",
            ]
            assert all(f.get("role") == "img" for f in figures)
            # round robin between two reps who were always there: 3 each, 50 % expected
            assert "sales alice 3 50.0%" in text
            assert "sales bob 3 50.0%" in text
            assert 'href="/console/dashboard" aria-current="page"' in r.text

    async def test_the_window_form_and_its_errors(self, make_app: Any, clock: FakeClock) -> None:
        async with console_client(make_app(sla_rules(30), clock=clock)) as c:
            await _day(c, clock)
            await sign_in(c, await new_key(c, "leads:read"))
            later = await c.get(
                "/console/dashboard", params={"start": "2026-11-23T15:30Z", "end": "2026-11-23T16:00Z"}
            )
            assert "3 leads arrived in the window" in text_of(later.text)
            empty = await c.get("/console/dashboard", params={"days": "", "start": "", "end": ""})
            assert empty.status_code == 200  # what the form sends with nothing filled in
            words = await c.get("/console/dashboard", params={"days": "three"})
            assert words.status_code == 400
            assert "days: a whole number of days" in text_of(words.text)
            bad = await c.get("/console/dashboard", params={"days": "0"})
            assert bad.status_code == 400
            assert "days: must be at least 1" in text_of(bad.text)
            both = await c.get("/console/dashboard", params={"days": "3", "start": "2026-11-01"})
            assert both.status_code == 400
            assert "give a number of days or a start" in text_of(both.text)
            garbled = await c.get("/console/dashboard", params={"end": "soon"})
            assert garbled.status_code == 400
            assert "end: not an ISO date" in text_of(garbled.text)


class TestCalibration:
    async def test_rule_writers_see_conversion_by_band_and_stage(
        self, make_app: Any, clock: FakeClock
    ) -> None:
        async with console_client(make_app(sla_rules(30), clock=clock)) as c:
            await _day(c, clock)
            await sign_in(c, await new_key(c, "rules:write"))
            r = await c.get("/console/calibration", params={"bands": "0,50"})
            assert r.status_code == 200, r.text
            text = text_of(r.text)
            # every lead scores 60 (a VP) and is stage "lead": 2 of 6 won; 1 of 3 judged rejected
            assert (
                "6 leads, 3 with an outcome: 2 converted (33.3%, 95% 9.7-70.0%), 2 won (33.3%), "
                "won revenue 12,000 USD." in text
            )
            assert ">= 50 6 2 33.3%" in text
            assert "< 0 0 0 -" in text
            assert "lead 6 2 33.3% 9.7-70.0% 2 1 of 3" in text
            titles = [f.findtext(f"{SVG}title") for f in _figures(r.text)]
            assert "Conversion by score band" in titles
            assert "Funnel per ruleset version" in titles
            assert 'value="0,50"' in r.text
            bad = await c.get("/console/calibration", params={"bands": "50,0"})
            assert bad.status_code == 400
            assert "the edges must increase" in text_of(bad.text)

    async def test_each_page_asks_its_scope(self, make_app: Any, clock: FakeClock) -> None:
        async with console_client(make_app(sla_rules(30), clock=clock)) as c:
            await sign_in(c, await new_key(c, "leads:read"))
            refused = await c.get("/console/calibration")
            assert refused.status_code == 403
            assert "needs a key with the &#39;rules:write&#39; scope" in refused.text
            await sign_in(c, await new_key(c, "rules:write"))
            assert (await c.get("/console/dashboard")).status_code == 403


class TestTimeline:
    async def test_an_outcome_is_on_the_leads_timeline(self, make_app: Any, clock: FakeClock) -> None:
        async with console_client(make_app(sla_rules(30), clock=clock)) as c:
            decisions = await _day(c, clock)
            await sign_in(c, await new_key(c, "leads:read"))
            page = await c.get(f"/console/leads/{decisions[0]['lead_id']}")
            text = text_of(page.text)
            assert "Outcome: won (12,000 USD)" in text
            assert "the lead was lead, score 60" in text
            assert "signed" in text
