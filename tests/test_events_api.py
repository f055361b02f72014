"""POST /v1/events end to end on real PostgreSQL and Redis: store, rescore with decay, route on a rise."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from conftest import FakeClock
from leadroute.config import Settings
from support import authed, count, post_one, setup_pool

# Engagement comes only from activities, halves every 10 days; routing takes only mql and sql
# leads, so a plain lead waits in the queue until its activity lifts it.
RULES = """
version: 1
description: activity-driven
fields:
  activity.url: STRING
scoring:
  groups:
    fit: {max: 50}
    engagement: {max: 60, half_life_days: 10}
  rules:
    - {id: vp, group: fit, when: 'title =~~ "(?i)\\\\bvp\\\\b"', points: 30}
    - {id: pricing, group: engagement, on_activity: page_view, when: 'url =~~ "/pricing"', points: 20}
    - {id: webinar, group: engagement, on_activity: webinar_attended, when: 'true', points: 40}
qualification:
  - {id: hot, stage: sql, when: 'score >= 80'}
  - {id: warm, stage: mql, when: 'score >= 40'}
  - {id: rest, stage: lead}
routing:
  rules:
    - {id: qualified, when: 'stage in ["mql", "sql"]', pool: sales}
  fallback: nurture
"""


def at(clock: FakeClock, **ago: float) -> str:
    moment: datetime = clock.now - timedelta(**ago)
    return moment.isoformat()


@pytest.fixture
async def client(make_app: Any, clock: FakeClock) -> Any:
    async with authed(make_app(RULES, clock=clock)) as c:
        await setup_pool(c, ["ana", "ben"])
        yield c


async def new_lead(client: AsyncTestClient[Litestar], email: str, **fields: Any) -> dict[str, Any]:
    return await post_one(client, {"email": email, **fields})


async def event(client: AsyncTestClient[Litestar], body: dict[str, Any], **headers: str) -> Any:
    return await client.post("/v1/events", json=body, headers=headers)


class TestRescoring:
    async def test_an_event_is_stored_and_rescores_the_lead(
        self, client: AsyncTestClient[Litestar], clock: FakeClock
    ) -> None:
        lead = await new_lead(client, "jo@acme.example", title="VP Sales")
        assert (lead["score"], lead["stage"], lead["status"]) == (30, "lead", "unassigned")

        r = await event(
            client,
            {
                "lead_id": lead["lead_id"],
                "type": "page_view",
                "occurred_at": at(clock),
                "properties": {"url": "/docs"},
            },
        )
        assert r.status_code == 201, r.text
        body = r.json()
        assert (body["score"], body["stage"], body["routed"]) == (30, "lead", False)

        r = await event(
            client,
            {
                "email": "JO@acme.example",
                "type": "page_view",
                "occurred_at": at(clock),
                "properties": {"url": "/pricing"},
            },
        )
        body = r.json()
        assert body["lead_id"] == lead["lead_id"]
        assert body["previous_score"] == 30
        assert body["score"] == 50
        assert body["groups"] == {"fit": 30, "engagement": 20}
        assert [hit["rule"] for hit in body["matched"]] == ["vp", "pricing"]

        history = (await client.get(f"/v1/leads/{lead['lead_id']}")).json()
        assert history["score"] == 50
        assert [h["type"] for h in history["history"]].count("activity.recorded") == 2

    async def test_activity_points_decay_with_age(
        self, client: AsyncTestClient[Litestar], clock: FakeClock
    ) -> None:
        lead = await new_lead(client, "old@acme.example")
        # 20 points, 10 days old, half-life 10 days: 10 points now.
        r = await event(
            client,
            {
                "lead_id": lead["lead_id"],
                "type": "page_view",
                "occurred_at": at(clock, days=10),
                "properties": {"url": "/pricing"},
            },
        )
        assert r.json()["score"] == pytest.approx(10)
        # Twenty days later the same activity is worth a quarter of the original... and a new one
        # counts in full: the whole history is rescored at the clock's now.
        clock.advance(days=10)
        r = await event(
            client, {"lead_id": lead["lead_id"], "type": "webinar_attended", "occurred_at": at(clock)}
        )
        assert r.json()["score"] == pytest.approx(5 + 40)
        assert r.json()["stage"] == "mql"

    async def test_an_event_for_an_unknown_lead_is_404_and_keeps_nothing(
        self, client: AsyncTestClient[Litestar], clock: FakeClock, settings: Settings
    ) -> None:
        body = {
            "lead_id": str(uuid.uuid4()),
            "type": "page_view",
            "occurred_at": at(clock),
            "event_id": "e-1",
        }
        r = await event(client, body)
        assert r.status_code == 404
        assert r.headers["content-type"].startswith("application/problem+json")
        r = await event(client, {**body, "lead_id": None, "email": "Nobody@acme.example"})
        assert r.status_code == 404
        assert r.json()["detail"] == "no lead has that email; post the lead first (POST /v1/leads)"
        assert "nobody" not in r.text  # no PII echoed
        assert r.json()["errors"] == [{"field": "email", "message": "no lead has this email"}]
        assert await count(settings, "SELECT count(*) FROM lead_events WHERE kind = 'activity.recorded'") == 0
        assert await count(settings, "SELECT count(*) FROM idempotency_keys WHERE scope = 'event'") == 0

    async def test_a_bad_event_names_its_fields(self, client: AsyncTestClient[Litestar]) -> None:
        r = await event(client, {"type": "Page View", "occurred_at": "yesterday", "url": "/x"})
        assert r.status_code == 422
        problem = r.json()
        assert problem["type"].endswith("/invalid-event")
        assert {e["field"] for e in problem["errors"]} == {"type", "occurred_at", "url", "lead_id"}

    async def test_lead_id_and_email_must_name_the_same_lead(
        self, client: AsyncTestClient[Litestar], clock: FakeClock, settings: Settings
    ) -> None:
        jo = await new_lead(client, "jo@acme.example")
        await new_lead(client, "al@acme.example")
        body = {"lead_id": jo["lead_id"], "type": "page_view", "occurred_at": at(clock), "event_id": "e-2"}
        # Another lead's email: refused by name, nothing stored, the key stays unused.
        r = await event(client, {**body, "email": "al@acme.example"})
        assert r.status_code == 422, r.text
        problem = r.json()
        assert problem["type"].endswith("/invalid-event")
        assert [e["field"] for e in problem["errors"]] == ["email"]
        assert "al@acme.example" not in r.text  # a bad field is named, its value not echoed
        assert await count(settings, "SELECT count(*) FROM lead_events WHERE kind = 'activity.recorded'") == 0
        assert await count(settings, "SELECT count(*) FROM idempotency_keys WHERE scope = 'event'") == 0
        # A lead with no email at all (a phone only) matches no email either.
        r = await client.post("/v1/leads", json={"phone": "+1 415 555 0100", "country": "US"})
        assert r.status_code == 201, r.text
        r = await event(client, {**body, "lead_id": r.json()["lead_id"], "email": "jo@acme.example"})
        assert (r.status_code, [e["field"] for e in r.json()["errors"]]) == (422, ["email"])
        # The lead's own email, written as a form would (compared normalized): accepted.
        r = await event(client, {**body, "email": " JO@Acme.Example "})
        assert r.status_code == 201, r.text
        assert r.json()["lead_id"] == jo["lead_id"]

    async def test_an_event_dated_in_the_far_future_is_refused_by_the_clock(
        self, client: AsyncTestClient[Litestar], clock: FakeClock, settings: Settings
    ) -> None:
        lead = await new_lead(client, "soon@acme.example")
        body = {"lead_id": lead["lead_id"], "type": "webinar_attended", "event_id": "late"}
        r = await event(client, {**body, "occurred_at": "9999-12-31T23:59:59Z"})
        assert r.status_code == 422, r.text
        assert [e["field"] for e in r.json()["errors"]] == ["occurred_at"]
        assert "service's clock (2026-11-23T15:00:00Z)" in r.json()["errors"][0]["message"]
        assert await count(settings, "SELECT count(*) FROM lead_events WHERE kind = 'activity.recorded'") == 0
        assert await count(settings, "SELECT count(*) FROM idempotency_keys WHERE scope = 'event'") == 0
        # The service's clock decides (rt.clock), not the machine's: two days ahead is refused...
        later = at(clock, days=-2)
        r = await event(client, {**body, "occurred_at": later})
        assert r.status_code == 422, r.text
        # ...until the clock is within a day of it; within the tolerance it counts as now.
        clock.advance(days=1, minutes=1)
        r = await event(client, {**body, "occurred_at": later})
        assert r.status_code == 201, r.text
        assert r.json()["score"] == 40

    async def test_by_email_the_persons_one_lead_gets_the_event(
        self, client: AsyncTestClient[Litestar], clock: FakeClock
    ) -> None:
        first = await new_lead(client, "twice@acme.example")
        r = await client.post("/v1/leads", json={"email": "twice@acme.example", "title": "VP Ops"})
        assert (r.status_code, r.json()["lead_id"]) == (200, first["lead_id"])  # merged (docs/intake.md)
        r = await event(
            client, {"email": "twice@acme.example", "type": "webinar_attended", "occurred_at": at(clock)}
        )
        assert r.json()["lead_id"] == first["lead_id"]


class TestIdempotency:
    async def test_a_retry_gets_the_first_answer_and_stores_one_event(
        self, client: AsyncTestClient[Litestar], clock: FakeClock, settings: Settings
    ) -> None:
        lead = await new_lead(client, "retry@acme.example")
        body = {
            "lead_id": lead["lead_id"],
            "type": "page_view",
            "occurred_at": at(clock),
            "properties": {"url": "/pricing"},
            "event_id": "pv-1",
        }
        first, second = await asyncio.gather(event(client, body), event(client, body))
        assert sorted([first.status_code, second.status_code]) == [200, 201]
        assert first.json() == second.json()
        assert await count(settings, "SELECT count(*) FROM lead_events WHERE kind = 'activity.recorded'") == 1
        # The header key wins over event_id, and a changed body under a used key is refused.
        r = await event(client, {**body, "properties": {"url": "/blog"}}, **{"Idempotency-Key": "pv-1"})
        assert r.status_code == 422
        assert r.json()["type"].endswith("/idempotency-key-reused")


class TestRoutingOnStageRise:
    async def test_a_queued_lead_is_routed_when_it_becomes_mql(
        self, client: AsyncTestClient[Litestar], clock: FakeClock
    ) -> None:
        lead = await new_lead(client, "rise@acme.example", title="VP Sales")
        assert lead["status"] == "unassigned"
        r = await event(
            client,
            {
                "lead_id": lead["lead_id"],
                "type": "page_view",
                "occurred_at": at(clock),
                "properties": {"url": "/pricing"},
            },
        )
        body = r.json()
        assert (body["previous_stage"], body["stage"], body["routed"]) == ("lead", "mql", True)
        assert body["owner"] in {"ana", "ben"}
        assert body["pool"] == "sales"

        read = (await client.get(f"/v1/leads/{lead['lead_id']}")).json()
        assert read["owner"] == body["owner"]
        assert read["stage"] == "mql"
        kinds = [h["type"] for h in read["history"]]
        assert "lead.assigned" in kinds
        explain = (await client.get(f"/v1/leads/{lead['lead_id']}/explain")).json()
        assert explain["owner"] == body["owner"]
        assert explain["stage"] == "mql"

    async def test_an_owned_lead_keeps_its_owner_when_its_score_rises(
        self, client: AsyncTestClient[Litestar], clock: FakeClock
    ) -> None:
        lead = await new_lead(client, "owned@acme.example", title="VP Sales")
        first = (
            await event(
                client,
                {
                    "lead_id": lead["lead_id"],
                    "type": "page_view",
                    "occurred_at": at(clock),
                    "properties": {"url": "/pricing"},
                },
            )
        ).json()
        assert first["routed"] is True
        second = (
            await event(
                client, {"lead_id": lead["lead_id"], "type": "webinar_attended", "occurred_at": at(clock)}
            )
        ).json()
        assert (second["previous_stage"], second["stage"]) == ("mql", "sql")
        assert second["routed"] is False
        assert second["owner"] == first["owner"]
        explain = (await client.get(f"/v1/leads/{lead['lead_id']}/explain")).json()
        assert "keeps its owner" in explain["assignment"]["reason"]

    async def test_concurrent_events_of_one_lead_route_it_once(
        self, client: AsyncTestClient[Litestar], clock: FakeClock, settings: Settings
    ) -> None:
        lead = await new_lead(client, "race@acme.example", title="VP Sales")
        bodies = [
            {
                "lead_id": lead["lead_id"],
                "type": "page_view",
                "occurred_at": at(clock, minutes=i),
                "properties": {"url": "/pricing"},
            }
            for i in range(5)
        ]
        answers = await asyncio.gather(*(event(client, b) for b in bodies))
        assert all(a.status_code == 201 for a in answers)
        assert sum(a.json()["routed"] for a in answers) == 1
        assert max(a.json()["score"] for a in answers) == pytest.approx(30 + 60)  # engagement capped at 60
        assert (
            await count(
                settings,
                f"SELECT count(*) FROM assignments WHERE lead_id = '{lead['lead_id']}' AND ended_at IS NULL",
            )
            == 1
        )

    async def test_a_closed_lead_is_rescored_but_not_reopened(
        self, client: AsyncTestClient[Litestar], clock: FakeClock
    ) -> None:
        lead = await new_lead(client, "closed@acme.example", title="VP Sales")
        r = await client.post(f"/v1/assignments/{lead['lead_id']}/close", json={"reason": "spam"})
        assert r.status_code == 200, r.text
        r = await event(
            client, {"lead_id": lead["lead_id"], "type": "webinar_attended", "occurred_at": at(clock)}
        )
        body = r.json()
        assert (body["stage"], body["routed"], body["owner"]) == ("mql", False, None)
        read = (await client.get(f"/v1/leads/{lead['lead_id']}")).json()
        assert read["status"] == "closed"
        explain = (await client.get(f"/v1/leads/{lead['lead_id']}/explain")).json()
        assert "closed" in explain["assignment"]["reason"]
