"""End to end through HTTP, on real PostgreSQL and Redis: intake, idempotency, routing, explain."""

from __future__ import annotations

import asyncio
import collections
from typing import Any, ClassVar

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from leadroute.config import Settings
from leadroute.workflow.summary import routing_summary, skipped_owners
from support import authed, count, lead, setup_pool

SIMPLE_RULES = """
version: 3
description: one pool, two stages
scoring:
  groups:
    fit: {max: 100}
  rules:
    - {id: senior, group: fit, when: 'title =~~ "(?i)\\\\bvp\\\\b"', points: 60}
    - {id: big, group: fit, when: 'employees >= 1000', points: 30}
    - {id: free-mail, group: fit, when: is_free_email, points: -20}
qualification:
  - {id: hot, stage: sql, when: 'score >= 80'}
  - {id: warm, stage: mql, when: 'score >= 40'}
  - {id: rest, stage: lead}
routing:
  rules:
    - {id: everyone, when: 'true', pool: sales}
  fallback: unassigned
"""


def big_lead(n: int, **fields: Any) -> dict[str, Any]:
    """Lead ``n`` from a large company (5000 employees), one of seven: ``acme-<n % 7>.example``."""
    return lead(n, f"acme-{n % 7}.example", employees=5000, **fields)


class TestIntake:
    """A lead posted over HTTP comes back scored, qualified, routed, and is recorded."""

    async def test_lead_is_scored_qualified_routed_persisted_and_explained(
        self, make_app: Any, settings: Settings
    ) -> None:
        async with authed(make_app(SIMPLE_RULES)) as client:
            await setup_pool(client, ["alice"])
            r = await client.post("/v1/leads", json=big_lead(1, phone="+1 415 555 2671", country="US"))
            assert r.status_code == 201, r.text
            d = r.json()
            assert d["score"] == 90
            assert d["groups"] == {"fit": 90}
            assert d["stage"] == "sql"
            assert d["pool"] == "sales"
            assert d["owner"] == "alice"
            assert d["status"] == "assigned"
            assert d["ruleset_version"] == 3
            assert len(d["ruleset_sha256"]) == 64
            assert {m["rule"] for m in d["matched"]} == {"senior", "big"}

            got = (await client.get(f"/v1/leads/{d['lead_id']}")).json()
            assert got["owner"] == "alice"
            assert got["stage"] == "sql"
            assert got["lead"]["phone_e164"] == "+14155552671"
            assert got["lead"]["email_domain"] == "acme-1.example"
            assert [h["type"] for h in got["history"]] == ["lead.received", "lead.scored", "lead.assigned"]

            why = (await client.get(f"/v1/leads/{d['lead_id']}/explain")).json()
            assert {(s["rule"], s["points"]) for s in why["scoring"]} == {("senior", 60), ("big", 30)}
            assert why["qualification"] == {"rule": "hot", "stage": "sql"}
            assert why["routing"]["rule"] == "everyone"
            assert why["ruleset"] == {"version": 3, "sha256": d["ruleset_sha256"]}
            assert "assigned to alice by round robin in pool 'sales'" in why["summary"]

        for table in ("leads", "decisions", "assignments"):
            assert await count(settings, f"SELECT count(*) FROM {table}") == 1
        # its log: received, scored, assigned
        assert await count(settings, "SELECT count(*) FROM lead_events") == 3

    async def test_unknown_fields_are_kept_as_attributes(self, make_app: Any) -> None:
        async with authed(make_app(SIMPLE_RULES)) as client:
            await setup_pool(client, ["alice"])
            r = await client.post("/v1/leads", json=big_lead(2, favourite_colour="teal"))
            got = (await client.get(f"/v1/leads/{r.json()['lead_id']}")).json()
            assert got["lead"]["attributes"] == {"favourite_colour": "teal"}

    async def test_default_ruleset_routes_the_demo_lead(self, client: AsyncTestClient[Litestar]) -> None:
        for pool in ("enterprise-na", "emea", "inbound"):
            await setup_pool(client, [f"{pool}-rep"], pool=pool)
        r = await client.post(
            "/v1/leads",
            json={"email": "jane@acme.example", "title": "VP Sales", "employees": 5000, "country": "US"},
        )
        assert r.status_code == 201, r.text
        assert r.json()["owner"] is not None


class TestIdempotency:
    """Retries with the same key return the first decision and change nothing."""

    async def test_retry_with_header_returns_the_original_decision(
        self, make_app: Any, settings: Settings
    ) -> None:
        async with authed(make_app(SIMPLE_RULES)) as client:
            await setup_pool(client, ["alice", "bob"])
            first = await client.post("/v1/leads", json=big_lead(1), headers={"Idempotency-Key": "k-1"})
            again = await client.post("/v1/leads", json=big_lead(1), headers={"Idempotency-Key": "k-1"})
            assert (first.status_code, again.status_code) == (201, 200)
            assert again.json() == first.json()
        assert await count(settings, "SELECT count(*) FROM leads") == 1
        assert await count(settings, "SELECT count(*) FROM assignments") == 1

    async def test_event_id_is_an_idempotency_key_and_key_order_does_not_matter(self, make_app: Any) -> None:
        async with authed(make_app(SIMPLE_RULES)) as client:
            await setup_pool(client, ["alice"])
            body = big_lead(1, event_id="evt-9")
            first = await client.post("/v1/leads", json=body)
            again = await client.post("/v1/leads", json=dict(reversed(list(body.items()))))
            assert (first.status_code, again.status_code) == (201, 200)
            assert again.json()["lead_id"] == first.json()["lead_id"]

    async def test_same_key_different_body_is_422(self, make_app: Any) -> None:
        async with authed(make_app(SIMPLE_RULES)) as client:
            await setup_pool(client, ["alice"])
            await client.post("/v1/leads", json=big_lead(1), headers={"Idempotency-Key": "k-2"})
            r = await client.post("/v1/leads", json=big_lead(2), headers={"Idempotency-Key": "k-2"})
            assert r.status_code == 422
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["errors"][0]["field"] == "Idempotency-Key"

    async def test_fifty_concurrent_identical_requests_make_one_lead(
        self, make_app: Any, settings: Settings
    ) -> None:
        async with authed(make_app(SIMPLE_RULES)) as client:
            await setup_pool(client, ["alice", "bob", "carol"])
            responses = await asyncio.gather(
                *(
                    client.post("/v1/leads", json=big_lead(7), headers={"Idempotency-Key": "same"})
                    for _ in range(50)
                )
            )
        statuses = collections.Counter(r.status_code for r in responses)
        assert statuses == {201: 1, 200: 49}
        assert len({r.json()["lead_id"] for r in responses}) == 1
        assert len({r.json()["owner"] for r in responses}) == 1
        assert await count(settings, "SELECT count(*) FROM leads") == 1
        assert await count(settings, "SELECT count(*) FROM assignments") == 1


class TestRoundRobin:
    """Round robin is exact under concurrency, across app instances, and skips inactive owners."""

    async def test_300_concurrent_leads_over_3_owners_give_100_each(self, make_app: Any) -> None:
        async with authed(make_app(SIMPLE_RULES)) as client:
            await setup_pool(client, ["alice", "bob", "carol"])
            responses = await asyncio.gather(
                *(client.post("/v1/leads", json=big_lead(i)) for i in range(300))
            )
        assert all(r.status_code == 201 for r in responses)
        assert collections.Counter(r.json()["owner"] for r in responses) == {
            "alice": 100,
            "bob": 100,
            "carol": 100,
        }

    async def test_two_app_instances_sharing_redis_split_evenly(self, make_app: Any) -> None:
        async with (
            authed(make_app(SIMPLE_RULES)) as one,
            authed(make_app(SIMPLE_RULES)) as two,
        ):
            await setup_pool(one, ["alice", "bob", "carol"])
            responses = await asyncio.gather(
                *((one if i % 2 else two).post("/v1/leads", json=big_lead(i)) for i in range(300))
            )
        counts = collections.Counter(r.json()["owner"] for r in responses)
        assert sorted(counts) == ["alice", "bob", "carol"]
        assert max(counts.values()) - min(counts.values()) <= 1

    async def test_inactive_owner_is_skipped_and_explained(self, make_app: Any) -> None:
        async with authed(make_app(SIMPLE_RULES)) as client:
            await setup_pool(client, ["alice", "bob", "carol"], inactive={"bob"})
            owners = [(await client.post("/v1/leads", json=big_lead(i))).json() for i in range(4)]
            assert [d["owner"] for d in owners] == ["alice", "carol", "alice", "carol"]
            why = (await client.get(f"/v1/leads/{owners[0]['lead_id']}/explain")).json()
            skipped = why["assignment"]["owners_skipped"]
            assert {"owner": "bob", "reason": "inactive", "pool": "sales"} in skipped
            assert "bob (inactive)" in why["summary"]

    async def test_deactivating_an_owner_takes_them_out_of_rotation(self, make_app: Any) -> None:
        async with authed(make_app(SIMPLE_RULES)) as client:
            await setup_pool(client, ["alice", "bob"])
            r = await client.patch("/v1/owners/bob", json={"active": False})
            assert r.json()["active"] is False
            owners = {(await client.post("/v1/leads", json=big_lead(i))).json()["owner"] for i in range(4)}
            assert owners == {"alice"}


class TestFallback:
    """No eligible owner: the lead goes to the fallback queue with the reason, never dropped."""

    async def test_empty_pool_goes_to_fallback_with_reason(self, make_app: Any, settings: Settings) -> None:
        async with authed(make_app(SIMPLE_RULES)) as client:
            r = await client.put("/v1/pools/sales", json={"members": []})
            assert r.status_code == 200
            d = (await client.post("/v1/leads", json=big_lead(1))).json()
            assert d["status"] == "unassigned"
            assert d["owner"] is None
            assert "no members" in d["reason"]
            why = (await client.get(f"/v1/leads/{d['lead_id']}/explain")).json()
            assert why["assignment"]["queue"] == "unassigned"
        assert await count(settings, "SELECT count(*) FROM assignments WHERE queue = 'unassigned'") == 1

    async def test_all_inactive_falls_through_to_the_pools_fallback_pool(self, make_app: Any) -> None:
        async with authed(make_app(SIMPLE_RULES)) as client:
            await setup_pool(client, ["zoe"], pool="backup")
            await setup_pool(client, ["alice"], inactive={"alice"}, fallback="backup")
            d = (await client.post("/v1/leads", json=big_lead(1))).json()
            assert (d["owner"], d["pool"]) == ("zoe", "backup")

    async def test_missing_pool_is_recorded_as_the_reason(self, make_app: Any) -> None:
        async with authed(make_app(SIMPLE_RULES)) as client:
            d = (await client.post("/v1/leads", json=big_lead(1))).json()
            assert d["status"] == "unassigned"
            assert "pool 'sales' does not exist" in d["reason"]


class TestSkippedInTheSummary:
    """``explain``'s summary names each skipped owner once, saying where when it matters."""

    @pytest.mark.parametrize(
        ("skipped", "text"),
        [
            (
                [("bob", "inactive", "sales"), ("cat", "off_hours", "sales")],
                "bob (inactive), cat (off_hours)",
            ),
            ([("bob", "out_of_office", None)], "bob (out_of_office, as the account owner)"),
            (
                [("bob", "inactive", None), ("bob", "inactive", "sales")],
                "bob (inactive, as the account owner and in pool 'sales')",
            ),
            (
                [
                    ("bob", "off_hours", None),
                    ("ann", "daily_cap", "sales"),
                    ("bob", "over_capacity", "sales"),
                ],
                "bob (off_hours as the account owner, over_capacity in pool 'sales'), ann (daily_cap)",
            ),
            (  # a pool and its fallback pool share a member
                [("cat", "off_hours", "a"), ("cat", "off_hours", "b"), ("cat", "off_hours", "c")],
                "cat (off_hours, in pools 'a', 'b' and 'c')",
            ),
        ],
    )
    def test_each_owner_once(self, skipped: list[tuple[str, str, str | None]], text: str) -> None:
        rows = [{"owner": o, "reason": r, "pool": p} for o, r, p in skipped]
        assert skipped_owners(rows) == text


class TestSummary:
    """The summary is one readable sentence: each fact once."""

    @staticmethod
    def summarize(stage: str, score: float, why: dict[str, Any]) -> str:
        """Explain's summary of a decision: the scoring sentence, then how routing placed it."""
        return f"Scored {score:g} and qualified as {stage} by rule {why['qualification']['rule']!r}. " + (
            routing_summary(why["routing"], why["assignment"])
        )

    WHY: ClassVar[dict[str, Any]] = {
        "qualification": {"rule": "lead", "stage": "lead"},
        "routing": {"rule": None, "pool": None},
    }

    def test_a_lead_no_rule_routes_says_so_once(self) -> None:
        placed: dict[str, Any] = {
            "owner": None,
            "owners_skipped": [],
            "queue": "unassigned",
            "reason": "no routing rule matched",
        }
        text = self.summarize("lead", 5, self.WHY | {"assignment": placed})
        assert text == (
            "Scored 5 and qualified as lead by rule 'lead'. "
            "No routing rule matched; left in queue 'unassigned'."
        )

    def test_why_the_account_owner_rule_did_not_apply(self) -> None:
        placed = {
            "owner": "ann",
            "pool": "sales",
            "strategy": "round_robin",
            "owners_skipped": [],
            "account": [
                {"rule": "existing-account", "why": "acme.example has no account owner yet", "owner": None}
            ],
        }
        why = self.WHY | {"routing": {"rule": "everyone", "pool": "sales"}, "assignment": placed}
        assert self.summarize("lead", 5, why) == (
            "Scored 5 and qualified as lead by rule 'lead'. Account owner rule 'existing-account': "
            "acme.example has no account owner yet. Routing rule 'everyone' chose pool 'sales'; "
            "assigned to ann by round robin in pool 'sales'."
        )
