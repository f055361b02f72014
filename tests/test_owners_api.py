"""Admin endpoints for owners and pools: create, update, deactivate, availability, out of office."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from conftest import FakeClock
from leadroute.config import Settings
from leadroute.store.owners import FallbackLoop, PoolIn, save_pools
from support import POOL_RULES, Client, authed, connection, explain, lead, owner, pool, post_one


async def problem(
    client: Client, method: str, url: str, body: dict[str, Any], status: int = 422
) -> dict[str, Any]:
    r = await client.request(method, url, json=body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    result: dict[str, Any] = r.json()
    return result


class TestOwners:
    async def test_put_returns_every_field_normalized_and_is_idempotent(self, client: Client) -> None:
        body = {
            "name": "Ann",
            "timezone": "Europe/Paris",
            "working_hours": {"mon-fri": "09:00-12:00,13:00-18:00"},
            "out_of_office": [{"from": "2026-12-24", "to": "2027-01-02"}],
            "capacity": {"max_open": 10},
            "weight": 3,
            "skills": ["fr", "enterprise", "fr"],
            "crm_user_id": "005X",
        }
        first = (await client.put("/v1/owners/ann", json=body)).json()
        again = (await client.put("/v1/owners/ann", json=body)).json()
        assert again == first  # updated_at did not move
        assert first["working_hours"]["wed"] == ["09:00-12:00", "13:00-18:00"]
        assert "sat" not in first["working_hours"]
        assert first["capacity"] == {"max_open": 10, "max_per_day": None}
        assert first["skills"] == ["enterprise", "fr"]
        assert (await client.get("/v1/owners/ann")).json() == first

    async def test_patch_changes_only_what_is_sent_and_null_clears(self, client: Client) -> None:
        await owner(client, "ann", timezone="Asia/Tokyo", capacity={"max_open": 3}, skills=["ja"])
        r = await client.patch("/v1/owners/ann", json={"weight": 2, "capacity": None})
        assert r.status_code == 200, r.text
        got = r.json()
        assert (got["timezone"], got["skills"], got["weight"], got["capacity"]) == (
            "Asia/Tokyo",
            ["ja"],
            2,
            None,
        )
        got = (await client.patch("/v1/owners/ann", json={"active": False})).json()
        assert got["active"] is False
        assert got["weight"] == 2

    async def test_availability_and_out_of_office_endpoints(self, client: Client) -> None:
        await owner(client, "ann")
        r = await client.put("/v1/owners/ann/working-hours", json={"working_hours": {"sat": "10:00-14:00"}})
        assert r.json()["working_hours"] == {"sat": ["10:00-14:00"]}
        r = await client.put(
            "/v1/owners/ann/out-of-office",
            json={
                "out_of_office": [{"from": "2026-12-01T09:00:00+01:00", "to": "2026-12-01T17:00:00+01:00"}]
            },
        )
        assert r.json()["out_of_office"] == [
            {"from": "2026-12-01T09:00:00+01:00", "to": "2026-12-01T17:00:00+01:00"}
        ]
        r = await client.put("/v1/owners/ann/working-hours", json={"working_hours": None})
        assert r.json()["working_hours"] is None
        assert (await client.put("/v1/owners/ann/out-of-office", json={"out_of_office": []})).json()[
            "out_of_office"
        ] == []
        r = await client.put("/v1/owners/ghost/out-of-office", json={"out_of_office": []})
        assert r.status_code == 404

    async def test_bad_fields_are_422_naming_the_field(self, client: Client) -> None:
        p = await problem(client, "PUT", "/v1/owners/ann", {"name": "Ann", "timezone": "Europe/Pariss"})
        assert p["errors"][0]["field"] == "timezone"
        assert "Europe/Pariss" in p["detail"]
        await owner(client, "ann")
        p = await problem(
            client, "PUT", "/v1/owners/ann/working-hours", {"working_hours": {"mon": "9am-5pm"}}
        )
        assert p["errors"][0]["field"] == "working_hours"
        p = await problem(
            client,
            "PUT",
            "/v1/owners/ann/out-of-office",
            {"out_of_office": [{"from": "2026-12-02", "to": "2026-12-01"}]},
        )
        assert p["errors"][0]["field"] == "out_of_office"
        p = await problem(client, "PATCH", "/v1/owners/ann", {"weight": 0}, status=400)
        assert "weight" in str(p["errors"])

    async def test_a_capacity_beyond_the_column_is_a_400_naming_it_not_a_500(self, client: Client) -> None:
        for key in ("max_open", "max_per_day"):
            body = {"name": "Ann", "capacity": {key: 99_999_999_999}}
            p = await problem(client, "PUT", "/v1/owners/ann", body, status=400)
            assert p["errors"][0]["field"] == f"capacity.{key}"

    async def test_out_of_office_set_over_http_takes_effect_for_routing(
        self, make_app: Any, clock: FakeClock
    ) -> None:
        async with authed(make_app(POOL_RULES, clock=clock)) as client:
            await owner(client, "ann")
            await owner(client, "ben")
            await pool(client, "sales", ["ann", "ben"])
            await client.put(
                "/v1/owners/ann/out-of-office",
                json={"out_of_office": [{"from": "2026-11-23", "to": "2026-11-23"}]},
            )
            decisions = [await post_one(client, lead(i)) for i in range(2)]
            assert [d["owner"] for d in decisions] == ["ben", "ben"]
            why = await explain(client, decisions[0]["lead_id"])
            assert {"owner": "ann", "reason": "out_of_office", "pool": "sales"} in why["assignment"][
                "owners_skipped"
            ]


class TestPools:
    async def test_put_patch_and_settings(self, client: Client) -> None:
        await owner(client, "ann")
        await owner(client, "ben")
        created = await pool(client, "sales", ["ann"], strategy="least_loaded", required_skill="fr")
        assert created == {
            "id": "sales",
            "strategy": "least_loaded",
            "fallback": "unassigned",
            "required_skill": "fr",
            "allow_off_hours": False,
            "sla_business_hours": False,
            "escalate_to": None,
            "members": ["ann"],
        }
        r = await client.patch("/v1/pools/sales", json={"members": ["ann", "ben"], "escalate_to": "ben"})
        assert r.status_code == 200, r.text
        assert r.json() | {"members": None} == created | {"members": None, "escalate_to": "ben"}
        assert r.json()["members"] == ["ann", "ben"]
        r = await client.patch("/v1/pools/sales", json={"required_skill": None, "sla_business_hours": True})
        assert (r.json()["required_skill"], r.json()["sla_business_hours"]) == (None, True)
        assert (await client.get("/v1/pools/sales")).json() == r.json()

    async def test_bad_strategy_unknown_member_and_unknown_escalation(self, client: Client) -> None:
        await owner(client, "ann")
        p = await problem(
            client, "PUT", "/v1/pools/sales", {"members": ["ann"], "strategy": "random"}, status=400
        )
        assert "strategy" in str(p["errors"])
        p = await problem(client, "PUT", "/v1/pools/sales", {"members": ["ann", "ghost"]})
        assert p["errors"] == [{"field": "members", "message": "unknown owner 'ghost'"}]
        p = await problem(client, "PUT", "/v1/pools/sales", {"members": ["ann"], "escalate_to": "nobody"})
        assert p["errors"][0]["field"] == "escalate_to"
        assert (await client.patch("/v1/pools/nope", json={})).status_code == 404


class TestFallbackLoops:
    """A save that would make a pool's fallback chain loop is a 422 naming fallback and the loop."""

    async def test_a_pool_falling_back_to_itself_is_refused(self, client: Client) -> None:
        await owner(client, "ann")
        saved = await pool(client, "inbound", ["ann"])
        p = await problem(client, "PATCH", "/v1/pools/inbound", {"fallback": "inbound"})
        assert p["errors"] == [
            {"field": "fallback", "message": "the fallback chain loops: inbound -> inbound"}
        ]
        assert "inbound -> inbound" in p["detail"]
        assert p["type"].endswith("/fallback-loop")
        p = await problem(client, "PUT", "/v1/pools/inbound", {"members": ["ann"], "fallback": "inbound"})
        assert p["errors"][0]["field"] == "fallback"
        assert (await client.get("/v1/pools/inbound")).json() == saved  # nothing was written

    async def test_a_two_pool_cycle_is_refused_whichever_save_closes_it(self, client: Client) -> None:
        await owner(client, "ann")
        await pool(client, "a", ["ann"], fallback="b")  # b is no pool yet: a queue name, fine
        p = await problem(client, "PUT", "/v1/pools/b", {"members": ["ann"], "fallback": "a"})
        assert p["errors"] == [{"field": "fallback", "message": "the fallback chain loops: b -> a -> b"}]
        assert (await client.get("/v1/pools/b")).status_code == 404
        await pool(client, "b", ["ann"], fallback="c")
        await pool(client, "c", ["ann"])  # a -> b -> c -> unassigned: a chain, not a loop
        p = await problem(client, "PATCH", "/v1/pools/c", {"fallback": "a"})
        assert p["errors"] == [{"field": "fallback", "message": "the fallback chain loops: c -> a -> b -> c"}]
        r = await client.patch("/v1/pools/c", json={"fallback": "overflow"})
        assert r.status_code == 200, r.text

    async def test_a_chain_longer_than_routing_follows_is_refused(self, client: Client) -> None:
        # routing tries a pool and at most 3 fallback pools: p1 -> p2 -> p3 -> p4 is the longest
        await owner(client, "ann")
        for n in (4, 3, 2, 1):  # p4 falls back to "p5", a queue name while no pool has it
            await pool(client, f"p{n}", ["ann"], fallback=f"p{n + 1}")
        p = await problem(client, "PUT", "/v1/pools/p5", {"members": ["ann"], "fallback": "unassigned"})
        assert p["type"].endswith("/fallback-too-long")
        assert p["errors"] == [
            {"field": "fallback", "message": "more than 3 hops: p1 -> p2 -> p3 -> p4 -> p5 -> unassigned"}
        ]
        assert (await client.get("/v1/pools/p5")).status_code == 404
        r = await client.put("/v1/pools/p0", json={"members": ["ann"], "fallback": "p1"})
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["message"] == "more than 3 hops: p0 -> p1 -> p2 -> p3 -> p4 -> p5"

    async def test_two_concurrent_saves_cannot_close_a_loop_between_them(
        self, client: Client, settings: Settings
    ) -> None:
        # a -> b and b -> a saved at the same time: each alone is fine, so without a lock each
        # transaction checks before the other commits and both succeed. The second must wait.
        await owner(client, "ann")
        async with connection(settings) as first, connection(settings) as second:
            async with first.transaction():
                await save_pools(first, [PoolIn(id="a", members=["ann"], fallback="b")])
                late = asyncio.create_task(
                    save_pools(second, [PoolIn(id="b", members=["ann"], fallback="a")])
                )
                await _until_waiting_for_a_lock(first, second)
                assert not late.done()
            with pytest.raises(FallbackLoop) as info:
                await late
            assert info.value.chain == ["b", "a", "b"]
            assert await first.fetchval("SELECT count(*) FROM pools WHERE id = 'b'") == 0

    async def test_a_loop_already_in_the_database_still_ends_in_the_queue(
        self, make_app: Any, settings: Settings
    ) -> None:
        # written before saves were checked: routing's hop limit still stops it, with the reason
        async with authed(make_app(POOL_RULES)) as client:
            await owner(client, "ann", active=False)
            await pool(client, "sales", ["ann"], fallback="other")
            await pool(client, "other", ["ann"])
            async with connection(settings) as conn:
                await conn.execute("UPDATE pools SET fallback = 'sales' WHERE id = 'other'")
            decision = await post_one(client, lead(1))
            assert (decision["status"], decision["owner"]) == ("unassigned", None)
            assert "fallback chain stopped at 'sales'" in decision["reason"]


async def _until_waiting_for_a_lock(watcher: asyncpg.Connection, waiting: asyncpg.Connection) -> None:
    """Wait until ``waiting`` is blocked on a lock (PostgreSQL says so), at most 10 seconds."""
    pid = waiting.get_server_pid()
    for _ in range(200):
        if await watcher.fetchval(
            "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid
        ):
            return
        await asyncio.sleep(0.05)
    pytest.fail("the second save never waited for the first")


class TestRoutingAdmin:
    async def test_state_and_rebuild(self, make_app: Any) -> None:
        async with authed(make_app(POOL_RULES)) as client:
            await owner(client, "ann")
            await pool(client, "sales", ["ann"])
            await post_one(client, lead(1, "acme.example"))
            state = (await client.get("/v1/routing/state")).json()
            assert state["present"] is True
            assert state["open"] == {"ann": 1}
            assert state["rr"] == {"sales": "ann"}
            assert state["account"] == {"acme.example": "ann"}
            r = await client.post("/v1/routing/rebuild")
            assert r.status_code == 200, r.text
            assert r.json()["open"] == {"ann": 1}
