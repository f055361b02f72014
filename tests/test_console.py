"""The console at /console: signing in with a key, each page's scope, CSRF, and the lead pages.
Real PostgreSQL and Redis; the app in-process (tests/test_console_browser.py drives a browser)."""

from __future__ import annotations

from typing import Any

from console_support import console_client, csrf, new_key, sign_in, text_of
from leadroute.access import CONSOLE_SCOPES
from leadroute.app import create_app
from leadroute.config import Settings
from support import ADMIN_KEY, POOL_RULES, lead, post_one, setup_pool


def _console_routes() -> list[tuple[str, str]]:
    settings = Settings.from_env({}, database_url="postgresql://unused/db", redis_url="redis://unused")
    found = set()
    for route in create_app(settings).routes:
        if not route.path_format.startswith("/console") or route.path_format.startswith("/console/static"):
            continue
        for handler in getattr(route, "route_handlers", []):
            found |= {(m, route.path_format) for m in handler.http_methods if m not in {"OPTIONS", "HEAD"}}
    return sorted(found)


class TestTheScopeTable:
    """Every console page has a row in CONSOLE_SCOPES, and every row is a page."""

    def test_every_page_has_a_row(self) -> None:
        routes = _console_routes()
        assert [r for r in routes if r not in CONSOLE_SCOPES] == []
        assert [r for r in CONSOLE_SCOPES if r not in routes] == []


class TestSigningIn:
    """A key signs in; the session is an HttpOnly, SameSite=Strict cookie; a bad key is refused."""

    async def test_sign_in_sets_a_strict_httponly_cookie(self, make_app: Any) -> None:
        async with console_client(make_app()) as c:
            form = await c.get("/console/sign-in")
            assert form.status_code == 200
            assert '<label for="key">API key</label>' in form.text
            r = await c.post("/console/sign-in", data={"key": ADMIN_KEY, "_csrf": csrf(form.text)})
            assert r.status_code == 303
            cookie = next(
                v for k, v in r.headers.multi_items() if k == "set-cookie" and "leadroute_console=" in v
            )
            for attribute in ("HttpOnly", "SameSite=strict", "Path=/console"):
                assert attribute.lower() in cookie.lower()
            assert "Secure" not in cookie  # plain http here
            page = await c.get("/console/leads")
            assert page.status_code == 200
            assert "key <code>00ad0001</code>" in page.text

    async def test_a_bad_key_is_refused_on_the_form(self, make_app: Any) -> None:
        async with console_client(make_app()) as c:
            form = await c.get("/console/sign-in")
            r = await c.post("/console/sign-in", data={"key": "lr_live_nope", "_csrf": csrf(form.text)})
            assert r.status_code == 401
            assert "That key is not valid" in r.text
            assert (await c.get("/console/leads", follow_redirects=False)).status_code == 303

    async def test_signing_in_needs_the_forms_token(self, make_app: Any) -> None:
        async with console_client(make_app()) as c:
            await c.get("/console/sign-in")
            r = await c.post("/console/sign-in", data={"key": ADMIN_KEY, "_csrf": "forged"})
            assert r.status_code == 403
            assert "The form has expired" in r.text

    async def test_without_a_session_a_page_sends_to_sign_in(self, make_app: Any) -> None:
        async with console_client(make_app()) as c:
            r = await c.get("/console/leads?email=a%40b.example", follow_redirects=False)
            assert r.status_code == 303
            assert (
                r.headers["location"] == "/console/sign-in?next=%2Fconsole%2Fleads%3Femail%3Da%2540b.example"
            )

    async def test_sign_out_needs_csrf_and_forgets_the_key(self, make_app: Any) -> None:
        async with console_client(make_app()) as c:
            token = await sign_in(c, ADMIN_KEY)
            assert (await c.post("/console/sign-out", data={"_csrf": "forged"})).status_code == 403
            assert (await c.get("/console/leads")).status_code == 200
            r = await c.post("/console/sign-out", data={"_csrf": token})
            assert r.status_code == 303
            assert (await c.get("/console/leads", follow_redirects=False)).status_code == 303

    async def test_a_post_from_another_site_is_refused(self, make_app: Any) -> None:
        async with console_client(make_app()) as c:
            token = await sign_in(c, ADMIN_KEY)
            r = await c.post(
                "/console/sign-out", data={"_csrf": token}, headers={"Origin": "https://evil.example"}
            )
            assert r.status_code == 403

    async def test_a_revoked_key_is_signed_out(self, make_app: Any) -> None:
        app = make_app()
        async with console_client(app) as c:
            admin = c
            key = await new_key(admin, "leads:read")
            await sign_in(c, key)
            key_id = key.split("_")[2]
            assert (await admin.delete(f"/v1/keys/{key_id}")).status_code in {200, 204}
            assert (await c.get("/console/leads", follow_redirects=False)).status_code == 303


class TestScopes:
    """Each page asks its scope; a key without it gets a page saying which scope, not an error."""

    async def test_leads_need_leads_read(self, make_app: Any) -> None:
        app = make_app()
        async with console_client(app) as c:
            admin = c
            await sign_in(c, await new_key(admin, "routing:admin"))
            r = await c.get("/console/leads")
            assert r.status_code == 403
            assert "needs a key with the &#39;leads:read&#39; scope" in r.text
            assert "<code>routing:admin</code>" in r.text

    async def test_pages_are_html_with_the_consoles_csp(self, make_app: Any) -> None:
        async with console_client(make_app()) as c:
            await sign_in(c, ADMIN_KEY)
            r = await c.get("/console/leads")
            assert r.headers["content-type"].startswith("text/html")
            assert "script-src 'self'" in r.headers["content-security-policy"]
            assert r.headers["cache-control"] == "no-store"
            css = await c.get("/console/static/console.css")
            assert css.status_code == 200
            assert ":focus-visible" in css.text


class TestLeads:
    """Search finds a lead by email and company; its page shows the timeline and the explain summary."""

    async def test_find_a_lead_and_read_its_story(self, make_app: Any) -> None:
        app = make_app(POOL_RULES)
        async with console_client(app) as c:
            admin = c
            await setup_pool(admin, ["olive", "oscar"])
            decisions = [await post_one(admin, lead(n)) for n in range(3)]
            await sign_in(c, await new_key(admin, "leads:read"))
            found = await c.get("/console/leads", params={"email": "PERSON1@company-1.example"})
            assert found.status_code == 200
            assert f"/console/leads/{decisions[1]['lead_id']}" in found.text
            assert decisions[0]["lead_id"] not in found.text
            by_company = await c.get("/console/leads", params={"company": "company-2.example"})
            assert f"/console/leads/{decisions[2]['lead_id']}" in by_company.text
            assert decisions[1]["lead_id"] not in by_company.text
            page = await c.get(f"/console/leads/{decisions[1]['lead_id']}")
            assert page.status_code == 200
            text = text_of(page.text)
            for kind in ("lead.received", "lead.scored", "lead.assigned"):
                assert kind in text
            assert f"Assigned to {decisions[1]['owner']} in pool sales" in text
            why = (await admin.get(f"/v1/leads/{decisions[1]['lead_id']}/explain")).json()
            assert why["summary"] in text

    async def test_an_unknown_lead_is_a_404_page(self, make_app: Any) -> None:
        async with console_client(make_app()) as c:
            await sign_in(c, ADMIN_KEY)
            r = await c.get("/console/leads/00000000-0000-4000-8000-000000000000")
            assert r.status_code == 404
            assert "text/html" in r.headers["content-type"]
