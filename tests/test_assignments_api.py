"""POST /v1/assignments/{lead_id}/accept | reassign | close over HTTP (real PostgreSQL and Redis)."""

from __future__ import annotations

import uuid
from typing import Any

from conftest import FakeClock
from sla_support import assert_routing_consistent, fire, kinds, open_counts, sla_rules, steps
from support import ADMIN_ACTOR, Client, authed, get_lead, lead, post_one, setup_pool

RULES = sla_rules(30)


async def _post(client: Client, lead_id: str, action: str, body: Any = None) -> Any:
    if body is None:
        return await client.post(f"/v1/assignments/{lead_id}/{action}")
    return await client.post(f"/v1/assignments/{lead_id}/{action}", json=body)


def _problem(r: Any, status: int, kind: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["type"].endswith("/" + kind)
    return body


class TestAccept:
    async def test_the_owner_accepts_and_accepting_again_answers_the_same(
        self, make_app: Any, clock: FakeClock
    ) -> None:
        async with authed(make_app(RULES, clock=clock)) as client:
            await setup_pool(client, ["alice", "bob"])
            d = await post_one(client, lead(1))
            clock.advance(minutes=7)
            r = await _post(client, d["lead_id"], "accept", {"owner_id": d["owner"]})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["status"] == "accepted"
            assert body["owner"] == d["owner"]
            assert body["sla"]["status"] == "cancelled"
            assert body["sla"]["resolution"] == "accepted"
            assert body["accepted_at"] == "2026-11-23T15:07:00Z"
            clock.advance(minutes=1)
            again = await _post(client, d["lead_id"], "accept", {"owner_id": d["owner"]})
            assert again.status_code == 200
            assert again.json() == body
            view = await get_lead(client, d["lead_id"])
            assert view["status"] == "accepted"
            assert kinds(view) == ["lead.accepted"]
            assert steps(view)[0]["after_minutes"] == 7

    async def test_only_the_current_owner_may_accept(self, make_app: Any, clock: FakeClock) -> None:
        async with authed(make_app(RULES, clock=clock)) as client:
            await setup_pool(client, ["alice", "bob"])
            d = await post_one(client, lead(1))
            other = "bob" if d["owner"] == "alice" else "alice"
            body = _problem(
                await _post(client, d["lead_id"], "accept", {"owner_id": other}), 409, "not-current-owner"
            )
            assert body["errors"][0]["field"] == "owner_id"
            assert (await get_lead(client, d["lead_id"]))["status"] == "assigned"

    async def test_errors(self, make_app: Any, clock: FakeClock) -> None:
        async with authed(make_app(RULES, clock=clock)) as client:
            await setup_pool(client, ["alice"])
            _problem(
                await _post(client, str(uuid.uuid4()), "accept", {"owner_id": "alice"}), 404, "not-found"
            )
            d = await post_one(client, lead(1))
            _problem(await _post(client, d["lead_id"], "accept"), 400, "invalid-request")
            _problem(await _post(client, d["lead_id"], "accept", {"owner": "alice"}), 400, "invalid-request")

    async def test_an_unassigned_lead_cannot_be_accepted(self, make_app: Any, clock: FakeClock) -> None:
        async with authed(make_app(RULES, clock=clock)) as client:
            await setup_pool(client, ["alice"])
            r = await client.patch("/v1/owners/alice", json={"active": False})
            assert r.status_code == 200, r.text
            d = await post_one(client, lead(1))
            assert d["owner"] is None
            _problem(
                await _post(client, d["lead_id"], "accept", {"owner_id": "alice"}), 409, "workflow-conflict"
            )


class TestReassign:
    async def test_to_the_next_eligible_owner_releases_the_old_owners_capacity(
        self, make_app: Any, clock: FakeClock
    ) -> None:
        async with authed(make_app(RULES, clock=clock)) as client:
            await setup_pool(client, ["alice", "bob", "carol"])
            d = await post_one(client, lead(1))
            assert await open_counts(client) == {d["owner"]: 1}
            clock.advance(minutes=5)
            r = await _post(client, d["lead_id"], "reassign", {"reason": "wrong territory"})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["status"] == "reassigned"
            assert body["owner"] not in (None, d["owner"])
            assert body["sla"]["owner"] == body["owner"]  # the new owner's own SLA
            assert body["sla"]["status"] == "pending"
            assert await open_counts(client) == {body["owner"]: 1}
            view = await get_lead(client, d["lead_id"])
            step = steps(view)[-1]
            assert step["kind"] == "lead.reassigned"
            assert step["previous_owner"] == d["owner"]
            assert step["owner"] == body["owner"]
            assert (step["cause"], step["actor"]) == ("reassign", ADMIN_ACTOR)
            assert step["reason"] == "wrong territory"
            await assert_routing_consistent(client)

    async def test_with_an_empty_body_too(self, make_app: Any, clock: FakeClock) -> None:
        async with authed(make_app(RULES, clock=clock)) as client:
            await setup_pool(client, ["alice", "bob"])
            d = await post_one(client, lead(1))
            r = await _post(client, d["lead_id"], "reassign")
            assert r.status_code == 200, r.text
            assert r.json()["owner"] not in (None, d["owner"])

    async def test_to_a_named_owner_and_again_changes_nothing(self, make_app: Any, clock: FakeClock) -> None:
        async with authed(make_app(RULES, clock=clock)) as client:
            await setup_pool(client, ["alice", "bob"])
            r = await client.put("/v1/owners/zoe", json={"name": "Zoe"})  # not in the pool: a person chose
            assert r.status_code == 200, r.text
            d = await post_one(client, lead(1))
            r = await _post(client, d["lead_id"], "reassign", {"owner_id": "zoe"})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["owner"] == "zoe"
            assert body["status"] == "reassigned"
            again = await _post(client, d["lead_id"], "reassign", {"owner_id": "zoe"})
            assert again.status_code == 200
            assert again.json() == body
            assert await open_counts(client) == {"zoe": 1}
            await assert_routing_consistent(client)

    async def test_to_an_unknown_or_unavailable_owner(self, make_app: Any, clock: FakeClock) -> None:
        async with authed(make_app(RULES, clock=clock)) as client:
            await setup_pool(client, ["alice", "bob"])
            d = await post_one(client, lead(1))
            body = _problem(
                await _post(client, d["lead_id"], "reassign", {"owner_id": "nobody"}), 422, "unknown-owner"
            )
            assert body["errors"][0]["field"] == "owner_id"
            r = await client.put("/v1/owners/gone", json={"name": "Gone", "active": False})
            assert r.status_code == 200, r.text
            body = _problem(
                await _post(client, d["lead_id"], "reassign", {"owner_id": "gone"}), 409, "workflow-conflict"
            )
            assert "inactive" in body["detail"]
            r = await client.put("/v1/owners/full", json={"name": "Full", "capacity": {"max_open": 0}})
            assert r.status_code == 200, r.text
            body = _problem(
                await _post(client, d["lead_id"], "reassign", {"owner_id": "full"}), 409, "workflow-conflict"
            )
            assert "over_capacity" in body["detail"]
            view = await get_lead(client, d["lead_id"])
            assert view["owner"] == d["owner"]  # nothing changed
            assert view["status"] == "assigned"
            await assert_routing_consistent(client)

    async def test_nobody_else_eligible_sends_the_lead_to_the_fallback_queue(
        self, make_app: Any, clock: FakeClock
    ) -> None:
        async with authed(make_app(RULES, clock=clock)) as client:
            await setup_pool(client, ["alice"])
            d = await post_one(client, lead(1))
            r = await _post(client, d["lead_id"], "reassign")
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["status"] == "unassigned"
            assert body["owner"] is None
            assert body["queue"] == "unassigned"
            assert "no eligible owner" in body["reason"]
            assert await open_counts(client) == {}
            view = await get_lead(client, d["lead_id"])
            assert steps(view)[-1]["kind"] == "lead.queued"
            # later, someone picks it from the queue by hand
            r = await _post(client, d["lead_id"], "reassign", {"owner_id": "alice"})
            assert r.status_code == 200, r.text
            assert r.json()["owner"] == "alice"
            assert r.json()["sla"]["status"] == "pending"

    async def test_a_lead_queued_from_the_start_gets_its_rules_sla_when_taken(
        self, make_app: Any, clock: FakeClock
    ) -> None:
        async with authed(make_app(RULES, clock=clock)) as client:
            await setup_pool(client, ["alice", "bob"])
            for ident in ("alice", "bob"):
                r = await client.patch(f"/v1/owners/{ident}", json={"active": False})
                assert r.status_code == 200, r.text
            queued = [await post_one(client, lead(n)) for n in (1, 2)]
            assert [d["status"] for d in queued] == ["unassigned", "unassigned"]
            for ident in ("alice", "bob"):
                r = await client.patch(f"/v1/owners/{ident}", json={"active": True})
                assert r.status_code == 200, r.text
            taken = [
                await _post(client, queued[0]["lead_id"], "reassign"),  # the pool's next owner
                await _post(client, queued[1]["lead_id"], "reassign", {"owner_id": "bob"}),
            ]
            for r in taken:
                assert r.status_code == 200, r.text
                assert r.json()["owner"] is not None
                assert r.json()["sla"] is not None, r.json()
                assert (r.json()["sla"]["status"], r.json()["sla"]["minutes"]) == ("pending", 30)


class TestClose:
    async def test_closing_releases_capacity_and_stops_the_timer(
        self, make_app: Any, clock: FakeClock
    ) -> None:
        async with authed(make_app(RULES, clock=clock)) as client:
            await setup_pool(client, ["alice", "bob"])
            d = await post_one(client, lead(1))
            r = await _post(client, d["lead_id"], "close", {"reason": "won"})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["status"] == "closed"
            assert body["owner"] == d["owner"]  # who had it when it closed
            assert body["sla"]["status"] == "cancelled"
            assert body["sla"]["resolution"] == "closed"
            assert await open_counts(client) == {}
            await assert_routing_consistent(client)
            clock.advance(hours=2)
            assert await fire(client) == 0
            again = await _post(client, d["lead_id"], "close")
            assert again.status_code == 200
            assert again.json() == body
            _problem(
                await _post(client, d["lead_id"], "accept", {"owner_id": d["owner"]}),
                409,
                "workflow-conflict",
            )
            _problem(await _post(client, d["lead_id"], "reassign"), 409, "workflow-conflict")
            view = await get_lead(client, d["lead_id"])
            assert view["status"] == "closed"
            assert kinds(view) == ["lead.closed"]
            assert steps(view)[0]["reason"] == "won"
            assert [a["status"] for a in view["workflow"]["assignments"]] == ["closed"]

    async def test_closing_an_accepted_lead_frees_a_slot_for_the_next_lead(
        self, make_app: Any, clock: FakeClock
    ) -> None:
        async with authed(make_app(RULES, clock=clock)) as client:
            r = await client.put("/v1/owners/solo", json={"name": "Solo", "capacity": {"max_open": 1}})
            assert r.status_code == 200, r.text
            r = await client.put("/v1/pools/sales", json={"members": ["solo"]})
            assert r.status_code == 200, r.text
            first = await post_one(client, lead(1))
            assert first["owner"] == "solo"
            assert (await post_one(client, lead(2)))["owner"] is None  # solo is full
            r = await _post(client, first["lead_id"], "accept", {"owner_id": "solo"})
            assert r.status_code == 200, r.text
            r = await _post(client, first["lead_id"], "close")
            assert r.status_code == 200, r.text
            assert (await post_one(client, lead(3)))["owner"] == "solo"
            await assert_routing_consistent(client)


class TestHistory:
    async def test_the_lead_shows_every_step_in_order(self, make_app: Any, clock: FakeClock) -> None:
        async with authed(make_app(sla_rules(10), clock=clock)) as client:
            await setup_pool(client, ["alice", "bob", "carol"])
            d = await post_one(client, lead(1))
            clock.advance(minutes=11)
            assert await fire(client) == 1
            second = (await get_lead(client, d["lead_id"]))["owner"]
            clock.advance(minutes=3)
            r = await _post(client, d["lead_id"], "accept", {"owner_id": second})
            assert r.status_code == 200, r.text
            clock.advance(minutes=30)
            r = await _post(client, d["lead_id"], "close", {"reason": "lost"})
            assert r.status_code == 200, r.text
            view = await get_lead(client, d["lead_id"])
            assert view["status"] == "closed"
            wf = view["workflow"]
            assert kinds(view) == [
                "lead.sla_breached",
                "lead.reassigned",
                "lead.accepted",
                "lead.closed",
            ]
            times = [s["at"] for s in steps(view)]
            assert times == sorted(times)
            assert [(a["owner"], a["status"]) for a in wf["assignments"]] == [
                (d["owner"], "assigned"),
                (second, "closed"),
            ]
            assert wf["assignments"][1]["accepted_at"] == "2026-11-23T15:14:00Z"
            assert [(t["owner"], t["status"], t["resolution"]) for t in wf["timers"]] == [
                (d["owner"], "fired", "breached"),
                (second, "cancelled", "accepted"),
            ]
            # the combined history has the workflow events in order too
            types = [h["type"] for h in view["history"]]
            assert (
                types.index("lead.sla_breached") < types.index("lead.accepted") < types.index("lead.closed")
            )
