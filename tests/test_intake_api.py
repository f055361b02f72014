"""Issue 13, over HTTP on real PostgreSQL and Redis: accounts by registrable domain, one 422 that
names every bad field, warnings for fields kept as sent, typed activity properties, and one
idempotency namespace for the ``Idempotency-Key`` header and ``event_id``."""

from __future__ import annotations

import asyncio
import collections
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
from redis.asyncio import Redis

from leadroute.app import create_app
from leadroute.config import Settings
from leadroute.routing import RoutingKeys
from leadroute.rules import parse_ruleset
from leadroute.store.queries import QUERIES
from support import ACCOUNT_RULES, authed, connection, count, fetch, get_lead, owner, pool, post_one

ACTIVITY_RULES = """
version: 1
description: typed activity properties
fields:
  activity.url: STRING
  activity.minutes: FLOAT
scoring:
  groups:
    engagement: {max: 100}
  rules:
    - {id: pricing, group: engagement, on_activity: page_view, when: 'url =~~ "/pricing"', points: 20}
    - id: long-webinar
      group: engagement
      on_activity: webinar_attended
      when: '(minutes ?? 0) >= 30'
      points: 30
qualification:
  - {id: rest, stage: lead}
routing:
  rules:
    - {id: everyone, when: 'true', pool: sales}
  fallback: unassigned
"""

NOW = "2026-11-20T10:00:00Z"


async def setup_sales(client: Any, owners: tuple[str, ...] = ("ann", "ben", "cat")) -> None:
    for ident in owners:
        await owner(client, ident)
    await pool(client, "sales", list(owners))


class TestAccountsByRegistrableDomain:
    """Subdomains and multi-label suffixes reach the account's owner; PostgreSQL and Redis hold
    the registrable domain, the same value routing looks up."""

    async def test_subdomain_email_and_website_reach_the_account_owner(
        self, make_app: Any, settings: Settings
    ) -> None:
        async with authed(make_app(ACCOUNT_RULES)) as client:
            await setup_sales(client)
            first = await post_one(client, {"email": "jo@acme.example"})
            await post_one(client, {"email": "x@company-1.example"})  # move the rotation on
            await post_one(client, {"email": "x@company-2.example"})
            by_email = await post_one(client, {"email": "y@sales.acme.example"})
            by_site = await post_one(
                client, {"email": "z@gmail.com", "website": "https://shop.acme.example/eu"}
            )
            assert by_email["owner"] == by_site["owner"] == first["owner"]
            assert by_email["routing_rule"] == by_site["routing_rule"] == "existing-account"
            stored = await get_lead(client, by_email["lead_id"])
            assert stored["lead"]["email_domain"] == "sales.acme.example"
            assert stored["lead"]["company_domain"] == "acme.example"

        rows = await fetch(settings, "SELECT company_domain, owner_id FROM account_owners")
        assert {r["company_domain"]: r["owner_id"] for r in rows}["acme.example"] == first["owner"]
        assert await count(settings, "SELECT count(*) FROM leads WHERE company_domain = 'acme.example'") == 3
        assert settings.redis_url is not None
        async with Redis.from_url(settings.redis_url) as redis:
            key = RoutingKeys(settings.redis_prefix).account
            assert await redis.hget(key, "acme.example") == first["owner"].encode()
            assert not await redis.hexists(key, "sales.acme.example")

    async def test_co_uk_and_idn_forms_are_one_account(self, make_app: Any) -> None:
        async with authed(make_app(ACCOUNT_RULES)) as client:
            await setup_sales(client)
            uk = await post_one(client, {"email": "a@gmail.com", "website": "shop.acme.co.uk"})
            uk_again = await post_one(client, {"email": "b@eu.acme.co.uk"})
            idn = await post_one(client, {"email": "c@mail.xn--bcher-kva.de"})
            idn_again = await post_one(client, {"email": "d@gmail.com", "website": "https://www.BÜCHER.de"})
            assert uk_again["owner"] == uk["owner"]
            assert uk_again["routing_rule"] == "existing-account"
            assert idn_again["owner"] == idn["owner"]
            assert idn_again["routing_rule"] == "existing-account"
            assert (await get_lead(client, idn["lead_id"]))["lead"]["company_domain"] == "bücher.de"

    async def test_free_mail_is_no_account(self, make_app: Any) -> None:
        async with authed(make_app(ACCOUNT_RULES)) as client:
            await setup_sales(client)
            first = await post_one(client, {"email": "a@gmail.com"})
            stored = await get_lead(client, first["lead_id"])
            assert stored["lead"]["company_domain"] is None
            assert stored["lead"]["is_free_email"] is True


class TestOneErrorNamesEveryField:
    """A body with several bad fields, of any kind, gets one 422 naming each, in schema order."""

    async def test_type_errors_and_normalization_errors_together(
        self, make_app: Any, settings: Settings
    ) -> None:
        async with authed(make_app(ACCOUNT_RULES)) as client:
            r = await client.post(
                "/v1/leads",
                json={
                    "plan": {"nested": 1},
                    "employees": "lots",
                    "email": "not-an-email",
                    "title": 5,
                    "occurred_at": "yesterday",
                },
            )
        assert r.status_code == 422
        body = r.json()
        assert [e["field"] for e in body["errors"]] == [
            "occurred_at",
            "email",
            "title",
            "employees",
            "attributes.plan",
        ]
        assert body["detail"].startswith("invalid lead: occurred_at: ")
        assert "not-an-email" not in r.text  # values are never echoed
        assert await count(settings, "SELECT count(*) FROM leads") == 0

    async def test_an_event_names_its_email_and_properties_in_one_answer(self, make_app: Any) -> None:
        async with authed(make_app(ACTIVITY_RULES)) as client:
            r = await client.post(
                "/v1/events",
                json={
                    "type": "page_view",
                    "occurred_at": NOW,
                    "email": "nope",
                    "properties": {"url": 5, "minutes": "ten", "free": {"x": 1}},
                },
            )
        assert r.status_code == 422
        assert [e["field"] for e in r.json()["errors"]] == [
            "email",
            "properties.free",
            "properties.minutes",
            "properties.url",
        ]


class TestWarnings:
    """An invalid phone (or website, or country) next to a valid email: accepted, with a warning
    in the answer and in the lead's history; a setting makes it a 422 instead."""

    async def test_invalid_phone_is_accepted_with_a_warning_and_recorded(self, make_app: Any) -> None:
        async with authed(make_app(ACCOUNT_RULES)) as client:
            await setup_sales(client, ("ann",))
            body = {"email": "jo@acme.example", "phone": "call me maybe", "event_id": "w-1"}
            r = await client.post("/v1/leads", json=body)
            assert r.status_code == 201, r.text
            answer = r.json()
            assert [w["field"] for w in answer["warnings"]] == ["phone"]
            assert "call me" not in answer["warnings"][0]["message"]
            assert answer["owner"] == "ann"

            stored = await get_lead(client, answer["lead_id"])
            assert (stored["lead"]["phone"], stored["lead"]["phone_e164"]) == ("call me maybe", None)
            received = stored["history"][0]
            assert received["type"] == "lead.received"
            assert received["data"]["warnings"] == answer["warnings"]

            again = await client.post("/v1/leads", json=body)  # a retry: the same answer, warnings too
            assert (again.status_code, again.json()) == (200, answer)

    async def test_no_warnings_when_there_are_none(self, make_app: Any) -> None:
        async with authed(make_app(ACCOUNT_RULES)) as client:
            await setup_sales(client, ("ann",))
            answer = await post_one(client, {"email": "jo@acme.example", "phone": "+44 20 7946 0958"})
            assert answer["warnings"] == []
            stored = await get_lead(client, answer["lead_id"])
            assert "warnings" not in stored["history"][0]["data"]

    async def test_website_and_country_warn_the_same_way(self, make_app: Any) -> None:
        async with authed(make_app(ACCOUNT_RULES)) as client:
            await setup_sales(client, ("ann",))
            answer = await post_one(
                client, {"email": "jo@sales.acme.example", "website": "n/a", "country": "Narnia"}
            )
            assert [w["field"] for w in answer["warnings"]] == ["website", "country"]
            stored = (await get_lead(client, answer["lead_id"]))["lead"]
            assert (stored["website"], stored["company_domain"], stored["country"]) == (
                "n/a",
                "acme.example",
                None,
            )

    async def test_the_settings_make_them_422(self, settings: Settings, clean: None) -> None:
        strict = msgspec.structs.replace(
            settings, invalid_phone="reject", invalid_website="reject", invalid_country="reject"
        )
        app = create_app(strict, ruleset=parse_ruleset(ACCOUNT_RULES))
        async with authed(app) as client:
            r = await client.post(
                "/v1/leads",
                json={"email": "jo@acme.example", "phone": "call me", "website": "n/a", "country": "Narnia"},
            )
        assert r.status_code == 422
        assert [e["field"] for e in r.json()["errors"]] == ["phone", "website", "country"]
        assert await count(settings, "SELECT count(*) FROM leads") == 0

    async def test_a_bad_phone_without_an_email_is_always_422(self, make_app: Any) -> None:
        async with authed(make_app(ACCOUNT_RULES)) as client:
            r = await client.post("/v1/leads", json={"phone": "call me", "first_name": "Jo"})
        assert r.status_code == 422
        assert [e["field"] for e in r.json()["errors"]] == ["phone"]

    async def test_openapi_documents_warnings(self, make_app: Any) -> None:
        async with authed(make_app(ACCOUNT_RULES)) as client:
            schema = (await client.get("/schema/openapi.json")).json()
        decision = schema["components"]["schemas"]["Decision"]
        assert "warnings" in decision["properties"]
        assert "warnings" not in decision.get("required", [])


class TestTypedActivityProperties:
    """Properties are checked against the active ruleset's declarations before they are stored."""

    async def lead_id(self, client: Any) -> str:
        await setup_sales(client, ("ann",))
        return str((await post_one(client, {"email": "jo@acme.example"}))["lead_id"])

    async def test_a_mismatch_is_a_422_and_nothing_is_stored(self, make_app: Any, settings: Settings) -> None:
        async with authed(make_app(ACTIVITY_RULES)) as client:
            lead_id = await self.lead_id(client)
            r = await client.post(
                "/v1/events",
                json={"type": "page_view", "occurred_at": NOW, "lead_id": lead_id, "properties": {"url": 5}},
            )
            assert r.status_code == 422
            assert r.json()["errors"] == [
                {"field": "properties.url", "message": "must be a string (declared STRING in the ruleset)"}
            ]
            ok = await client.post(
                "/v1/events",
                json={
                    "type": "webinar_attended",
                    "occurred_at": NOW,
                    "lead_id": lead_id,
                    "properties": {"minutes": 45, "undeclared": [1, "two"]},
                },
            )
            assert ok.status_code == 201, ok.text  # an int is a FLOAT; undeclared ones are kept
        assert await count(settings, "SELECT count(*) FROM lead_events WHERE kind = 'activity.recorded'") == 1

    async def test_rescoring_survives_a_bad_value_already_stored(
        self, make_app: Any, settings: Settings
    ) -> None:
        async with authed(make_app(ACTIVITY_RULES)) as client:
            lead_id = await self.lead_id(client)
            # what an older version let through: a page view whose url is a number, though the
            # ruleset declares a string (appended with the log's own query: events never change)
            at = datetime(2026, 11, 20, 10, tzinfo=UTC)
            async with connection(settings) as conn:
                await conn.execute(
                    QUERIES["log_append"],
                    uuid.UUID(lead_id),
                    "activity.recorded",
                    at,
                    at,
                    None,
                    "api",
                    {"activity": "page_view", "properties": {"url": 5}},
                )
            r = await client.post(
                "/v1/events",
                json={
                    "type": "webinar_attended",
                    "occurred_at": NOW,
                    "lead_id": lead_id,
                    "properties": {"minutes": 60},
                },
            )
            assert r.status_code == 201, r.text
            answer = r.json()
            # the stored page view no longer matches (its url is seen as absent); the webinar scores
            assert [m["rule"] for m in answer["matched"]] == ["long-webinar"]
            assert answer["score"] == 30
            why = (await client.get(f"/v1/leads/{lead_id}/explain")).json()
            assert "SymbolTypeError" not in str(why)


class TestOneIdempotencyNamespace:
    """The header wins, and the header and event_id are one namespace: the same event_id with or
    without a header (or with another header) is the same request."""

    async def test_event_id_with_and_without_the_header_is_one_lead(
        self, make_app: Any, settings: Settings
    ) -> None:
        async with authed(make_app(ACCOUNT_RULES)) as client:
            await setup_sales(client)
            body = {"email": "jo@acme.example", "event_id": "evt-1"}
            first = await client.post("/v1/leads", json=body, headers={"Idempotency-Key": "hdr-1"})
            without = await client.post("/v1/leads", json=body)
            other_header = await client.post("/v1/leads", json=body, headers={"Idempotency-Key": "hdr-2"})
            header_only = await client.post(
                "/v1/leads", json=body, headers={"Idempotency-Key": "hdr-2"}
            )  # hdr-2 now holds the answer too
            assert first.status_code == 201
            assert [r.status_code for r in (without, other_header, header_only)] == [200, 200, 200]
            assert {r.json()["lead_id"] for r in (first, without, other_header, header_only)} == {
                first.json()["lead_id"]
            }
            stored = await get_lead(client, first.json()["lead_id"])
            assert stored["history"][0]["data"]["idempotency_key"] == "hdr-1"  # the header wins
        assert await count(settings, "SELECT count(*) FROM leads") == 1
        rows = await fetch(
            settings, "SELECT key, lead_id FROM idempotency_keys WHERE scope = 'lead' ORDER BY key"
        )
        assert [r["key"] for r in rows] == ["evt-1", "hdr-1", "hdr-2"]
        assert {str(r["lead_id"]) for r in rows} == {first.json()["lead_id"]}

    async def test_without_the_header_first_then_with_it(self, make_app: Any, settings: Settings) -> None:
        async with authed(make_app(ACCOUNT_RULES)) as client:
            await setup_sales(client)
            body = {"email": "jo@acme.example", "event_id": "evt-2"}
            first = await client.post("/v1/leads", json=body)
            again = await client.post("/v1/leads", json=body, headers={"Idempotency-Key": "hdr-3"})
            assert (first.status_code, again.status_code) == (201, 200)
            assert again.json() == first.json()
        assert await count(settings, "SELECT count(*) FROM leads") == 1

    async def test_an_event_id_reused_for_another_body_is_named(self, make_app: Any) -> None:
        async with authed(make_app(ACCOUNT_RULES)) as client:
            await setup_sales(client)
            await client.post("/v1/leads", json={"email": "jo@acme.example", "event_id": "evt-3"})
            r = await client.post(
                "/v1/leads",
                json={"email": "other@acme.example", "event_id": "evt-3"},
                headers={"Idempotency-Key": "fresh"},
            )
            assert r.status_code == 422
            assert r.json()["errors"] == [
                {"field": "event_id", "message": "already used for a different body"}
            ]
            # nothing was claimed: the fresh header key is still free for a new request
            ok = await client.post(
                "/v1/leads", json={"email": "other@acme.example"}, headers={"Idempotency-Key": "fresh"}
            )
            assert ok.status_code == 201

    async def test_the_header_decides_when_both_were_used_before(self, make_app: Any) -> None:
        async with authed(make_app(ACCOUNT_RULES)) as client:
            await setup_sales(client)
            by_header = await client.post(
                "/v1/leads", json={"email": "a@acme.example"}, headers={"Idempotency-Key": "h-a"}
            )
            await client.post("/v1/leads", json={"email": "a@acme.example", "event_id": "e-b"})
            # both keys taken: the header's request is compared, and its body differs -> 422 on the header
            r = await client.post(
                "/v1/leads",
                json={"email": "a@acme.example", "event_id": "e-b"},
                headers={"Idempotency-Key": "h-a"},
            )
            assert r.status_code == 422
            assert r.json()["errors"][0]["field"] == "Idempotency-Key"
            assert by_header.status_code == 201

    async def test_concurrent_retries_mixing_header_and_event_id_make_one_lead(
        self, make_app: Any, settings: Settings
    ) -> None:
        async with authed(make_app(ACCOUNT_RULES)) as client:
            await setup_sales(client)
            body = {"email": "jo@acme.example", "event_id": "evt-c"}
            headers = [{"Idempotency-Key": f"hdr-c{i % 4}"} if i % 2 else {} for i in range(30)]
            responses = await asyncio.gather(
                *(client.post("/v1/leads", json=body, headers=h) for h in headers)
            )
        assert collections.Counter(r.status_code for r in responses) == {201: 1, 200: 29}
        assert len({r.json()["lead_id"] for r in responses}) == 1
        assert await count(settings, "SELECT count(*) FROM leads") == 1

    async def test_activity_events_share_the_rule(self, make_app: Any, settings: Settings) -> None:
        async with authed(make_app(ACTIVITY_RULES)) as client:
            await setup_sales(client, ("ann",))
            lead_id = (await post_one(client, {"email": "jo@acme.example"}))["lead_id"]
            event = {
                "type": "page_view",
                "occurred_at": datetime(2026, 11, 20, 10, tzinfo=UTC).isoformat(),
                "lead_id": lead_id,
                "event_id": "pv-1",
                "properties": {"url": "/pricing"},
            }
            first = await client.post("/v1/events", json=event, headers={"Idempotency-Key": "pv-hdr"})
            without = await client.post("/v1/events", json=event)
            other = await client.post("/v1/events", json=event, headers={"Idempotency-Key": "pv-hdr-2"})
            assert [r.status_code for r in (first, without, other)] == [201, 200, 200]
            assert without.json() == other.json() == first.json()
        assert await count(settings, "SELECT count(*) FROM lead_events WHERE kind = 'activity.recorded'") == 1
