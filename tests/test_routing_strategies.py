"""Strategies, capacity, catch-up and account owners, end to end over HTTP on PostgreSQL and Redis."""

from __future__ import annotations

import collections
from typing import Any

from conftest import FakeClock
from leadroute.config import Settings
from support import (
    ACCOUNT_RULES,
    POOL_RULES,
    authed,
    explain,
    fetch,
    lead,
    open_per_owner,
    owner,
    owners_of,
    pool,
    post_leads,
    post_one,
)


class TestWeighted:
    """Smooth weighted round robin: exact shares, spread out, atomic under concurrency."""

    async def test_3_2_1_over_600_concurrent_leads(self, make_app: Any) -> None:
        async with authed(make_app(POOL_RULES)) as client:
            for ident, weight in (("ann", 3), ("ben", 2), ("cat", 1)):
                await owner(client, ident, weight=weight)
            await pool(client, "sales", ["ann", "ben", "cat"], strategy="weighted")
            decisions = await post_leads(client, [lead(i) for i in range(600)])
        counts = owners_of(decisions)
        assert abs(counts["ann"] - 300) <= 1
        assert abs(counts["ben"] - 200) <= 1
        assert abs(counts["cat"] - 100) <= 1

    async def test_every_window_of_sum_weights_is_within_one_of_the_weights(self, make_app: Any) -> None:
        async with authed(make_app(POOL_RULES)) as client:
            for ident, weight in (("ann", 3), ("ben", 2), ("cat", 1)):
                await owner(client, ident, weight=weight)
            await pool(client, "sales", ["ann", "ben", "cat"], strategy="weighted")
            sequence = [(await post_one(client, lead(i)))["owner"] for i in range(36)]
        weights = {"ann": 3, "ben": 2, "cat": 1}
        for start in range(len(sequence) - 6 + 1):
            window = collections.Counter(sequence[start : start + 6])
            for who, weight in weights.items():
                assert abs(window[who] - weight) <= 1, (start, sequence)
        assert sequence[:6].count("ann") == 3  # smooth: not ann, ann, ann in a row
        assert "ann ann ann" not in " ".join(sequence)


class TestCapacity:
    """Capacity is claimed atomically: never exceeded, the overflow goes to the fallback."""

    async def test_capacity_5_on_6_owners_with_40_leads(self, make_app: Any, settings: Settings) -> None:
        async with authed(make_app(POOL_RULES)) as client:
            names = [f"rep{i}" for i in range(6)]
            for ident in names:
                await owner(client, ident, capacity={"max_open": 5})
            await pool(client, "sales", names, fallback="overflow")
            decisions = await post_leads(client, [lead(i) for i in range(40)])
            state = (await client.get("/v1/routing/state")).json()
        assigned = [d for d in decisions if d["status"] == "assigned"]
        queued = [d for d in decisions if d["status"] == "unassigned"]
        assert len(assigned) == 30
        assert len(queued) == 10
        assert all("no eligible owner" in d["reason"] for d in queued)
        assert owners_of(assigned) == dict.fromkeys(names, 5)
        assert await open_per_owner(settings) == dict.fromkeys(names, 5)
        assert state["open"] == dict.fromkeys(names, 5)
        rows = await fetch(
            settings, "SELECT queue, count(*) AS n FROM assignments WHERE owner_id IS NULL GROUP BY 1"
        )
        assert [(r["queue"], r["n"]) for r in rows] == [("overflow", 10)]

    async def test_daily_cap_counts_the_owners_own_day(self, make_app: Any, clock: FakeClock) -> None:
        # 15:00 UTC Monday is 00:00 Tuesday in Tokyo: each owner's day turns over at their own midnight.
        async with authed(make_app(POOL_RULES, clock=clock)) as client:
            await owner(client, "kenji", timezone="Asia/Tokyo", capacity={"max_per_day": 1})
            await owner(client, "zoe", capacity={"max_per_day": 1})
            await pool(client, "sales", ["kenji", "zoe"], strategy="least_loaded")
            first = [await post_one(client, lead(i)) for i in range(3)]
            assert [d["owner"] for d in first] == ["kenji", "zoe", None]
            why = await explain(client, first[2]["lead_id"])
            assert {(s["owner"], s["reason"]) for s in why["assignment"]["owners_skipped"]} == {
                ("kenji", "daily_cap"),
                ("zoe", "daily_cap"),
            }
            clock.advance(hours=9)  # 00:00 UTC Tuesday: a new day for zoe, still Tuesday in Tokyo
            assert (await post_one(client, lead(3)))["owner"] == "zoe"
            assert (await post_one(client, lead(4)))["owner"] is None
            clock.advance(hours=15)  # 15:00 UTC Tuesday: Wednesday 00:00 in Tokyo
            assert (await post_one(client, lead(5)))["owner"] == "kenji"


class TestRoundRobin:
    async def test_removing_the_cursors_owner_keeps_the_rotation_going(self, make_app: Any) -> None:
        async with authed(make_app(POOL_RULES)) as client:
            names = ["r0", "r1", "r2", "r3"]
            for ident in names:
                await owner(client, ident)
            await pool(client, "sales", names)
            first = [(await post_one(client, lead(i)))["owner"] for i in range(2)]
            assert first == ["r0", "r1"]
            await pool(client, "sales", ["r0", "r2", "r3"])  # r1, who has the cursor, leaves
            then = [(await post_one(client, lead(i)))["owner"] for i in range(2, 6)]
        assert then == ["r2", "r3", "r0", "r2"]


class TestLeastLoaded:
    async def test_fewest_open_then_longest_since_last(self, make_app: Any) -> None:
        async with authed(make_app(POOL_RULES)) as client:
            for ident in ("ann", "ben", "cat"):
                await owner(client, ident)
            await pool(client, "sales", ["ann", "ben", "cat"], strategy="least_loaded")
            got = [(await post_one(client, lead(i)))["owner"] for i in range(6)]
        assert got == ["ann", "ben", "cat", "ann", "ben", "cat"]


class TestCatchUp:
    """The documented policy: nobody is owed leads for time away (see docs/routing.md)."""

    async def test_round_robin_skips_an_absent_rep_and_does_not_compensate(
        self, make_app: Any, clock: FakeClock
    ) -> None:
        async with authed(make_app(POOL_RULES, clock=clock)) as client:
            for ident in ("ann", "ben", "cat"):
                await owner(client, ident)
            await pool(client, "sales", ["ann", "ben", "cat"])
            r = await client.put(
                "/v1/owners/ben/out-of-office",
                json={"out_of_office": [{"from": "2026-11-23", "to": "2026-11-23"}]},
            )
            assert r.status_code == 200, r.text
            away = [(await post_one(client, lead(i)))["owner"] for i in range(6)]
            assert away == ["ann", "cat"] * 3
            clock.advance(days=1)  # ben is back
            back = [(await post_one(client, lead(10 + i)))["owner"] for i in range(6)]
        assert back == ["ann", "ben", "cat"] * 2

    async def test_weighted_does_not_flood_a_returning_rep(self, make_app: Any) -> None:
        async with authed(make_app(POOL_RULES)) as client:
            for ident in ("ann", "ben"):
                await owner(client, ident, weight=1)
            await pool(client, "sales", ["ann", "ben"], strategy="weighted")
            await client.patch("/v1/owners/ben", json={"active": False})
            assert {(await post_one(client, lead(i)))["owner"] for i in range(10)} == {"ann"}
            await client.patch("/v1/owners/ben", json={"active": True})
            back = [(await post_one(client, lead(20 + i)))["owner"] for i in range(10)]
        assert collections.Counter(back) == {"ann": 5, "ben": 5}

    async def test_least_loaded_lets_a_returning_rep_level_up_within_capacity(self, make_app: Any) -> None:
        async with authed(make_app(POOL_RULES)) as client:
            await owner(client, "ann")
            await owner(client, "ben", capacity={"max_open": 3})
            await pool(client, "sales", ["ann", "ben"], strategy="least_loaded")
            await client.patch("/v1/owners/ben", json={"active": False})
            assert {(await post_one(client, lead(i)))["owner"] for i in range(6)} == {"ann"}
            await client.patch("/v1/owners/ben", json={"active": True})
            back = [(await post_one(client, lead(20 + i)))["owner"] for i in range(5)]
        # ben has fewer open leads, so he gets the next ones -- until his capacity (3) stops him.
        assert back == ["ben", "ben", "ben", "ann", "ann"]


class TestAccountOwner:
    async def test_second_lead_of_a_domain_goes_to_the_first_leads_owner(self, make_app: Any) -> None:
        async with authed(make_app(ACCOUNT_RULES)) as client:
            for ident in ("ann", "ben", "cat"):
                await owner(client, ident)
            await pool(client, "sales", ["ann", "ben", "cat"])
            first = await post_one(client, lead(1, "acme.example"))
            others = [await post_one(client, lead(2 + i)) for i in range(2)]  # move the rotation on
            second = await post_one(client, lead(9, "acme.example"))
            assert second["owner"] == first["owner"]
            assert {first["owner"], *(d["owner"] for d in others)} == {"ann", "ben", "cat"}
            assert first["routing_rule"] == "everyone"
            assert second["routing_rule"] == "existing-account"
            why = await explain(client, second["lead_id"])
            assert why["assignment"]["strategy"] == "account_owner"
            assert why["assignment"]["rule"] == "existing-account"
            assert why["assignment"]["account"] == []
            first_why = await explain(client, first["lead_id"])  # why the first one went by rotation
            assert first_why["assignment"]["account"] == [
                {"rule": "existing-account", "why": "acme.example has no account owner yet", "owner": None}
            ]
            assert (
                "Account owner rule 'existing-account': acme.example has no account owner yet. "
                in (first_why["summary"])
            )
            free = await post_one(client, {"email": "someone@gmail.com", "title": "VP Sales"})
            free_why = await explain(client, free["lead_id"])
            assert free_why["assignment"]["account"] == [
                {
                    "rule": "existing-account",
                    "why": "the lead has no company domain (a free-mail address and no website)",
                    "owner": None,
                }
            ]

    async def test_owner_out_of_office_falls_through_to_the_next_rule(
        self, make_app: Any, clock: FakeClock, settings: Settings
    ) -> None:
        async with authed(make_app(ACCOUNT_RULES, clock=clock)) as client:
            for ident in ("ann", "ben"):
                await owner(client, ident)
            await pool(client, "sales", ["ann", "ben"])
            first = await post_one(client, lead(1, "acme.example"))
            holder = first["owner"]
            r = await client.put(
                f"/v1/owners/{holder}/out-of-office",
                json={
                    "out_of_office": [
                        {"from": "2026-11-23T00:00:00+00:00", "to": "2026-11-24T00:00:00+00:00"}
                    ]
                },
            )
            assert r.status_code == 200, r.text
            second = await post_one(client, lead(2, "acme.example"))
            assert second["owner"] not in {None, holder}
            assert second["routing_rule"] == "everyone"
            why = await explain(client, second["lead_id"])
            assert {"owner": holder, "reason": "out_of_office", "pool": None} in why["assignment"][
                "owners_skipped"
            ]
            assert why["assignment"]["account"] == [
                {
                    "rule": "existing-account",
                    "why": "acme.example's owner is skipped (out_of_office)",
                    "owner": holder,
                }
            ]
            clock.advance(days=1)  # back: the account is still theirs
            third = await post_one(client, lead(3, "acme.example"))
            assert third["owner"] == holder
        rows = await fetch(settings, "SELECT company_domain, owner_id FROM account_owners")
        assert [(r["company_domain"], r["owner_id"]) for r in rows] == [("acme.example", holder)]

    async def test_an_ineligible_account_owner_in_the_pool_is_explained_once(self, make_app: Any) -> None:
        # bob owns the account and is in the pool: skipped by the account-owner rule and again in
        # the pool. The summary used to say "skipped bob (inactive), bob (inactive)".
        async with authed(make_app(ACCOUNT_RULES)) as client:
            for ident in ("ann", "bob"):
                await owner(client, ident)
            await pool(client, "sales", ["bob"])
            first = await post_one(client, lead(1, "acme.example"))
            assert first["owner"] == "bob"
            await pool(client, "sales", ["ann", "bob"])
            await client.patch("/v1/owners/bob", json={"active": False})
            second = await post_one(client, lead(2, "acme.example"))
            why = await explain(client, second["lead_id"])
        assert second["owner"] == "ann"
        assert why["assignment"]["owners_skipped"] == [  # the record keeps both places
            {"owner": "bob", "reason": "inactive", "pool": None},
            {"owner": "bob", "reason": "inactive", "pool": "sales"},
        ]
        assert (
            "skipped bob (inactive, as the account owner and in pool 'sales');"
            " assigned to ann by round robin in pool 'sales'."
        ) in why["summary"]
        assert why["summary"].count("bob") == 1

    async def test_a_deactivated_account_owner_hands_the_account_over(self, make_app: Any) -> None:
        async with authed(make_app(ACCOUNT_RULES)) as client:
            for ident in ("ann", "ben"):
                await owner(client, ident)
            await pool(client, "sales", ["ann", "ben"])
            first = await post_one(client, lead(1, "acme.example"))
            await client.patch(f"/v1/owners/{first['owner']}", json={"active": False})
            second = await post_one(client, lead(2, "acme.example"))
            await client.patch(f"/v1/owners/{first['owner']}", json={"active": True})
            third = await post_one(client, lead(3, "acme.example"))
        assert second["owner"] != first["owner"]
        assert third["owner"] == second["owner"]
