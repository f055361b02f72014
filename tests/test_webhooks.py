"""Webhooks over real PostgreSQL and Redis, to local receivers: what is sent, in what order, how
it is signed, retried, given up on, redelivered, and what the delivery log says."""

from __future__ import annotations

import json
from typing import Any

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from conftest import FakeClock
from leadroute.config import Settings
from leadroute.outbound import BACKOFF, EVENT_TYPES
from outbound_support import Answer, always, create_endpoint, receiver, relay_pass, verified
from process_support import cli_env, leadroute
from sla_support import fire, instance, sla_rules
from support import Client, lead, owner, pool, post_one

WORKFLOW = ["lead.assigned", "lead.sla_breached", "lead.reassigned", "lead.closed"]


def fails_first(times: int) -> Any:
    return lambda _req, n: Answer(500, body=b"not today") if n < times else Answer(200)


async def sales(client: Client) -> None:
    await owner(client, "ann", crm_user_id="crm-ann")
    await owner(client, "ben", crm_user_id="crm-ben")
    await pool(client, "sales", ["ann", "ben"])


async def story(client: Client, clock: FakeClock) -> str:
    """A lead assigned, breached and reassigned, then closed; its id."""
    posted = await post_one(client, lead(1))
    clock.advance(minutes=31)
    assert await fire(client) == 1
    r = await client.post(f"/v1/assignments/{posted['lead_id']}/close", json={"reason": "won"})
    assert r.status_code == 200, r.text
    lead_id: str = posted["lead_id"]
    return lead_id


class TestTheStory:
    """A lead's workflow reaches two endpoints as exactly its events, in order, verifiably signed."""

    async def test_assigned_breached_reassigned_closed_to_two_endpoints_one_failing_3_times(
        self, settings: Settings, clean: None, clock: FakeClock
    ) -> None:
        with receiver() as good, receiver(fails_first(3)) as flaky:
            async with instance(settings, sla_rules(), clock, webhook_allow_private=True) as client:
                await sales(client)
                everything = await create_endpoint(client, good.url + "/hooks", list(EVENT_TYPES))
                workflow = await create_endpoint(client, flaky.url + "/in", WORKFLOW)
                assert everything["secret"].startswith("whsec_")

                lead_id = await story(client, clock)
                await relay_pass(client)

                # every event the endpoint asked for, in log order, never lead.received
                got = [verified(r, everything["secret"]) for r in good.wait_for(5)]
                assert [g["type"] for g in got] == ["lead.scored", *WORKFLOW]
                assert all(g["data"]["lead_id"] == lead_id for g in got)
                seqs = [g["data"]["sequence"] for g in got]
                assert seqs == sorted(seqs)

                # the failing endpoint got its first event once, and nothing after it (per-lead order)
                assert len(flaky.requests) == 1
                for wait in (BACKOFF[0], BACKOFF[1], BACKOFF[2]):
                    clock.advance(seconds=wait.total_seconds() * 1.25)
                    await relay_pass(client)
                received = flaky.wait_for(3 + 4)
                bodies = [verified(r, workflow["secret"]) for r in received]
                assert [b["type"] for b in bodies] == [WORKFLOW[0]] * 4 + WORKFLOW[1:]
                first_ids = {r.headers["webhook-id"] for r in received[:4]}
                assert len(first_ids) == 1  # the same webhook-id on every retry: receivers dedupe
                assert len({r.headers["webhook-id"] for r in received}) == 4

                # the reassignment says why, with the owners' CRM ids: no call back needed
                reassigned = bodies[-2]["data"]
                assert reassigned["event"]["cause"] == "sla_breach"
                assert reassigned["event"]["pool"] == "sales"
                assert reassigned["event"]["rule"] == "everyone"
                assert reassigned["event"]["strategy"] == "round_robin"
                assert reassigned["previous_owner"]["crm_user_id"] in {"crm-ann", "crm-ben"}
                assert reassigned["owner"]["crm_user_id"] in {"crm-ann", "crm-ben"}
                assert reassigned["owner"]["id"] != reassigned["previous_owner"]["id"]
                assert {s["owner"] for s in reassigned["event"]["skipped"]} == {
                    reassigned["previous_owner"]["id"]
                }

                # the delivery log: three failures with their answers, then success
                r = await client.get(f"/v1/webhooks/{workflow['id']}/attempts", params={"event": seqs[1]})
                log = r.json()
                assert [(a["attempt"], a["outcome"], a["status_code"]) for a in reversed(log)] == [
                    (1, "failed", 500),
                    (2, "failed", 500),
                    (3, "failed", 500),
                    (4, "delivered", 200),
                ]
                assert log[-1]["response"] == "not today"
                assert all(a["latency_ms"] is not None for a in log)
                r = await client.get(f"/v1/webhooks/{workflow['id']}/deliveries")
                assert [d["status"] for d in r.json()] == ["delivered"] * 4

    async def test_nothing_is_sent_twice_and_private_data_never_leaves(
        self, settings: Settings, clean: None, clock: FakeClock
    ) -> None:
        with receiver() as got:
            async with instance(settings, sla_rules(), clock, webhook_allow_private=True) as client:
                await sales(client)
                endpoint = await create_endpoint(client, got.url, list(EVENT_TYPES))
                await post_one(client, lead(7, phone="+1 415 555 0100", first_name="Jane"))
                await relay_pass(client)
                await relay_pass(client)
                requests = got.wait_for(2)
                assert [verified(r, endpoint["secret"])["type"] for r in requests] == [
                    "lead.scored",
                    "lead.assigned",
                ]
                for r in requests:
                    assert b"person7@" not in r.body
                    # the phone in any form it could take (a bare "555" also matches random uuids)
                    assert b"5550100" not in r.body
                    assert b"555 0100" not in r.body
                    assert b"Jane" not in r.body


class TestEndpoints:
    """Endpoints start at the end of the log, can be rotated, disabled by a 410, and redelivered to."""

    async def test_a_new_endpoint_gets_only_what_comes_after_it(
        self, settings: Settings, clean: None, clock: FakeClock
    ) -> None:
        with receiver() as got:
            async with instance(settings, sla_rules(), clock, webhook_allow_private=True) as client:
                await sales(client)
                before = await post_one(client, lead(1))
                await relay_pass(client)
                endpoint = await create_endpoint(client, got.url, ["lead.assigned"])
                after = await post_one(client, lead(2))
                await relay_pass(client)
                bodies = [verified(r, endpoint["secret"]) for r in got.wait_for(1)]
                assert [b["data"]["lead_id"] for b in bodies] == [after["lead_id"]]
                assert before["lead_id"] != after["lead_id"]

    async def test_rotation_sends_both_signatures_until_the_old_secret_expires(
        self, settings: Settings, clean: None, clock: FakeClock
    ) -> None:
        with receiver() as got:
            async with instance(settings, sla_rules(), clock, webhook_allow_private=True) as client:
                await sales(client)
                endpoint = await create_endpoint(client, got.url, ["lead.assigned"])
                r = await client.post(
                    f"/v1/webhooks/{endpoint['id']}/rotate", json={"keep_previous_hours": 1}
                )
                assert r.status_code == 200, r.text
                rotated = r.json()
                assert rotated["signing_secrets"] == 2
                await post_one(client, lead(1))
                await relay_pass(client)
                first = got.wait_for(1)[0]
                assert len(first.headers["webhook-signature"].split(" ")) == 2
                verified(first, endpoint["secret"])
                verified(first, rotated["secret"])

                clock.advance(hours=2)
                await post_one(client, lead(2))
                await relay_pass(client)
                second = got.wait_for(2)[1]
                assert len(second.headers["webhook-signature"].split(" ")) == 1
                verified(second, rotated["secret"])
                with pytest.raises(WebhookVerificationError):
                    Webhook(endpoint["secret"]).verify(second.body, second.headers)

    async def test_410_disables_the_endpoint_and_enabling_it_sends_what_waited(
        self, settings: Settings, clean: None, clock: FakeClock
    ) -> None:
        with receiver(lambda _r, n: Answer(410) if n == 0 else Answer(200)) as got:
            async with instance(settings, sla_rules(), clock, webhook_allow_private=True) as client:
                await sales(client)
                endpoint = await create_endpoint(client, got.url, ["lead.assigned"])
                await post_one(client, lead(1))
                await relay_pass(client)
                view = (await client.get(f"/v1/webhooks/{endpoint['id']}")).json()
                assert view["enabled"] is False
                assert "410" in view["disabled_reason"]
                await post_one(client, lead(2))  # while disabled: not queued for it
                clock.advance(hours=1)
                await relay_pass(client)
                assert len(got.requests) == 1

                r = await client.patch(f"/v1/webhooks/{endpoint['id']}", json={"enabled": True})
                assert r.json()["enabled"] is True
                await relay_pass(client)
                requests = got.wait_for(2)
                assert requests[0].headers["webhook-id"] == requests[1].headers["webhook-id"]

    async def test_the_last_failure_is_dead_and_redelivery_sends_it_again(
        self, settings: Settings, clean: None, clock: FakeClock
    ) -> None:
        with receiver(always(503)) as got:
            async with instance(settings, sla_rules(), clock, webhook_allow_private=True) as client:
                await sales(client)
                endpoint = await create_endpoint(client, got.url, ["lead.assigned", "lead.scored"])
                await post_one(client, lead(1))
                for _ in range(2 * (len(BACKOFF) + 1)):  # ten tries each, one after the other
                    await relay_pass(client)
                    clock.advance(hours=30)
                deliveries = (await client.get(f"/v1/webhooks/{endpoint['id']}/deliveries")).json()
                assert [d["status"] for d in deliveries] == ["dead", "dead"]
                assert deliveries[-1]["attempts"] == len(BACKOFF) + 1
                scored_ids = {r.headers["webhook-id"] for r in got.requests if b"lead.scored" in r.body}
                assert len(scored_ids) == 1
                # the scored event was dead before the assigned one was sent: per-lead order holds
                kinds = [r.json()["type"] for r in got.requests]
                assert kinds == ["lead.scored"] * 10 + ["lead.assigned"] * 10

                got.answer = always(200)
                seqs = sorted(d["event"] for d in deliveries)
                r = await client.post(f"/v1/webhooks/{endpoint['id']}/redeliver", json={"event": seqs[1]})
                assert r.status_code == 202, r.text
                assert r.json()["events"] == [seqs[1]]
                await relay_pass(client)
                assert got.requests[-1].json()["type"] == "lead.assigned"
                r = await client.post(
                    f"/v1/webhooks/{endpoint['id']}/redeliver", json={"from_event": 1, "to_event": seqs[1]}
                )
                assert r.json()["events"] == seqs
                await relay_pass(client)
                assert [q.json()["type"] for q in got.requests[-2:]] == ["lead.scored", "lead.assigned"]
                assert got.requests[-1].headers["webhook-id"] == got.requests[-3].headers["webhook-id"]


class TestSsrfGuard:
    """No webhook reaches a non-public address unless the deployment allows it."""

    async def test_a_private_url_is_refused_when_made_and_when_sent(
        self, settings: Settings, clean: None, clock: FakeClock
    ) -> None:
        with receiver() as got:
            async with instance(settings, sla_rules(), clock) as strict:
                for url in (
                    "http://127.0.0.1:9/x",
                    "http://10.1.2.3/x",
                    "http://[::1]/x",
                    "http://localhost/x",
                ):
                    r = await strict.post("/v1/webhooks", json={"url": url, "events": ["lead.assigned"]})
                    assert r.status_code == 422, url
                    assert r.json()["errors"][0]["field"] == "url"
                async with instance(settings, sla_rules(), clock, webhook_allow_private=True) as lax:
                    await sales(lax)
                    endpoint = await create_endpoint(lax, got.url, ["lead.assigned"])
                await post_one(strict, lead(1))
                await relay_pass(strict)  # resolved at send time: 127.0.0.1 is refused
                assert got.requests == []
                log = (await strict.get(f"/v1/webhooks/{endpoint['id']}/attempts")).json()
                assert log[0]["outcome"] == "failed"
                assert "not a public address" in log[0]["error"]


class TestApi:
    """The endpoint API validates what it is given and keeps connectors read-only."""

    async def test_manage_an_endpoint(self, client: Client) -> None:
        r = await client.post(
            "/v1/webhooks", json={"url": "https://hooks.example/in", "events": ["lead.received"]}
        )
        assert r.status_code == 400  # not an event type that leaves the service
        made = await create_endpoint(client, "https://hooks.example/in", ["lead.closed", "lead.assigned"])
        assert made["events"] == ["lead.assigned", "lead.closed"]
        listed = (await client.get("/v1/webhooks")).json()
        assert [e["id"] for e in listed] == [made["id"]]
        assert "secret" not in listed[0]
        r = await client.patch(
            f"/v1/webhooks/{made['id']}", json={"events": ["lead.queued"], "enabled": False}
        )
        assert (r.json()["events"], r.json()["enabled"], r.json()["disabled_reason"]) == (
            ["lead.queued"],
            False,
            "disabled by hand",
        )
        r = await client.post(f"/v1/webhooks/{made['id']}/redeliver", json={"from_event": 5, "to_event": 2})
        assert r.status_code == 422
        assert (await client.delete(f"/v1/webhooks/{made['id']}")).status_code == 204
        assert (await client.get(f"/v1/webhooks/{made['id']}")).status_code == 404

    async def test_connectors_are_listed_but_not_changed_here(
        self, settings: Settings, clean: None, clock: FakeClock
    ) -> None:
        async with instance(settings, sla_rules(), clock, hubspot_token="pat-x") as client:
            listed = (await client.get("/v1/webhooks")).json()
            assert [(e["id"], e["kind"], e["enabled"]) for e in listed] == [("hubspot", "hubspot", True)]
            r = await client.patch("/v1/webhooks/hubspot", json={"enabled": False})
            assert r.status_code == 409
        async with instance(settings, sla_rules(), clock) as client:  # the token is gone: off
            listed = (await client.get("/v1/webhooks")).json()
            assert [(e["id"], e["enabled"], e["disabled_reason"]) for e in listed] == [
                ("hubspot", False, "not configured")
            ]


class TestCli:
    """``leadroute webhooks`` does what the API does, on the database."""

    async def test_create_list_rotate_redeliver_and_read_the_log(
        self, settings: Settings, clean: None
    ) -> None:
        env = cli_env(settings)
        made = leadroute(
            "webhooks", "create", "https://hooks.example/in", "--event", "lead.assigned", env=env
        )
        assert made.returncode == 0, made.stderr
        endpoint = json.loads(made.stdout)
        assert endpoint["secret"].startswith("whsec_")
        listed = json.loads(leadroute("webhooks", "list", env=env).stdout)
        assert [e["id"] for e in listed] == [endpoint["id"]]
        rotated = json.loads(leadroute("webhooks", "rotate", endpoint["id"], env=env).stdout)
        assert rotated["signing_secrets"] == 2
        again = leadroute("webhooks", "redeliver", endpoint["id"], "--from", "1", "--to", "10", env=env)
        assert json.loads(again.stdout) == {"endpoint": endpoint["id"], "events": []}
        assert json.loads(leadroute("webhooks", "attempts", endpoint["id"], env=env).stdout) == []
        bad = leadroute("webhooks", "create", "https://hooks.example/in", "--event", "lead.received", env=env)
        assert bad.returncode == 1
        assert "unknown event type" in bad.stderr
        gone = leadroute("webhooks", "show", "wh_nope", env=env)
        assert (gone.returncode, gone.stderr.strip()) == (
            1,
            "leadroute: no webhook endpoint with id 'wh_nope'",
        )
