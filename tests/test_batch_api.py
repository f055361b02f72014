"""``POST /v1/leads:batch`` end to end on real PostgreSQL and Redis: each item its own answer, in
order; idempotent per item; one bad item (at parse time or inside the transaction) never stops
the others; Redis counts stay what PostgreSQL holds."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import FakeClock
from fault_support import OwnRedis
from leadroute.api.batch import MAX_BATCH_BYTES
from leadroute.config import Settings, SettingsError
from leadroute.runtime import Runtime, utc_now
from leadroute.workflow.batch import MAX_ITEMS, submit_batch
from leadroute.workflow.intake import IntakeResult
from sla_support import assert_routing_consistent, in_app, instance, runtime, sla_rules
from support import POOL_RULES, Client, authed, connection, count, lead, owner, pool, setup_pool
from test_workflow_log import drain

BATCH = "/v1/leads:batch"


async def post_batch(client: Client, items: Any, **kwargs: Any) -> dict[str, Any]:
    r = await client.post(BATCH, json=items, **kwargs)
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    assert [item["index"] for item in answer["results"]] == list(range(len(answer["results"])))
    return answer


def statuses(answer: dict[str, Any]) -> list[int]:
    return [item["status"] for item in answer["results"]]


class TestTheRoute:
    """The literal ``:batch`` segment is a route of its own, beside ``/v1/leads``."""

    async def test_batch_path_is_routed_literally_and_documented(self, make_app: Any) -> None:
        async with authed(make_app(POOL_RULES)) as client:
            assert (await client.get(BATCH)).status_code == 405
            assert (await client.post("/v1/leads:other", json=[lead(1)])).status_code in {404, 405}
            schema = (await client.get("/schema/openapi.json")).json()
            operation = schema["paths"][BATCH]["post"]
            body = operation["requestBody"]["content"]["application/json"]["schema"]
            assert [s["type"] for s in body["oneOf"]] == ["array", "object"]
            assert body["oneOf"][0]["maxItems"] == MAX_ITEMS
            assert "200" in operation["responses"]

    async def test_a_key_without_leads_write_is_refused(self, make_app: Any) -> None:
        async with authed(make_app(POOL_RULES)) as admin:
            r = await admin.post("/v1/keys", json={"name": "reader", "scopes": ["leads:read"], "origins": []})
            assert r.status_code == 201, r.text
            reader = {"Authorization": f"Bearer {r.json()['key']}"}
            assert (await admin.post(BATCH, json=[lead(1)], headers=reader)).status_code == 403


class TestEachItemItsOwnAnswer:
    """Good, bad, replayed and conflicting items answer one by one, in the request's order."""

    async def test_mixed_items_in_order(self, make_app: Any, settings: Settings) -> None:
        async with authed(make_app(POOL_RULES)) as client:
            await setup_pool(client, ["olive", "oscar"])
            answer = await post_batch(
                client,
                [
                    lead(1),
                    {"email": 5, "employees": "many"},  # two bad fields
                    lead(2, event_id="e-2"),
                    lead(2, event_id="e-2"),  # the same key and body: a retry of the item before
                    lead(3, event_id="e-2"),  # the same key, another body
                    [1, 2],  # not an object
                    lead(4),
                ],
            )
            assert statuses(answer) == [201, 422, 201, 200, 422, 400, 201]
            results = answer["results"]
            assert results[1]["problem"]["type"].endswith("/invalid-lead")
            assert [e["field"] for e in results[1]["problem"]["errors"]] == ["email", "employees"]
            assert results[3]["decision"] == results[2]["decision"]
            assert results[4]["problem"]["type"].endswith("/idempotency-key-reused")
            assert results[5]["problem"]["errors"][0]["field"] == "body"
            assert {results[i]["decision"]["owner"] for i in (0, 2, 6)} <= {"olive", "oscar"}
            assert answer["counts"] == {"200": 1, "201": 3, "400": 1, "422": 2}
        assert await count(settings, "SELECT count(*) FROM leads") == 3

    async def test_an_item_posted_alone_before_is_a_replay_in_a_batch(self, make_app: Any) -> None:
        async with authed(make_app(POOL_RULES)) as client:
            await setup_pool(client, ["olive"])
            r = await client.post("/v1/leads", json=lead(1, event_id="form-1"))
            assert r.status_code == 201
            answer = await post_batch(client, {"leads": [lead(1, event_id="form-1"), lead(2)]})
            assert statuses(answer) == [200, 201]
            assert answer["results"][0]["decision"] == r.json()

    async def test_the_same_person_twice_in_one_batch_is_one_lead(
        self, make_app: Any, settings: Settings
    ) -> None:
        async with authed(make_app(POOL_RULES)) as client:
            await setup_pool(client, ["olive", "otto"])
            first = lead(1, first_name="Jo")
            again = {"email": first["email"].upper(), "city": "Leeds"}
            answer = await post_batch(client, [first, lead(2), again])
            assert statuses(answer) == [201, 201, 200]
            created, merged = answer["results"][0]["decision"], answer["results"][2]["decision"]
            assert merged["merged"] is True
            assert created["merged"] is False
            assert merged["lead_id"] == created["lead_id"]
            assert merged["owner"] == created["owner"]
            assert await count(settings, "SELECT count(*) FROM leads") == 2

    async def test_a_retried_batch_creates_nothing_twice(self, make_app: Any, settings: Settings) -> None:
        """Items with an event_id are keyed by it; the others by the header's key and their index."""
        items = [lead(n, event_id=f"e-{n}") if n % 2 else lead(n) for n in range(250)]
        headers = {"Idempotency-Key": "import-2026-12-03"}
        async with authed(make_app(POOL_RULES)) as client:
            await setup_pool(client, ["olive", "oscar"])
            first = await post_batch(client, items, headers=headers)
            assert set(statuses(first)) == {201}
            again = await post_batch(client, items, headers=headers)
            assert set(statuses(again)) == {200}
            assert [i["decision"] for i in again["results"]] == [i["decision"] for i in first["results"]]
            # without the header the keyless items are new requests: each merges into its person's
            # lead (the same email); the keyed ones still replay
            third = await post_batch(client, items)
            assert set(statuses(third)) == {200}
            assert [i["decision"]["merged"] for i in third["results"]] == [n % 2 == 0 for n in range(250)]
            await assert_routing_consistent(client)
        assert await count(settings, "SELECT count(*) FROM leads") == 250

    async def test_a_thousand_leads_in_one_request(self, make_app: Any, settings: Settings) -> None:
        async with authed(make_app(POOL_RULES)) as client:
            await setup_pool(client, ["olive", "oscar"])
            answer = await post_batch(client, [lead(n, event_id=f"k-{n}") for n in range(MAX_ITEMS)])
            assert set(statuses(answer)) == {201}
            ids = [item["decision"]["lead_id"] for item in answer["results"]]
            await assert_routing_consistent(client)
        async with connection(settings) as conn:
            rows = await conn.fetch("SELECT key, lead_id::text FROM idempotency_keys WHERE scope = 'lead'")
            stored = {r["key"]: r["lead_id"] for r in rows}
        assert [stored[f"k-{n}"] for n in range(MAX_ITEMS)] == ids  # each answer is its own item's


class TestWholeRequestRefusals:
    """Only a request that is not a batch at all is refused as a whole."""

    async def test_limits_and_shapes(self, make_app: Any, settings: Settings) -> None:
        async with authed(make_app(POOL_RULES)) as client:
            r = await client.post(BATCH, json=[lead(n) for n in range(MAX_ITEMS + 1)])
            assert r.status_code == 422, r.text
            assert r.json()["type"].endswith("/batch-too-large")
            assert r.json()["errors"] == [{"field": "leads", "message": "at most 1000 items (got 1001)"}]
            notes = dict.fromkeys(("a", "b", "c"), "x" * 1900)
            big = [lead(n, attributes=notes) for n in range(800)]  # fewer than 1,000, over 4 MB
            assert len(json.dumps(big)) > MAX_BATCH_BYTES
            r = await client.post(BATCH, json=big)
            assert r.status_code == 413, r.text[:500]
            not_batches: list[Any] = [{"lead": [lead(1)]}, lead(1), [], {"leads": []}, "leads"]
            for body in not_batches:
                r = await client.post(BATCH, json=body)
                assert r.status_code == 400, (body, r.text)
                assert r.json()["errors"][0]["field"] == "body"
            r = await client.post(BATCH, content=b"[{", headers={"Content-Type": "application/json"})
            assert r.status_code == 400
        assert await count(settings, "SELECT count(*) FROM leads") == 0


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.close()


class TestFailuresInsideTheTransaction:
    """An item that fails where it is written rolls back alone, and gives its owner's slot back."""

    async def test_one_failing_item_leaves_the_rest_committed_and_redis_consistent(
        self, settings: Settings, clean: None, clock: FakeClock
    ) -> None:
        async with connection(settings) as conn:  # a constraint the batch cannot know in advance
            await conn.execute(
                """
                CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF NEW.email LIKE 'boom%' THEN RAISE EXCEPTION 'refused' USING ERRCODE = '23514'; END IF;
                    RETURN NEW;
                END $$;
                CREATE TRIGGER refuse_boom BEFORE INSERT ON leads FOR EACH ROW EXECUTE FUNCTION refuse_boom();
                """
            )
        async with instance(settings, sla_rules(30), clock) as client:
            await owner(client, "ann", capacity={"max_open": 3})
            await pool(client, "sales", ["ann"])
            items = [lead(1), {"email": "boom@acme.example", "event_id": "boom"}, lead(2), lead(3), lead(4)]
            answer = await post_batch(client, items)
            assert statuses(answer) == [201, 500, 201, 201, 201]
            assert answer["results"][1]["problem"]["type"].endswith("/internal")
            owners = [item.get("decision", {}).get("owner") for item in answer["results"]]
            # the failed item's slot came back at once: ann took three of the four others
            assert owners == ["ann", None, "ann", "ann", None]
            await assert_routing_consistent(client)
            # nothing of it was written, its key included: sent again (without the trigger) it is new
            async with connection(settings) as conn:
                await conn.execute("DROP TRIGGER refuse_boom ON leads")
            again = await post_batch(client, [items[1]])
            assert statuses(again) == [201]
        assert await count(settings, "SELECT count(*) FROM leads") == 5
        assert await count(settings, "SELECT count(*) FROM lead_events WHERE kind = 'lead.received'") == 5

    async def test_redis_down_mid_batch_leaves_the_rest_pending(
        self, settings: Settings, clean: None, clock: FakeClock, own_redis: OwnRedis
    ) -> None:
        async with instance(settings, sla_rules(30), clock, redis_url=own_redis.url) as client:
            await owner(client, "ann", capacity={"max_open": 100})
            await pool(client, "sales", ["ann"])
            router = runtime(client).routing
            assign, calls = router.assign, 0

            async def redis_dies_after_three(*args: Any, **kwargs: Any) -> Any:
                nonlocal calls
                calls += 1
                if calls == 4:
                    own_redis.stop()
                return await assign(*args, **kwargs)

            router.assign = redis_dies_after_three  # type: ignore[method-assign]
            answer = await post_batch(client, [lead(n, event_id=f"r-{n}") for n in range(8)])
            router.assign = assign  # type: ignore[method-assign]
            assert statuses(answer) == [201] * 3 + [202] * 5
            assert [i["decision"]["status"] for i in answer["results"]] == ["assigned"] * 3 + ["pending"] * 5

            own_redis.start()  # empty: rebuilt from PostgreSQL, then the pending leads are routed
            assert await drain(client) == 5
            await assert_routing_consistent(client)
            retried = await post_batch(client, [lead(n, event_id=f"r-{n}") for n in range(8)])
            assert statuses(retried) == [200] * 8  # the stored answers, pending ones included
        assert await count(settings, "SELECT count(*) FROM leads") == 8


class TestChunks:
    """Items are committed a chunk at a time; the answer does not depend on where chunks end."""

    async def test_duplicates_across_chunks_are_replays(self, settings: Settings, clean: None) -> None:
        chunk = 7
        items = [lead(n % chunk, event_id=f"c-{n % chunk}") for n in range(chunk + 5)] + [{"email": 5}]
        async with instance(settings, POOL_RULES, utc_now, batch_chunk=chunk) as client:
            await setup_pool(client, ["olive"])
            answer = await post_batch(client, items)
            await assert_routing_consistent(client)
        assert statuses(answer) == [201] * chunk + [200] * 5 + [422]
        assert answer["results"][chunk]["decision"] == answer["results"][0]["decision"]
        assert await count(settings, "SELECT count(*) FROM leads") == chunk


class TestConcurrentBatches:
    """Two batches that share keys in opposite orders deadlock in PostgreSQL; the item that loses
    is rolled back alone and written again after its chunk, so both batches finish, once each."""

    async def test_opposite_key_orders_both_finish_without_a_duplicate(
        self, make_app: Any, settings: Settings, caplog: pytest.LogCaptureFixture
    ) -> None:
        async with connection(settings) as conn:  # hold each batch on its first item a moment
            await conn.execute(
                """
                CREATE FUNCTION slow_first() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF NEW.email LIKE 'slow%' THEN PERFORM pg_sleep(0.3); END IF;
                    RETURN NEW;
                END $$;
                CREATE TRIGGER slow_first BEFORE INSERT ON leads FOR EACH ROW EXECUTE FUNCTION slow_first();
                """
            )
        caplog.set_level(logging.INFO, logger="leadroute.workflow.batch")
        one = {"email": "slow1@acme.example", "event_id": "k-1"}
        two = {"email": "slow2@acme.example", "event_id": "k-2"}

        async def batch(rt: Runtime, items: list[dict[str, Any]]) -> list[Any]:
            return await submit_batch(rt, [json.dumps(item).encode() for item in items], None)

        async with authed(make_app(POOL_RULES)) as client:
            await setup_pool(client, ["olive"])
            a, b = await asyncio.gather(in_app(client, batch, [one, two]), in_app(client, batch, [two, one]))
        assert all(isinstance(outcome, IntakeResult) for outcome in a + b)
        assert sorted(outcome.created for outcome in a + b) == [False, False, True, True]
        assert a[0].decision == b[1].decision  # k-1: one lead, one answer
        assert a[1].decision == b[0].decision  # k-2
        assert await count(settings, "SELECT count(*) FROM leads") == 2
        assert "lost a deadlock" in caplog.text  # the case this test is about did happen


class TestPostgresGoneMidBatch:
    """Chunks committed before PostgreSQL went away keep their answers; the rest are 503 each."""

    KILL = """
        CREATE FUNCTION kill_me() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.email LIKE 'kill%' THEN PERFORM pg_terminate_backend(pg_backend_pid()); END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER kill_me BEFORE INSERT ON leads FOR EACH ROW EXECUTE FUNCTION kill_me();
    """

    async def test_committed_chunks_stand_and_the_rest_are_503(self, settings: Settings, clean: None) -> None:
        async with connection(settings) as conn:  # the server ends the batch's connection mid-chunk
            await conn.execute(self.KILL)
        items = [lead(1), lead(2), lead(3), lead(4), {"email": "kill@acme.example"}, lead(6), lead(7)]
        async with instance(settings, POOL_RULES, utc_now, batch_chunk=3) as client:
            await setup_pool(client, ["olive"])
            answer = await post_batch(client, items)
            assert statuses(answer) == [201] * 3 + [503] * 4
            assert answer["results"][3]["problem"]["type"].endswith("/dependency-unavailable")
            await assert_routing_consistent(client)  # the lost chunk's claims were given back
            # nothing committed yet when it happens: the request as a whole is a 503
            r = await client.post(BATCH, json=[lead(8), {"email": "kill2@acme.example"}])
            assert r.status_code == 503, r.text
            assert "Retry-After" in r.headers
            assert (await client.post(BATCH, json=[lead(9)])).status_code == 200  # and it recovers
        assert await count(settings, "SELECT count(*) FROM leads") == 4


class TestTheChunkSetting:
    """``LEADROUTE_BATCH_CHUNK`` stays within what PostgreSQL caches of a transaction's savepoints."""

    def test_bounds(self) -> None:
        urls = {"database_url": "postgresql://unused/db", "redis_url": "redis://unused"}
        assert Settings.from_env({}, **urls).batch_chunk == 50
        assert Settings.from_env({"LEADROUTE_BATCH_CHUNK": "64"}, **urls).batch_chunk == 64
        for wrong in ("0", "65"):
            with pytest.raises(SettingsError, match="LEADROUTE_BATCH_CHUNK"):
                Settings.from_env({"LEADROUTE_BATCH_CHUNK": wrong}, **urls)
