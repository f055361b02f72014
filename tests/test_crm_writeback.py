"""Owner write-back to HubSpot and Salesforce, against local servers that check every request:
path, headers, body and auth, a 429 with Retry-After, and a 401 that refreshes the token."""

from __future__ import annotations

import json
from datetime import datetime
from urllib.parse import parse_qs

from conftest import FakeClock
from leadroute.config import Settings
from outbound_support import Answer, Request, receiver, relay_pass
from sla_support import instance, sla_rules
from support import Client, fetch, lead, owner, pool, post_one

HUBSPOT_TOKEN = "pat-na1-test-token"


async def crm_owners(client: Client) -> None:
    await owner(client, "ann", crm_user_id="0051x000001AnnAAA")
    await pool(client, "sales", ["ann"])


async def next_due(settings: Settings, endpoint: str) -> datetime:
    rows = await fetch(settings, "SELECT next_at FROM outbound_deliveries WHERE endpoint_id = $1", endpoint)
    at: datetime = rows[0]["next_at"]
    return at


class TestHubSpot:
    """``hubspot_owner_id`` is set on the lead's contact: by id, or by email; 429 waits."""

    async def test_owner_written_to_the_contact_by_id_then_by_email_after_a_429(
        self, settings: Settings, clean: None, clock: FakeClock
    ) -> None:
        def answer(req: Request, n: int) -> Answer:
            if n == 0:
                return Answer(429, {"Retry-After": "7"}, b'{"status":"error","category":"RATE_LIMITS"}')
            return Answer(200, {"content-type": "application/json"}, b'{"id":"501"}')

        with receiver(answer) as hubspot:
            overrides = {"hubspot_token": HUBSPOT_TOKEN, "hubspot_base_url": hubspot.url}
            async with instance(settings, sla_rules(), clock, **overrides) as client:
                await crm_owners(client)
                await post_one(client, lead(1, attributes={"hubspot_contact_id": "501"}))
                await relay_pass(client)
                assert len(hubspot.requests) == 1
                waited = (await next_due(settings, "hubspot")) - clock.now
                assert 7 <= waited.total_seconds() < 8  # Retry-After, longer than the first backoff

                await post_one(client, lead(2))  # no contact id: found by its email
                clock.advance(seconds=8)
                await relay_pass(client)
                first, *later = hubspot.wait_for(3)
        # the retry of lead 1 and lead 2's first try are sent side by side: in either order
        by_path = sorted(later, key=lambda req: "?" in req.path)
        retried, by_email = by_path

        for req in (first, retried, by_email):
            assert req.method == "PATCH"
            assert req.headers["authorization"] == f"Bearer {HUBSPOT_TOKEN}"
            assert req.headers["content-type"] == "application/json"
            assert json.loads(req.body) == {"properties": {"hubspot_owner_id": "0051x000001AnnAAA"}}
        assert first.path == retried.path == "/crm/v3/objects/contacts/501"
        assert by_email.path == "/crm/v3/objects/contacts/person2%40company-2.example?idProperty=email"

    async def test_an_owner_without_a_crm_id_is_skipped_and_logged(
        self, settings: Settings, clean: None, clock: FakeClock
    ) -> None:
        with receiver() as hubspot:
            overrides = {"hubspot_token": HUBSPOT_TOKEN, "hubspot_base_url": hubspot.url}
            async with instance(settings, sla_rules(), clock, **overrides) as client:
                await owner(client, "ann")
                await pool(client, "sales", ["ann"])
                await post_one(client, lead(1))
                await relay_pass(client)
                log = (await client.get("/v1/webhooks/hubspot/attempts")).json()
        assert hubspot.requests == []
        assert [(a["type"], a["outcome"], a["error"]) for a in log] == [
            ("lead.assigned", "skipped", "owner 'ann' has no crm_user_id")
        ]


class TestSalesforce:
    """``OwnerId`` PATCHed on the Lead with ``Sforce-Auto-Assign: FALSE``; client-credentials token
    fetched once, reused, and fetched again when the API answers 401."""

    async def test_owner_written_to_the_lead_and_the_token_refreshed_on_401(
        self, settings: Settings, clean: None, clock: FakeClock
    ) -> None:
        tokens = iter(["token-1", "token-2"])

        def answer(req: Request, n: int) -> Answer:
            if req.path == "/services/oauth2/token":
                body = {"access_token": next(tokens), "instance_url": salesforce.url, "token_type": "Bearer"}
                return Answer(200, {"content-type": "application/json"}, json.dumps(body).encode())
            if req.headers["authorization"] == "Bearer token-1" and n == 1:
                return Answer(
                    401, {}, b'[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]'
                )
            return Answer(204, {}, b"")

        with receiver(answer) as salesforce:
            overrides = {
                "salesforce_client_id": "3MVG9-consumer-key",
                "salesforce_client_secret": "consumer-secret",
                "salesforce_token_url": salesforce.url + "/services/oauth2/token",
            }
            async with instance(settings, sla_rules(), clock, **overrides) as client:
                await crm_owners(client)
                await post_one(client, lead(1, attributes={"salesforce_lead_id": "00Q5e00000ABCDEFGH"}))
                await relay_pass(client)
                # as POST /v1/inbound/salesforce stores a Lead record (mappings/salesforce.yaml)
                inbound = {"salesforce_id": "00Q5e00000ZYXWVUTS", "salesforce_type": "Lead"}
                await post_one(client, lead(2, attributes=inbound))
                await relay_pass(client)
                await post_one(client, lead(3))  # no Salesforce id: skipped
                await relay_pass(client)
                log = (await client.get("/v1/webhooks/salesforce/attempts")).json()
            requests = salesforce.wait_for(5)

        token, refused, token_again, patched, reused = requests
        for req in (token, token_again):
            assert (req.method, req.path) == ("POST", "/services/oauth2/token")
            assert req.headers["content-type"] == "application/x-www-form-urlencoded"
            assert parse_qs(req.body.decode()) == {
                "grant_type": ["client_credentials"],
                "client_id": ["3MVG9-consumer-key"],
                "client_secret": ["consumer-secret"],
            }
        for req, bearer, lead_id in (
            (refused, "token-1", "00Q5e00000ABCDEFGH"),
            (patched, "token-2", "00Q5e00000ABCDEFGH"),
            (reused, "token-2", "00Q5e00000ZYXWVUTS"),
        ):
            assert (req.method, req.path) == ("PATCH", f"/services/data/v62.0/sobjects/Lead/{lead_id}")
            assert req.headers["authorization"] == f"Bearer {bearer}"
            assert req.headers["sforce-auto-assign"] == "FALSE"
            assert req.headers["content-type"] == "application/json"
            assert json.loads(req.body) == {"OwnerId": "0051x000001AnnAAA"}
        assert [(a["outcome"], a["status_code"]) for a in reversed(log)] == [
            ("delivered", 204),
            ("delivered", 204),
            ("skipped", None),
        ]
