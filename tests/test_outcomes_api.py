"""POST /v1/leads/{id}/outcome over HTTP (real PostgreSQL and Redis): what sales made of a lead."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import pytest

from conftest import FakeClock
from leadroute.config import Settings
from leadroute.runtime import Runtime
from leadroute.workflow.outcomes import InvalidOutcome, OutcomeIn, record_outcome
from sla_support import in_app, sla_rules
from support import ADMIN_ACTOR, Client, authed, count, explain, get_lead, lead, post_one, setup_pool
from test_access import new_key

RULES = sla_rules(30)


async def _outcome(client: Client, lead_id: str, body: Any, **headers: str) -> Any:
    return await client.post(f"/v1/leads/{lead_id}/outcome", json=body, headers=headers)


def _problem(r: Any, status: int, kind: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["type"].endswith("/" + kind)
    return body


def _outcome_events(view: dict[str, Any]) -> list[dict[str, Any]]:
    return [h for h in view["history"] if h["type"] == "lead.outcome"]


class TestRecord:
    async def test_an_outcome_is_a_lead_outcome_event_with_the_lead_as_it_was(
        self, make_app: Any, clock: FakeClock
    ) -> None:
        """The answer and the log carry the outcome, its time, and the lead's stage, score and owner."""
        async with authed(make_app(RULES, clock=clock)) as client:
            await setup_pool(client, ["alice"])
            d = await post_one(client, lead(1))
            clock.advance(hours=2)
            r = await _outcome(client, d["lead_id"], {"outcome": "converted", "reason": "demo booked"})
            assert r.status_code == 201, r.text
            answer = r.json()
            assert answer["outcome"] == "converted"
            assert answer["lead_outcome"] == "converted"
            assert answer["at"] == answer["recorded_at"] == "2026-11-23T17:00:00Z"
            assert (answer["stage"], answer["score"], answer["owner"]) == ("lead", 60.0, "alice")
            assert answer["amount"] is None
            assert answer["currency"] is None
            [event] = _outcome_events(await get_lead(client, d["lead_id"]))
            assert event["seq"] == answer["seq"]
            assert event["actor"] == ADMIN_ACTOR
            assert event["data"] == {
                "outcome": "converted",
                "at": "2026-11-23T17:00:00Z",
                "reason": "demo booked",
                "stage": "lead",
                "score": 60.0,
                "owner": "alice",
            }

    async def test_several_outcomes_add_up_to_the_latest_and_explain_tells_them(
        self, make_app: Any, clock: FakeClock
    ) -> None:
        """converted then won: the lead's outcome is won; an amount without currency is USD; a
        ``converted`` sent late (dated before) does not undo the won deal."""
        async with authed(make_app(RULES, clock=clock)) as client:
            await setup_pool(client, ["alice"])
            d = await post_one(client, lead(1))
            clock.advance(days=1)
            first = await _outcome(client, d["lead_id"], {"outcome": "converted"})
            clock.advance(days=3)
            won = await _outcome(
                client, d["lead_id"], {"outcome": "won", "amount": 12000, "at": "2026-11-27T10:00:00+01:00"}
            )
            assert won.status_code == 201, won.text
            assert won.json()["lead_outcome"] == "won"
            assert (won.json()["amount"], won.json()["currency"]) == (12000.0, "USD")
            assert won.json()["at"] == "2026-11-27T09:00:00Z"
            late = await _outcome(
                client, d["lead_id"], {"outcome": "converted", "at": "2026-11-26T12:00:00Z"}
            )
            assert late.json()["lead_outcome"] == "won"
            assert first.json()["seq"] < won.json()["seq"] < late.json()["seq"]
            moves = [m["text"] for m in (await explain(client, d["lead_id"]))["moves"]]
            assert "At 2026-11-27 09:00 UTC the deal was won (12,000 USD), recorded by key:00ad0001." in moves
            assert "At 2026-11-24 15:00 UTC it converted, recorded by key:00ad0001." in moves

    async def test_a_person_record_outcome_from_python_is_the_same(
        self, make_app: Any, clock: FakeClock, settings: Settings
    ) -> None:
        """``record_outcome`` is what a CRM webhook calls: same event, its own actor and key."""
        async with authed(make_app(RULES, clock=clock)) as client:
            await setup_pool(client, ["alice"])
            d = await post_one(client, lead(1))
            lead_id = uuid.UUID(d["lead_id"])

            async def from_crm(rt: Runtime) -> Any:
                body = OutcomeIn(outcome="lost", reason="went with a competitor")
                return await record_outcome(rt, lead_id, body, "hubspot", idempotency_key="hs-deal-9")

            async def naive(rt: Runtime) -> Any:
                body = OutcomeIn(outcome="won", at=datetime(2026, 11, 23, 15, 30))
                return await record_outcome(rt, lead_id, body, "hubspot")

            with pytest.raises(InvalidOutcome, match="needs a time zone"):
                await in_app(client, naive)
            one = await in_app(client, from_crm)
            again = await in_app(client, from_crm)
            assert one.created
            assert not again.created
            assert again.answer == one.answer
            [event] = _outcome_events(await get_lead(client, d["lead_id"]))
            assert event["actor"] == "hubspot"
            assert event["data"]["outcome"] == "lost"
            assert await count(settings, "SELECT count(*) FROM lead_events WHERE kind = 'lead.outcome'") == 1


class TestIdempotency:
    async def test_a_retry_with_the_key_gets_the_first_answer_and_writes_nothing(
        self, make_app: Any, clock: FakeClock, settings: Settings
    ) -> None:
        async with authed(make_app(RULES, clock=clock)) as client:
            await setup_pool(client, ["alice"])
            d = await post_one(client, lead(1))
            body = {"outcome": "won", "amount": 5000.5, "currency": "EUR"}
            first = await _outcome(client, d["lead_id"], body, **{"Idempotency-Key": "deal-1"})
            assert first.status_code == 201, first.text
            clock.advance(minutes=5)
            retry = await _outcome(client, d["lead_id"], body, **{"Idempotency-Key": "deal-1"})
            assert retry.status_code == 200, retry.text
            assert retry.json() == first.json()
            assert len(_outcome_events(await get_lead(client, d["lead_id"]))) == 1
            other = await _outcome(client, d["lead_id"], {"outcome": "lost"}, **{"Idempotency-Key": "deal-1"})
            _problem(other, 422, "idempotency-key-reused")
            second = await post_one(client, lead(2))
            elsewhere = await _outcome(client, second["lead_id"], body, **{"Idempotency-Key": "deal-1"})
            _problem(elsewhere, 422, "idempotency-key-reused")
            assert await count(settings, "SELECT count(*) FROM lead_events WHERE kind = 'lead.outcome'") == 1

    async def test_without_a_key_each_call_is_an_outcome(self, make_app: Any, clock: FakeClock) -> None:
        async with authed(make_app(RULES, clock=clock)) as client:
            await setup_pool(client, ["alice"])
            d = await post_one(client, lead(1))
            for _ in range(2):
                assert (await _outcome(client, d["lead_id"], {"outcome": "converted"})).status_code == 201
            assert len(_outcome_events(await get_lead(client, d["lead_id"]))) == 2


class TestRefused:
    async def test_every_bad_field_is_named_and_nothing_is_written(
        self, make_app: Any, clock: FakeClock, settings: Settings
    ) -> None:
        async with authed(make_app(RULES, clock=clock)) as client:
            await setup_pool(client, ["alice"])
            d = await post_one(client, lead(1))
            body = {"outcome": "maybe", "amount": -1, "currency": "usd", "at": "yesterday", "colour": "red"}
            problem = _problem(await _outcome(client, d["lead_id"], body), 422, "invalid-outcome")
            fields = {e["field"] for e in problem["errors"]}
            assert fields == {"outcome", "amount", "currency", "at", "colour"}
            assert "converted, won, lost, disqualified_by_sales" in problem["detail"]
            missing = _problem(await _outcome(client, d["lead_id"], {}), 422, "invalid-outcome")
            assert [e["field"] for e in missing["errors"]] == ["outcome"]
            alone = _problem(
                await _outcome(client, d["lead_id"], {"outcome": "won", "currency": "EUR"}),
                422,
                "invalid-outcome",
            )
            assert [e["field"] for e in alone["errors"]] == ["currency"]
            naive = _problem(
                await _outcome(client, d["lead_id"], {"outcome": "won", "at": "2026-11-23T15:00:00"}),
                422,
                "invalid-outcome",
            )
            assert [e["field"] for e in naive["errors"]] == ["at"]
            not_object = await client.post(f"/v1/leads/{d['lead_id']}/outcome", content=b"[1]")
            _problem(not_object, 422, "invalid-outcome")
            broken = await client.post(f"/v1/leads/{d['lead_id']}/outcome", content=b"{nope")
            _problem(broken, 400, "malformed-body")
            assert await count(settings, "SELECT count(*) FROM lead_events WHERE kind = 'lead.outcome'") == 0

    async def test_a_time_in_the_future_or_before_the_lead_is_refused(
        self, make_app: Any, clock: FakeClock, settings: Settings
    ) -> None:
        async with authed(make_app(RULES, clock=clock)) as client:
            await setup_pool(client, ["alice"])
            d = await post_one(client, lead(1))
            clock.advance(hours=1)
            future = _problem(
                await _outcome(client, d["lead_id"], {"outcome": "won", "at": "2026-11-23T16:06:00Z"}),
                422,
                "invalid-outcome",
            )
            assert future["errors"] == [
                {"field": "at", "message": "is in the future (the service's clock is 2026-11-23T16:00:00Z)"}
            ]
            before = _problem(
                await _outcome(client, d["lead_id"], {"outcome": "won", "at": "2026-11-23T14:59:00Z"}),
                422,
                "invalid-outcome",
            )
            assert before["errors"][0]["field"] == "at"
            assert "before the lead arrived (2026-11-23T15:00:00Z)" in before["errors"][0]["message"]
            skew = await _outcome(client, d["lead_id"], {"outcome": "won", "at": "2026-11-23T16:04:00Z"})
            assert skew.status_code == 201, skew.text
            assert await count(settings, "SELECT count(*) FROM lead_events WHERE kind = 'lead.outcome'") == 1

    async def test_an_unknown_lead_is_404_and_the_key_stays_unused(
        self, make_app: Any, clock: FakeClock
    ) -> None:
        async with authed(make_app(RULES, clock=clock)) as client:
            await setup_pool(client, ["alice"])
            missing = str(uuid.uuid4())
            _problem(
                await _outcome(client, missing, {"outcome": "won"}, **{"Idempotency-Key": "k1"}),
                404,
                "not-found",
            )
            d = await post_one(client, lead(1))
            used = await _outcome(client, d["lead_id"], {"outcome": "won"}, **{"Idempotency-Key": "k1"})
            assert used.status_code == 201, used.text

    async def test_the_route_needs_assignments_write(self, make_app: Any, clock: FakeClock) -> None:
        """A web form's ``leads:write`` key cannot mark leads won; a sales key can."""
        async with authed(make_app(RULES, clock=clock)) as admin:
            await setup_pool(admin, ["alice"])
            d = await post_one(admin, lead(1))
            form, _ = await new_key(admin, "leads:write")
            sales, _ = await new_key(admin, "assignments:write")
            body = {"outcome": "won"}
            url = f"/v1/leads/{d['lead_id']}/outcome"
            refused = await admin.post(url, json=body, headers={"Authorization": f"Bearer {form}"})
            _problem(refused, 403, "forbidden")
            allowed = await admin.post(url, json=body, headers={"Authorization": f"Bearer {sales}"})
            assert allowed.status_code == 201, allowed.text


class TestWebhooks:
    def test_lead_outcome_is_an_event_type_endpoints_may_ask_for(self) -> None:
        from leadroute.outbound import EVENT_TYPES

        assert "lead.outcome" in EVENT_TYPES
