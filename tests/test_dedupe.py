"""One person, one lead (issue 13 §1): matching at intake, merging, re-engagement, on real servers."""

from __future__ import annotations

import asyncio
import collections
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from conftest import FakeClock
from leadroute.config import Settings
from leadroute.routing import RoutingState, snapshot_from_pg
from outbound_support import create_endpoint, receiver, relay_pass, verified
from process_support import cli_env, leadroute, serve_on
from sla_support import assert_routing_consistent, in_app, instance, open_counts
from support import AUTH, authed, connection, count, explain, fetch, get_lead, post_one, setup_pool

Client = AsyncTestClient[Litestar]

RULES = """
version: 1
description: a pool for everyone; a VP is an sql
scoring:
  groups:
    fit: {max: 100}
  rules:
    - {id: vp, group: fit, when: 'title =~~ "(?i)\\\\bvp\\\\b"', points: 60}
    - {id: big, group: fit, when: 'employees != null and employees >= 1000', points: 30}
qualification:
  - {id: hot, stage: sql, when: 'score >= 60'}
  - {id: rest, stage: lead}
routing:
  rules:
    - {id: everyone, when: 'true', pool: sales}
  fallback: unassigned
"""

# Only sql leads are routed: a plain lead waits in the nurture queue until its stage rises.
QUALIFIED_ONLY = RULES.replace("when: 'true', pool: sales", "when: 'stage == \"sql\"', pool: sales").replace(
    "fallback: unassigned", "fallback: nurture"
)

PREVIOUS_OWNER = RULES.replace(
    "  fallback: unassigned", "  fallback: unassigned\n  reengaged: previous_owner"
)


async def post(client: Client, body: dict[str, Any]) -> httpx.Response:
    return await client.post("/v1/leads", json=body)


async def merged(client: Client, body: dict[str, Any]) -> dict[str, Any]:
    """Post a lead event that must merge into an existing lead; its answer."""
    r = await post(client, body)
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    assert answer["merged"] is True
    return answer


@pytest.fixture
async def client(make_app: Any, clock: FakeClock) -> Any:
    async with authed(make_app(RULES, clock=clock)) as c:
        await setup_pool(c, ["ana", "ben"])
        yield c


class TestMatching:
    """A lead event of a person who has a live lead is merged into it, whatever the spelling."""

    async def test_the_same_email_in_another_case_is_the_same_lead(self, client: Client) -> None:
        first = await post_one(client, {"email": "Jo.Smith@Acme.example", "first_name": "Jo"})
        assert first["merged"] is False
        again = await merged(client, {"email": "jo.smith@ACME.EXAMPLE", "last_name": "Smith"})
        assert again["lead_id"] == first["lead_id"]
        assert again["owner"] == first["owner"]
        assert await count(client.app.state.runtime.settings, "SELECT count(*) FROM leads") == 1

    async def test_a_phone_written_differently_is_the_same_lead(self, client: Client) -> None:
        first = await post_one(client, {"phone": "+1 (415) 555-0100", "country": "US"})
        again = await merged(client, {"phone": "415.555.0100", "country": "United States", "title": "CTO"})
        assert again["lead_id"] == first["lead_id"]
        # the phone matched although the email is new: the email is filled in
        third = await merged(client, {"phone": "+14155550100", "email": "cto@acme.example"})
        assert third["lead_id"] == first["lead_id"]
        story = await get_lead(client, first["lead_id"])
        assert story["lead"]["email"] == "cto@acme.example"
        assert story["lead"]["title"] == "CTO"

    async def test_email_is_matched_before_phone(self, client: Client) -> None:
        by_email = await post_one(client, {"email": "a@one.example"})
        by_phone = await post_one(client, {"email": "b@two.example", "phone": "+442079460000"})
        assert by_email["lead_id"] != by_phone["lead_id"]
        again = await merged(client, {"email": "a@one.example", "phone": "+44 20 7946 0000"})
        assert again["lead_id"] == by_email["lead_id"]

    async def test_a_name_alone_does_not_match_unless_enabled(self, client: Client) -> None:
        first = await post_one(client, {"email": "jo@acme.example", "first_name": "Jo", "last_name": "Smith"})
        other = await post_one(
            client,
            {
                "email": "jsmith@gmail.example",
                "first_name": "jo",
                "last_name": "SMITH",
                "website": "acme.example",
            },
        )
        assert other["lead_id"] != first["lead_id"]

    async def test_name_and_company_domain_match_when_enabled(
        self, settings: Settings, make_app: Any, clock: FakeClock
    ) -> None:
        make_app(RULES, clock=clock)  # empty tables
        async with instance(settings, RULES, clock, match_by_name=True) as c:
            await setup_pool(c, ["ana"])
            first = await post_one(c, {"email": "jo@acme.example", "first_name": "Jo", "last_name": "Smith"})
            again = await merged(
                c,
                {
                    "email": "jsmith@gmail.example",
                    "first_name": " jo ",
                    "last_name": "SMITH",
                    "website": "https://www.acme.example/contact",
                },
            )
            assert again["lead_id"] == first["lead_id"]
            # another company's Jo Smith is someone else
            other = await post_one(
                c, {"email": "jo@globex.example", "first_name": "Jo", "last_name": "Smith"}
            )
            assert other["lead_id"] != first["lead_id"]


class TestMerging:
    """Empty fields are filled, changed ones recorded with their old values, the owner is kept."""

    async def test_fields_filled_and_changed_and_the_owner_kept(self, client: Client) -> None:
        first = await post_one(
            client, {"email": "jo@acme.example", "title": "Engineer", "source": "web_form"}
        )
        assert first["owner"] in {"ana", "ben"}
        again = await merged(
            client,
            {
                "email": "jo@acme.example",
                "title": "VP Engineering",
                "employees": 5000,
                "source": "webinar",
                "attributes": {"plan": "pro"},
            },
        )
        assert again["lead_id"] == first["lead_id"]
        assert again["owner"] == first["owner"]  # never a second rep for one person
        assert (again["score"], again["stage"]) == (90, "sql")
        story = await get_lead(client, first["lead_id"])
        assert story["lead"]["title"] == "VP Engineering"
        assert story["lead"]["employees"] == 5000
        assert story["lead"]["source"] == "web_form"  # first touch stays
        assert story["lead"]["attributes"] == {"plan": "pro"}
        assert story["owner"] == first["owner"]
        event = next(h for h in story["history"] if h["type"] == "lead.merged")
        data = event["data"]
        assert data["matched_on"] == "email"
        assert data["source"] == "webinar"
        assert data["filled"] == {"employees": 5000, "attributes.plan": "pro"}
        assert data["changed"] == {"title": {"old": "Engineer", "new": "VP Engineering"}}
        kinds = [h["type"] for h in story["history"]]
        assert kinds.count("lead.scored") == 2  # the score changed: scored again
        assert kinds.count("lead.assigned") == 1
        # one open lead for the owner, counted once
        assert (await open_counts(client)).get(first["owner"]) == 1
        await assert_routing_consistent(client)

    async def test_an_unchanged_score_records_no_new_score(self, client: Client) -> None:
        first = await post_one(client, {"email": "jo@acme.example"})
        await merged(client, {"email": "jo@acme.example", "city": "Berlin"})
        story = await get_lead(client, first["lead_id"])
        kinds = [h["type"] for h in story["history"]]
        assert kinds.count("lead.scored") == 1
        assert kinds[-1] == "lead.merged"

    async def test_an_unowned_lead_whose_stage_rises_is_routed(self, make_app: Any, clock: FakeClock) -> None:
        async with authed(make_app(QUALIFIED_ONLY, clock=clock)) as c:
            await setup_pool(c, ["ana"])
            first = await post_one(c, {"email": "jo@acme.example", "title": "Engineer"})
            assert (first["status"], first["owner"]) == ("unassigned", None)
            again = await merged(c, {"email": "jo@acme.example", "title": "VP Sales"})
            assert (again["stage"], again["owner"], again["status"]) == ("sql", "ana", "assigned")
            story = await get_lead(c, first["lead_id"])
            assigned = next(h for h in story["history"] if h["type"] == "lead.assigned")
            assert assigned["data"]["cause"] == "stage_rose"
            await assert_routing_consistent(c)

    async def test_a_retry_of_the_merged_event_returns_the_first_answer(self, client: Client) -> None:
        first = await post_one(client, {"email": "jo@acme.example"})
        body = {"email": "JO@acme.example", "title": "VP Sales"}
        r1 = await client.post("/v1/leads", json=body, headers={"Idempotency-Key": "k-merge"})
        r2 = await client.post("/v1/leads", json=body, headers={"Idempotency-Key": "k-merge"})
        assert r1.status_code == r2.status_code == 200
        assert r1.json() == r2.json()
        assert r1.json()["lead_id"] == first["lead_id"]
        story = await get_lead(client, first["lead_id"])
        assert [h["type"] for h in story["history"]].count("lead.merged") == 1

    async def test_explain_and_history_tell_every_merge(self, client: Client, clock: FakeClock) -> None:
        first = await post_one(client, {"email": "jo@acme.example", "title": "Engineer"})
        clock.advance(minutes=5)
        await merged(client, {"email": "jo@acme.example", "title": "VP Sales", "source": "webinar"})
        clock.advance(minutes=5)
        await merged(client, {"email": "jo@acme.example", "city": "Berlin", "source": "crm"})
        why = await explain(client, first["lead_id"])
        texts = [m["text"] for m in why["merges"]]
        assert texts == [
            "Merged on 2026-11-23 15:05 UTC from webinar (matched on email): changed title (was 'Engineer').",
            "Merged on 2026-11-23 15:10 UTC from crm (matched on email): filled city.",
        ]
        assert all(t in why["summary"] for t in texts)

    async def test_the_summary_still_ends_where_the_lead_is_now(self, client: Client) -> None:
        first = await post_one(client, {"email": "jo@acme.example", "title": "Engineer"})
        r = await client.post(f"/v1/assignments/{first['lead_id']}/reassign", json={"reason": "territory"})
        assert r.status_code == 200, r.text
        now_with = r.json()["owner"]
        await merged(client, {"email": "jo@acme.example", "city": "Berlin"})
        why = await explain(client, first["lead_id"])
        assert "filled city" in why["summary"]
        assert why["summary"].endswith(f"Now with {now_with} (reassigned).")


class TestConcurrency:
    """50 concurrent posts of one person without keys: one lead, one owner, capacity used once."""

    async def test_fifty_concurrent_posts_make_one_lead(self, client: Client, settings: Settings) -> None:
        bodies = [
            {"email": f"{'JO' if n % 2 else 'jo'}@acme.example", "title": "VP Sales"} for n in range(50)
        ]
        answers = await asyncio.gather(*(post(client, b) for b in bodies))
        assert sorted(r.status_code for r in answers) == [200] * 49 + [201]
        assert len({r.json()["lead_id"] for r in answers}) == 1
        assert len({r.json()["owner"] for r in answers}) == 1
        assert await count(settings, "SELECT count(*) FROM leads") == 1
        assert await count(settings, "SELECT count(*) FROM assignments") == 1
        owner = answers[0].json()["owner"]
        counts = await open_counts(client)
        assert counts.get(owner) == 1
        assert sum(counts.values()) == 1
        await assert_routing_consistent(client)


class TestReengagement:
    """After the window (or once closed) a returning person is a new lead, linked to the old one."""

    async def test_within_the_window_it_merges(self, client: Client, clock: FakeClock) -> None:
        first = await post_one(client, {"email": "jo@acme.example"})
        clock.advance(days=89)
        again = await merged(client, {"email": "jo@acme.example"})
        assert again["lead_id"] == first["lead_id"]

    async def test_an_activity_keeps_the_lead_live(self, client: Client, clock: FakeClock) -> None:
        first = await post_one(client, {"email": "jo@acme.example"})
        clock.advance(days=60)
        r = await client.post(
            "/v1/events",
            json={"email": "jo@acme.example", "type": "page_view", "occurred_at": clock.now.isoformat()},
        )
        assert r.status_code == 201, r.text
        clock.advance(days=60)  # 120 days after the lead, 60 after the activity
        again = await merged(client, {"email": "jo@acme.example"})
        assert again["lead_id"] == first["lead_id"]

    async def test_after_the_window_it_is_a_new_lead_linked_to_the_old(
        self, client: Client, clock: FakeClock
    ) -> None:
        first = await post_one(client, {"email": "jo@acme.example"})
        clock.advance(days=91)
        again = await post_one(client, {"email": "jo@acme.example"})
        assert again["lead_id"] != first["lead_id"]
        assert again["merged"] is False
        story = await get_lead(client, again["lead_id"])
        received = story["history"][0]
        assert received["data"]["previous_lead_id"] == first["lead_id"]
        assert received["data"]["matched_on"] == "email"
        why = await explain(client, again["lead_id"])
        assert f"returning person: their previous lead is {first['lead_id']}" in why["summary"]

    async def test_a_closed_lead_is_not_merged_into(self, client: Client) -> None:
        first = await post_one(client, {"email": "jo@acme.example"})
        r = await client.post(f"/v1/assignments/{first['lead_id']}/close", json={"reason": "lost"})
        assert r.status_code == 200, r.text
        again = await post_one(client, {"email": "jo@acme.example"})
        assert again["lead_id"] != first["lead_id"]

    async def test_previous_owner_routing(self, make_app: Any, clock: FakeClock) -> None:
        async with authed(make_app(PREVIOUS_OWNER, clock=clock)) as c:
            await setup_pool(c, ["ana", "ben", "cy"])
            first = await post_one(c, {"email": "jo@acme.example"})
            await post_one(c, {"email": "x@other.example"})  # moves round robin on
            clock.advance(days=100)
            again = await post_one(c, {"email": "jo@acme.example"})
            assert again["lead_id"] != first["lead_id"]
            assert again["owner"] == first["owner"]
            story = await get_lead(c, again["lead_id"])
            assigned = next(h for h in story["history"] if h["type"] == "lead.assigned")
            assert assigned["data"]["strategy"] == "previous_owner"
            await assert_routing_consistent(c)

    async def test_previous_owner_not_eligible_routes_as_usual(self, make_app: Any, clock: FakeClock) -> None:
        async with authed(make_app(PREVIOUS_OWNER, clock=clock)) as c:
            await setup_pool(c, ["ana", "ben"])
            first = await post_one(c, {"email": "jo@acme.example"})
            prev = first["owner"]
            r = await c.patch(f"/v1/owners/{prev}", json={"active": False})
            assert r.status_code == 200, r.text
            clock.advance(days=100)
            again = await post_one(c, {"email": "jo@acme.example"})
            assert again["owner"] not in {None, prev}
            story = await get_lead(c, again["lead_id"])
            assigned = next(h for h in story["history"] if h["type"] == "lead.assigned")
            assert {"owner": prev, "reason": "inactive", "pool": None} in assigned["data"]["skipped"]

    async def test_without_the_switch_the_previous_owner_is_not_preferred(
        self, client: Client, clock: FakeClock
    ) -> None:
        first = await post_one(client, {"email": "jo@acme.example"})
        clock.advance(days=100)
        again = await post_one(client, {"email": "jo@acme.example"})
        story = await get_lead(client, again["lead_id"])
        assigned = next(h for h in story["history"] if h["type"] == "lead.assigned")
        assert assigned["data"]["strategy"] == "round_robin"
        assert again["owner"] != first["owner"]  # round robin moved on to the other owner


class TestActivities:
    """An activity posted by email attaches to the one lead the person has."""

    async def test_the_activity_attaches_to_the_merged_lead(self, client: Client) -> None:
        first = await post_one(client, {"email": "jo@acme.example"})
        await merged(client, {"email": "JO@acme.example"})
        r = await client.post(
            "/v1/events",
            json={"email": "Jo@Acme.example", "type": "page_view", "occurred_at": "2026-11-23T15:00:00Z"},
        )
        assert r.status_code == 201, r.text
        assert r.json()["lead_id"] == first["lead_id"]


async def _legacy_duplicate(
    settings: Settings, lead_id: str, *, email: str | None = None, phone: str | None = None
) -> None:
    """Make a stored lead a duplicate the way leads were written before intake matched people:
    give it another lead's email or phone behind intake's back."""
    async with connection(settings) as conn:
        if email is not None:
            await conn.execute(
                "UPDATE leads SET email = $2,"
                " normalized = jsonb_set(normalized, '{email}', to_jsonb($2::text)) WHERE id = $1",
                uuid.UUID(lead_id),
                email,
            )
        if phone is not None:
            await conn.execute(
                "UPDATE leads SET phone_e164 = $2,"
                " normalized = jsonb_set(normalized, '{phone_e164}', to_jsonb($2::text)) WHERE id = $1",
                uuid.UUID(lead_id),
                phone,
            )


class TestDedupeCommand:
    """`leadroute leads dedupe` reports old duplicates (dry run), and merges them with --apply."""

    async def test_dry_run_then_apply(self, client: Client, settings: Settings, clock: FakeClock) -> None:
        # the command runs on the wall clock (the window counts from it): a day ago, by the test's
        clock.now = datetime.now(UTC) - timedelta(days=1)
        a = await post_one(client, {"email": "jo@acme.example", "title": "Engineer"})
        clock.advance(minutes=1)
        b = await post_one(client, {"email": "jo.b@acme.example", "phone": "+14155550100", "city": "Berlin"})
        clock.advance(minutes=1)
        c = await post_one(client, {"email": "other@globex.example", "title": "VP Sales"})
        lone = await post_one(client, {"email": "someone@else.example"})
        await _legacy_duplicate(settings, b["lead_id"], email="jo@acme.example")
        await _legacy_duplicate(settings, c["lead_id"], phone="+14155550100")
        r = await client.post(
            "/v1/events",
            json={"lead_id": c["lead_id"], "type": "page_view", "occurred_at": clock.now.isoformat()},
        )
        assert r.status_code == 201, r.text
        owners = {x["lead_id"]: x["owner"] for x in (a, b, c)}
        assert set(owners.values()) == {"ana", "ben"}  # round robin: a and c with ana, b with ben
        env = cli_env(settings)

        dry = await asyncio.to_thread(leadroute, "leads", "dedupe", env=env)
        assert dry.returncode == 0, dry.stderr
        assert "1 group(s)" in dry.stdout
        assert f"keep   {a['lead_id']}" in dry.stdout
        assert "survives: open, has an owner (ana), the oldest" in dry.stdout
        assert f"merge  {b['lead_id']}" in dry.stdout
        assert f"merge  {c['lead_id']}" in dry.stdout
        assert lone["lead_id"] not in dry.stdout
        assert "jo@acme.example" not in dry.stdout  # ids, never the person's data
        assert "dry run: nothing changed" in dry.stdout
        assert await count(settings, "SELECT count(*) FROM lead_events WHERE kind = 'lead.merged'") == 0

        done = await asyncio.to_thread(leadroute, "leads", "dedupe", "--apply", env=env)
        assert done.returncode == 0, done.stderr
        assert "merged 2 duplicate(s) into 1 lead(s)" in done.stdout

        rows = {
            str(r["id"]): r
            for r in await fetch(settings, "SELECT id, status, merged_into, owner_id FROM leads")
        }
        assert rows[a["lead_id"]]["status"] == "assigned"
        assert rows[a["lead_id"]]["owner_id"] == owners[a["lead_id"]]
        for loser in (b, c):
            assert rows[loser["lead_id"]]["status"] == "closed"
            assert str(rows[loser["lead_id"]]["merged_into"]) == a["lead_id"]
        story = await get_lead(client, a["lead_id"])
        merges = [h["data"] for h in story["history"] if h["type"] == "lead.merged"]
        assert [m["merged_from"] for m in merges] == [b["lead_id"], c["lead_id"]]
        assert merges[0]["filled"] == {
            "phone_e164": "+14155550100",
            "phone": "+14155550100",
            "city": "Berlin",
        }
        assert merges[1]["changed"]["title"] == {"old": "Engineer", "new": "VP Sales"}
        assert [h["type"] for h in story["history"]].count("activity.recorded") == 1  # c's, copied
        assert story["stage"] == "sql"
        why = await explain(client, a["lead_id"])
        assert f"from duplicate lead {b['lead_id']} (matched on email)" in why["summary"]
        assert f"from duplicate lead {c['lead_id']} (matched on phone)" in why["summary"]
        closed = await get_lead(client, b["lead_id"])
        closing = next(h for h in closed["history"] if h["type"] == "lead.closed")
        assert closing["data"]["reason"] == (f"merged into {a['lead_id']} (a duplicate of the same person)")
        # every slot of a closed duplicate was freed: Redis agrees with PostgreSQL
        counts = await open_counts(client)
        assert {o: n for o, n in counts.items() if n} == collections.Counter([a["owner"], lone["owner"]])
        await assert_routing_consistent(client)

        # the duplicates' email now reaches the survivor, and a new event merges into it
        r = await client.post(
            "/v1/events",
            json={"email": "other@globex.example", "type": "page_view", "occurred_at": clock.now.isoformat()},
        )
        assert r.status_code == 201, r.text
        assert r.json()["lead_id"] == a["lead_id"]
        again = await merged(client, {"phone": "+1 415 555 0100", "country": "US"})
        assert again["lead_id"] == a["lead_id"]

        # a second run finds nothing left to merge
        rerun = await asyncio.to_thread(leadroute, "leads", "dedupe", env=env)
        assert "0 group(s)" in rerun.stdout, rerun.stdout

    async def test_closed_and_stale_leads_stay_apart(
        self, client: Client, settings: Settings, clock: FakeClock
    ) -> None:
        # the command runs on the wall clock: the old lead is 101 days quiet by it, the new one 1 day
        clock.now = datetime.now(UTC) - timedelta(days=101)
        old = await post_one(client, {"email": "jo@acme.example"})
        clock.advance(days=100)
        new = await post_one(client, {"email": "jo@acme.example"})  # re-engaged: a new lead
        assert new["lead_id"] != old["lead_id"]
        dry = await asyncio.to_thread(leadroute, "leads", "dedupe", env=cli_env(settings))
        assert dry.returncode == 0, dry.stderr
        assert "nothing to merge" in dry.stdout
        assert "0 to merge" in dry.stdout


class TestOutbound:
    """``lead.merged`` reaches webhook endpoints with the names of the fields, never their values."""

    async def test_a_merge_is_sent_without_the_persons_data(
        self, settings: Settings, clean: None, clock: FakeClock
    ) -> None:
        with receiver() as got:
            async with instance(settings, RULES, clock, webhook_allow_private=True) as c:
                await setup_pool(c, ["ana"])
                endpoint = await create_endpoint(c, got.url, ["lead.merged"])
                first = await post_one(c, {"email": "jo@acme.example", "title": "Engineer"})
                await merged(c, {"email": "JO@acme.example", "title": "VP Sales", "phone": "+14155550100"})
                await relay_pass(c)
                (request,) = got.wait_for(1)
                body = verified(request, endpoint["secret"])
                assert body["type"] == "lead.merged"
                assert body["data"]["lead_id"] == first["lead_id"]
                assert body["data"]["event"] == {
                    "merged_from": None,
                    "matched_on": "email",
                    "changed_fields": ["title"],
                    "filled_fields": ["phone", "phone_e164"],
                }
                for private in (b"jo@", b"JO@", b"555", b"Engineer", b"VP Sales"):
                    assert private not in request.body


class TestProcesses:
    """50 concurrent posts of one person, no keys, over HTTP to two `leadroute serve` processes."""

    async def test_one_lead_one_owner_capacity_used_once(
        self, settings: Settings, clean: None, tmp_path: Path
    ) -> None:
        rules = tmp_path / "rules.yaml"
        rules.write_text(RULES)
        one = serve_on(settings, rules, tmp_path / "one.log")
        two = serve_on(settings, rules, tmp_path / "two.log")
        try:
            one.wait_ready()
            two.wait_ready()
            async with httpx.AsyncClient(timeout=60, headers=AUTH) as http:
                for name in ("ana", "ben"):
                    r = await http.put(
                        f"{one.base}/v1/owners/{name}", json={"name": name, "capacity": {"max_open": 30}}
                    )
                    assert r.status_code == 200, r.text
                r = await http.put(f"{one.base}/v1/pools/sales", json={"members": ["ana", "ben"]})
                assert r.status_code == 200, r.text
                # every spelling shares the email (two posts that share no value cannot be known to
                # be one person: one with only the phone and one with only the email make two leads)
                spellings = [
                    {"email": "Jo.Smith@Acme.example"},
                    {"email": "jo.smith@acme.example", "phone": "+1 415 555 0100"},
                    {
                        "email": "JO.SMITH@ACME.EXAMPLE",
                        "phone": "(415) 555-0100",
                        "country": "US",
                        "title": "VP",
                    },
                    {"email": "jo.smith@acme.example", "city": "Berlin"},
                ]
                bodies = [spellings[n % len(spellings)] for n in range(50)]
                answers = await asyncio.gather(
                    *(
                        http.post(f"{(one if n % 2 else two).base}/v1/leads", json=b)
                        for n, b in enumerate(bodies)
                    )
                )
                assert sorted(r.status_code for r in answers) == [200] * 49 + [201]
                assert len({r.json()["lead_id"] for r in answers}) == 1
                assert len({r.json()["owner"] for r in answers}) == 1
        finally:
            one.stop()
            two.stop()
        assert await count(settings, "SELECT count(*) FROM leads") == 1
        assert await count(settings, "SELECT count(*) FROM assignments") == 1
        assert await count(settings, "SELECT count(*) FROM lead_events WHERE kind = 'lead.merged'") == 49
        # the owner's capacity was used once: Redis holds exactly what PostgreSQL implies
        async with connection(settings) as conn:
            expected = await snapshot_from_pg(conn, datetime.now(UTC))
        redis = Redis.from_url(str(settings.redis_url))
        try:
            state = await RoutingState(redis, settings.redis_prefix).read()
        finally:
            await redis.aclose()
        assert {o: n for o, n in state.open.items() if n} == {answers[0].json()["owner"]: 1}
        assert state.open == expected.open


class TestRoundTrips:
    """Matching costs intake no statement of its own: the identity locks and the candidates are read
    by the transaction's first statement, with the key claim and the routing lock (migration 0017)."""

    async def test_statements_of_a_new_lead_and_of_a_merge(
        self, settings: Settings, clean: None, clock: FakeClock
    ) -> None:
        async with instance(settings, RULES, clock, db_pool_min=1, db_pool_max=1) as c:
            await setup_pool(c, ["ana"])
            seen: list[str] = []

            async def listen(rt: Any) -> None:
                async with rt.db.acquire() as conn:  # the pool's only connection
                    conn._con.add_query_logger(lambda record: seen.append(" ".join(record.query.split())))

            await in_app(c, listen)
            await post_one(c, {"email": "warm@up.example"})  # type introspection, routing config

            def transaction() -> list[str]:
                begin, commit = seen.index("BEGIN;"), seen.index("COMMIT;")
                statements = seen[begin + 1 : commit]
                seen.clear()
                return statements

            seen.clear()
            await post_one(c, {"email": "jo@acme.example"})
            assert [s[:40] for s in transaction()] == [
                "SELECT * FROM leadroute_intake_begin($1,",  # key, identity locks + match, routing lock
                "WITH lead AS ( INSERT INTO leads (id, em",  # the lead, its events, decision, account...
            ]
            await merged(c, {"email": "JO@acme.example"})
            assert [s[:40] for s in transaction()] == [
                "SELECT * FROM leadroute_intake_begin($1,",
                "SELECT occurred_at, payload FROM lead_ev",  # its activities, to rescore
                "INSERT INTO lead_events (lead_id, kind, ",  # lead.merged
                "UPDATE leads SET normalized = $2, email ",
            ]


class TestOldDuplicates:
    """Before `leads dedupe` runs, an activity by email goes to the one lead intake would merge into."""

    async def test_the_owned_oldest_live_duplicate_gets_the_activity(
        self, client: Client, settings: Settings, clock: FakeClock
    ) -> None:
        oldest = await post_one(client, {"email": "jo@acme.example"})
        clock.advance(minutes=1)
        newer = await post_one(client, {"email": "jo2@acme.example"})
        await _legacy_duplicate(settings, newer["lead_id"], email="jo@acme.example")
        r = await client.post(
            "/v1/events",
            json={"email": "JO@acme.example", "type": "page_view", "occurred_at": clock.now.isoformat()},
        )
        assert r.status_code == 201, r.text
        assert r.json()["lead_id"] == oldest["lead_id"]  # not the newest, as before matching
        # once the oldest is closed, the person's live lead is the other one
        closed = await client.post(f"/v1/assignments/{oldest['lead_id']}/close", json={})
        assert closed.status_code == 200, closed.text
        r = await client.post(
            "/v1/events",
            json={"email": "jo@acme.example", "type": "page_view", "occurred_at": clock.now.isoformat()},
        )
        assert r.json()["lead_id"] == newer["lead_id"]
        again = await merged(client, {"email": "jo@acme.example"})
        assert again["lead_id"] == newer["lead_id"]
