"""The console at /console: signing in with a key, each page's scope, CSRF, and every page.
Real PostgreSQL and Redis; the app in-process (tests/test_console_browser.py drives a browser)."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

import browser_support
from conftest import FakeClock
from console_support import BROKEN_RULES, DRAFT_RULES, Client, console_client, csrf, new_key, sign_in, text_of
from leadroute.config import Settings
from leadroute.console._timeline import describe
from leadroute.console.leads import PAGE
from leadroute.console.routing import PoolMemberNow, next_in_turn, owner_now
from leadroute.routing.admin import RoutingStateView
from leadroute.store.owners import Owner
from leadroute.workflow.log import EVENT_TYPES
from outbound_support import always, create_endpoint, receiver, relay_pass
from sla_support import fire, instance, sla_rules
from support import ADMIN_KEY, POOL_RULES, lead, post_one, setup_pool


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
            r = await c.get("/console/leads?company=acme.example", follow_redirects=False)
            assert r.status_code == 303
            assert (
                r.headers["location"] == "/console/sign-in?next=%2Fconsole%2Fleads%3Fcompany%3Dacme.example"
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
            null = await c.post("/console/sign-out", data={"_csrf": token}, headers={"Origin": "null"})
            assert null.status_code == 403
            # its own host (https at a proxy that ends TLS, http here): accepted
            own = await c.post(
                "/console/sign-out", data={"_csrf": token}, headers={"Origin": "https://testserver.local"}
            )
            assert own.status_code == 303

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
            token = await sign_in(c, await new_key(admin, "leads:read"))
            # by email: a POST, so the address is in no URL (logs, traces, history)
            found = await c.post(
                "/console/leads", data={"_csrf": token, "email": "PERSON1@company-1.example"}
            )
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


async def _ready(c: Client, *scopes: str) -> str:
    """Owners, a pool, three leads, and the client signed in with a key of ``scopes``."""
    await setup_pool(c, ["olive", "oscar"])
    for n in range(3):
        await post_one(c, lead(n))
    return await sign_in(c, await new_key(c, *scopes))


class TestRules:
    """Versions, diffs, drafts, the playground, replay, activate and roll back, each with its scope."""

    async def test_versions_and_a_diff(self, make_app: Any) -> None:
        async with console_client(make_app(POOL_RULES)) as c:
            token = await _ready(c, "rules:write")
            r = await c.post(
                "/console/rules/draft",
                files={"file": ("mine.yaml", DRAFT_RULES.encode())},
                data={"_csrf": token, "action": "upload"},
            )
            assert r.status_code == 303, r.text
            assert r.headers["location"] == "/console/rules/2?uploaded=1"
            listing = text_of((await c.get("/console/rules")).text)
            assert "v1 active" in listing
            assert "v2 draft" in listing
            diff = await c.get("/console/rules/diff", params={"a": 1, "b": 2})
            assert (
                '<span class="add">+  - {id: senior-mql, stage: mql, when: &#39;score &gt;= 50&#39;}</span>'
                in diff.text
            )
            assert '<span class="del">-description: everything to one pool</span>' in diff.text

    async def test_a_broken_draft_shows_its_line(self, make_app: Any) -> None:
        async with console_client(make_app(POOL_RULES)) as c:
            token = await _ready(c, "rules:write")
            r = await c.post(
                "/console/rules/draft",
                data={"_csrf": token, "action": "validate", "source": BROKEN_RULES, "name": "broken.yaml"},
            )
            assert r.status_code == 422
            assert '<a href="#L6"><code>broken.yaml:6' in r.text
            assert '<span id="L6" class="line-bad">' in r.text
            assert "rule <code>senior</code>" in r.text
            # the text is kept, to fix it in place; nothing was stored
            assert "title =~~ " in r.text
            versions = (await c.get("/v1/rulesets")).json()["versions"]
            assert [v["version"] for v in versions] == [1]

    async def test_validate_says_a_good_draft_would_be_stored(self, make_app: Any) -> None:
        async with console_client(make_app(POOL_RULES)) as c:
            token = await _ready(c, "rules:write")
            r = await c.post(
                "/console/rules/draft", data={"_csrf": token, "action": "validate", "source": DRAFT_RULES}
            )
            assert r.status_code == 200, r.text
            assert "Version 2 is valid" in r.text
            assert "Uploading it stores a new version 2." in r.text

    async def test_the_playground_decides_a_lead(self, make_app: Any) -> None:
        async with console_client(make_app(POOL_RULES)) as c:
            token = await _ready(c, "rules:write")
            form = {"_csrf": token, "email": "vp@bigco.example", "title": "VP Marketing"}
            active = text_of((await c.post("/console/rules/playground", data=form)).text)
            assert "Stage lead" in active
            assert "senior fit +60" in active
            draft = await c.post(
                "/console/rules/playground", data=form | {"ruleset_choice": "draft", "ruleset": DRAFT_RULES}
            )
            assert draft.status_code == 200, draft.text
            assert "Stage mql" in text_of(draft.text)
            bad = await c.post("/console/rules/playground", data=form | {"employees": "many"})
            assert bad.status_code == 422
            assert "<code>lead.employees</code>" in bad.text
            assert 'id="lead-employees" name="employees" type="number"' in bad.text
            assert 'aria-invalid="true" aria-describedby="err-employees"' in bad.text

    async def test_replay_then_activate_needs_rules_activate(self, make_app: Any) -> None:
        app = make_app(POOL_RULES)
        async with console_client(app) as c:
            token = await _ready(c, "rules:write")
            await c.post(
                "/console/rules/draft", data={"_csrf": token, "action": "upload", "source": DRAFT_RULES}
            )
            report = await c.post("/console/rules/replay", data={"_csrf": token, "version": "2", "days": "7"})
            assert report.status_code == 200, report.text
            text = text_of(report.text)
            assert "3 leads of the last 7 days replayed" in text
            assert "3 would change" in text
            assert "lead mql 3" in text  # the stage changes table
            refused = await c.post("/console/rules/2/activate", data={"_csrf": token})
            assert refused.status_code == 403
            assert "needs a key with the &#39;rules:activate&#39; scope" in refused.text
            assert (await c.get("/v1/rulesets/active")).json()["version"] == 1

            c.cookies.clear()
            token = await sign_in(c, await new_key(c, "rules:write", "rules:activate"))
            done = await c.post("/console/rules/2/activate", data={"_csrf": token})
            assert done.status_code == 303
            assert done.headers["location"] == "/console/rules?activated=2"
            assert (await c.get("/v1/rulesets/active")).json()["version"] == 2
            versions = (await c.get("/v1/rulesets")).json()["versions"]
            assert versions[0]["last_activated_at"] is not None
            back = await c.post("/console/rules/rollback", data={"_csrf": token})
            assert back.headers["location"] == "/console/rules?activated=1"
            assert (await c.get("/v1/rulesets/active")).json()["version"] == 1


class TestRouting:
    """Pools and owners with availability now; pause and resume through the owners API's path."""

    async def test_pools_owners_and_pause(self, make_app: Any) -> None:
        async with console_client(make_app(POOL_RULES)) as c:
            await setup_pool(c, ["olive", "oscar"])
            for n in range(3):
                await post_one(c, lead(n))
            key = await new_key(c, "routing:admin")
            key_id = key.split("_")[2]
            token = await sign_in(c, key)
            page = await c.get("/console/routing")
            assert page.status_code == 200
            text = text_of(page.text)
            assert "Pool sales round robin · 2 of 2 can take a lead now" in text
            assert "got the last lead" in text
            assert text.count("next in turn") == 1
            paused = await c.post("/console/routing/owners/oscar/pause", data={"_csrf": token})
            assert paused.status_code == 303
            assert (await c.get("/v1/owners/oscar")).json()["active"] is False
            assert "1 of 2 can take a lead now" in text_of((await c.get("/console/routing")).text)
            assert "no: inactive" in text_of((await c.get("/console/routing")).text)
            audit = (await c.get("/v1/audit")).json()
            paused_by = [
                e["actor"] for e in audit if e["action"] == "owner.patch" and e["subject"] == "owner:oscar"
            ]
            assert paused_by == [f"key:{key_id} (console)"]
            await c.post("/console/routing/owners/oscar/resume", data={"_csrf": token})
            assert (await c.get("/v1/owners/oscar")).json()["active"] is True

    async def test_routing_needs_routing_admin(self, make_app: Any) -> None:
        async with console_client(make_app(POOL_RULES)) as c:
            token = await _ready(c, "leads:read")
            assert (await c.get("/console/routing")).status_code == 403
            assert (
                await c.post("/console/routing/owners/oscar/pause", data={"_csrf": token})
            ).status_code == 403
            assert (await c.get("/v1/owners/oscar")).json()["active"] is True


class TestTheTimeline:
    """A lead's page tells its whole story: breaches, reassignments, and each webhook delivery."""

    async def test_a_breach_a_reassignment_and_deliveries(
        self, settings: Settings, clean: None, clock: FakeClock
    ) -> None:
        with receiver() as good, receiver(always(500)) as broken:
            async with instance(settings, sla_rules(minutes=30), clock, webhook_allow_private=True) as c:
                c.follow_redirects = False
                await setup_pool(c, ["ann", "ben"])
                ok = await create_endpoint(c, good.url + "/hooks", ["lead.assigned", "lead.reassigned"])
                bad = await create_endpoint(c, broken.url + "/in", ["lead.assigned"])
                posted = await post_one(c, lead(1))
                clock.advance(minutes=31)
                assert await fire(c) == 1
                await relay_pass(c)
                good.wait_for(2)
                await sign_in(c, ADMIN_KEY)
                text = text_of((await c.get(f"/console/leads/{posted['lead_id']}")).text)
        first = posted["owner"]
        assert f"SLA breached: {first} did not accept within 30 min (breach 1)" in text
        assert "Reassigned to" in text
        assert f"(from {first})" in text
        assert f"lead.assigned to {ok['id']}: delivered after 1 attempt(s)" in text
        assert f"lead.reassigned to {ok['id']}: delivered after 1 attempt(s)" in text
        assert (
            f"lead.assigned to {bad['id']}: pending after 1 attempt(s) last answer HTTP 500 next try" in text
        )


class TestSentences:
    """Every event type of the log has its own sentence on a lead's page."""

    def test_every_event_type_is_described(self) -> None:
        samples: dict[str, dict[str, Any]] = {
            "lead.received": {"body": {}},
            "lead.merged": {"matched_on": "email", "changed": {"title": {"old": "CEO", "new": "CTO"}}},
            "activity.recorded": {"activity": "page_view"},
            "lead.scored": {
                "cause": "received",
                "score": 10,
                "stage": "lead",
                "groups": {},
                "matched": [],
                "ruleset_version": 1,
                "ruleset_sha256": "x",
            },
            "lead.assigned": {"cause": "received", "owner": "ann", "pool": "sales"},
            "lead.reassigned": {"cause": "reassign", "owner": "ben", "previous_owner": "ann"},
            "lead.escalated": {"cause": "sla_breach", "owner": "boss"},
            "lead.queued": {"cause": "received", "queue": "sales", "reason": "nobody is on shift"},
            "lead.accepted": {"owner": "ann", "after_minutes": 3, "sla_stopped": True},
            "lead.sla_breached": {
                "owner": "ann",
                "due_at": "2026-11-23T15:30:00Z",
                "minutes": 30,
                "breach": 1,
                "on_breach": "reassign",
            },
            "lead.sla_warning": {
                "owner": "ann",
                "due_at": "2026-11-23T15:30:00Z",
                "minutes_left": 5,
                "minutes": 30,
            },
            "lead.closed": {"reason": "won"},
            "lead.outcome": {"outcome": "disqualified_by_sales", "at": "2026-11-24T09:00:00Z"},
        }
        assert sorted(samples) == sorted(EVENT_TYPES)
        texts = {
            kind: describe(kind, msgspec.convert(data, EVENT_TYPES[kind]))[0]
            for kind, data in samples.items()
        }
        assert texts == {
            "lead.received": "Received",
            "lead.merged": "Merged another submission of the same person (matched on email)",
            "activity.recorded": "Activity: page_view",
            "lead.scored": "Scored 10, stage lead (ruleset v1, received)",
            "lead.assigned": "Assigned to ann in pool sales",
            "lead.reassigned": "Reassigned to ben (from ann)",
            "lead.escalated": "Escalated to boss",
            "lead.queued": "Queued in sales: nobody is on shift",
            "lead.accepted": "Accepted by ann after 3 min",
            "lead.sla_breached": "SLA breached: ann did not accept within 30 min (breach 1)",
            "lead.sla_warning": "SLA warning: ann has 5 min left to accept (due 2026-11-23 15:30 UTC)",
            "lead.closed": "Closed: won",
            "lead.outcome": "Outcome: disqualified by sales",
        }


class TestSearchAndQueues:
    """Every filter narrows the search; pages follow one another; the queues page shows the waits."""

    async def test_filters_and_pages(self, make_app: Any) -> None:
        async with console_client(make_app(POOL_RULES)) as c:
            await setup_pool(c, ["olive", "oscar"])
            decided = [await post_one(c, lead(n, company="Acme Widgets")) for n in range(5)]
            await sign_in(c, ADMIN_KEY)

            def ids(html: str) -> list[str]:
                return re.findall(r'href="/console/leads/([0-9a-f-]{36})"', html)

            everyone = ids((await c.get("/console/leads")).text)
            assert everyone == [d["lead_id"] for d in reversed(decided)]
            olive = ids((await c.get("/console/leads", params={"owner": "olive"})).text)
            assert olive == [d["lead_id"] for d in reversed(decided) if d["owner"] == "olive"]
            assert ids((await c.get("/console/leads", params={"company": "acme wid"})).text) == everyone
            assert ids((await c.get("/console/leads", params={"stage": "mql"})).text) == []
            assert (
                ids((await c.get("/console/leads", params={"stage": "lead", "status": "assigned"})).text)
                == everyone
            )
            dated = await c.get(
                "/console/leads", params={"created_from": "2000-01-01", "created_to": "2000-01-02"}
            )
            assert ids(dated.text) == []
            bad = await c.get("/console/leads", params={"created_from": "yesterday"})
            assert bad.status_code == 400
            assert "created_from: a date as YYYY-MM-DD" in bad.text

    async def test_paging(self, make_app: Any) -> None:
        async with console_client(make_app(POOL_RULES)) as c:
            await setup_pool(c, ["olive"])
            decided = [await post_one(c, lead(n)) for n in range(PAGE + 3)]
            token = await sign_in(c, ADMIN_KEY)
            first = await c.post("/console/leads", data={"_csrf": token, "stage": "lead"})
            older = re.search(r'name="after" value="([^"]+)"', first.text)
            assert older is not None
            assert '<input type="hidden" name="stage" value="lead">' in first.text  # the filters go on
            second = await c.post(
                "/console/leads", data={"_csrf": token, "stage": "lead", "after": html.unescape(older[1])}
            )
            seen = re.findall(r'href="/console/leads/([0-9a-f-]{36})"', first.text + second.text)
            assert seen == [d["lead_id"] for d in reversed(decided)]
            assert 'name="after"' not in second.text
            assert ">Newest</button>" in second.text

    async def test_queued_leads_and_their_wait(self, make_app: Any) -> None:
        async with console_client(make_app(POOL_RULES)) as c:
            await setup_pool(c, ["olive"], inactive=["olive"])  # nobody can take a lead: they queue
            queued = [await post_one(c, lead(n)) for n in range(2)]
            assert {q["status"] for q in queued} == {"unassigned"}
            await sign_in(c, ADMIN_KEY)
            page = text_of((await c.get("/console/leads/queued")).text)
            assert "sales 2" in page  # the queue and its depth
            for q in queued:
                assert q["lead_id"] not in page  # ids are links, not text
            links = re.findall(
                r'href="/console/leads/([0-9a-f-]{36})"', (await c.get("/console/leads/queued")).text
            )
            assert links == [q["lead_id"] for q in queued]  # the longest wait first
            in_queue = await c.get("/console/leads", params={"queue": "sales"})
            assert re.findall(r'href="/console/leads/([0-9a-f-]{36})"', in_queue.text) == [
                q["lead_id"] for q in reversed(queued)
            ]


class TestLimits:
    """A console form is bounded like the API's dry runs: a huge body is refused, on a page."""

    async def test_a_huge_draft_is_refused(self, make_app: Any) -> None:
        async with console_client(make_app(POOL_RULES)) as c:
            token = await sign_in(c, ADMIN_KEY)
            r = await c.post(
                "/console/rules/draft",
                data={"_csrf": token, "action": "validate", "source": "#" * (3 * 1024 * 1024)},
            )
            assert r.status_code == 413
            assert "text/html" in r.headers["content-type"]


class TestReplayOfText:
    """The draft editor replays its text without storing it."""

    async def test_replay_a_pasted_draft(self, make_app: Any) -> None:
        async with console_client(make_app(POOL_RULES)) as c:
            token = await _ready(c, "rules:write")
            r = await c.post(
                "/console/rules/replay", data={"_csrf": token, "source": DRAFT_RULES, "days": "7"}
            )
            assert r.status_code == 200, r.text
            text = text_of(r.text)
            assert "(v2) against the active v1" in text
            assert "3 would change" in text
            assert "Activate v2" not in text  # nothing stored: upload it first
            assert [v["version"] for v in (await c.get("/v1/rulesets")).json()["versions"]] == [1]


class TestNextInTurn:
    """The routing page's "next in turn" follows round_robin.lua: after the cursor, in byte order,
    the first member able to take a lead, wrapping around."""

    @staticmethod
    def _members(*spec: tuple[str, str | None]) -> list[PoolMemberNow]:
        now = datetime(2026, 11, 23, 15, tzinfo=UTC)
        state = RoutingStateView(present=True, open={}, daily={}, day={}, last={}, seq=0, rr={}, account={})
        members = []
        for ident, reason in spec:
            stored = Owner(
                id=ident,
                name=ident,
                email=None,
                active=True,
                timezone="UTC",
                working_hours=None,
                out_of_office=[],
                capacity=None,
                weight=1,
                skills=[],
                crm_user_id=None,
                slack_user_id=None,
                created_at=now,
                updated_at=now,
            )
            members.append(PoolMemberNow(owner=owner_now(stored, state, now), reason=reason, last=False))
        return members

    def test_after_the_cursor_skipping_who_cannot(self) -> None:
        members = self._members(("ann", None), ("ben", "off_hours"), ("cat", None))
        assert next_in_turn(members, None) == "ann"
        assert next_in_turn(members, "ann") == "cat"
        assert next_in_turn(members, "cat") == "ann"

    def test_a_cursor_that_left_the_pool_and_nobody_available(self) -> None:
        members = self._members(("ann", None), ("cat", None))
        assert next_in_turn(members, "bob") == "cat"
        assert next_in_turn(self._members(("ann", "inactive")), "ann") is None


class TestTheBrowserHarness:
    """Without Chromium the browser tests skip, saying why, except in CI, where they fail."""

    def test_skips_locally_and_fails_in_ci(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(browser_support, "CHROMIUM", "/nonexistent/chromium")
        monkeypatch.setenv("PATH", "/nonexistent")
        monkeypatch.delenv("CI", raising=False)
        with pytest.raises(pytest.skip.Exception, match=r"no Chromium at /nonexistent/chromium"):
            browser_support.chromium_or_skip()
        monkeypatch.setenv("CI", "true")
        with pytest.raises(pytest.fail.Exception, match="must run in CI"):
            browser_support.chromium_or_skip()

    def test_failure_artifacts_go_to_test_artifacts(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("TEST_ARTIFACTS_DIR", raising=False)
        assert browser_support.artifacts_dir() == browser_support.ROOT / "test-artifacts"
        name = browser_support.artifact_name("tests/test_console_browser.py::TestLeads::test_find[x/y]")
        assert name == "TestLeads_test_find_x_y_"


class TestUnknownAddresses:
    """An unknown console address is a page too; the API keeps answering problem+json."""

    async def test_a_404_page(self, make_app: Any) -> None:
        async with console_client(make_app()) as c:
            await sign_in(c, ADMIN_KEY)
            r = await c.get("/console/nowhere")
            assert r.status_code == 404
            assert r.headers["content-type"].startswith("text/html")
            api = await c.get("/v1/nowhere")
            assert api.status_code == 404
            assert api.headers["content-type"] == "application/problem+json"


class TestOverHttps:
    """Served over https, the session cookie is Secure too."""

    async def test_the_cookie_is_secure(self, make_app: Any) -> None:
        async with AsyncTestClient(make_app(), base_url="https://console.example") as c:
            c.follow_redirects = False
            form = await c.get("/console/sign-in")
            assert "secure" in form.headers["set-cookie"].lower()
            r = await c.post("/console/sign-in", data={"key": ADMIN_KEY, "_csrf": csrf(form.text)})
            assert r.status_code == 303
            cookie = r.headers["set-cookie"].lower()
            assert cookie.startswith("leadroute_console=")
            for attribute in ("secure", "httponly", "samesite=strict", "path=/console"):
                assert attribute in cookie
