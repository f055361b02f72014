"""``POST /v1/simulate``: one lead's full decision and explanation, with nothing written or claimed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from leadroute.config import Settings
from support import authed, connection, redis_state, setup_pool

ROOT = Path(__file__).resolve().parent.parent
INBOUND = (ROOT / "rules" / "inbound.yaml").read_text(encoding="utf-8")
VERSION = int(re.search(r"^version: (\d+)$", INBOUND, re.MULTILINE)[1])  # type: ignore[index]
"""The shipped ruleset's version: the one the ``client`` fixture's app records and activates."""
VP = {"email": "jane@acme.example", "title": "VP Sales", "employees": 5000, "country": "US", "form": "demo"}
TABLES = ("leads", "lead_events", "decisions", "assignments", "idempotency_keys")


async def row_counts(settings: Settings) -> list[int]:
    async with connection(settings) as conn:
        return [await conn.fetchval(f"SELECT count(*) FROM {t}") for t in TABLES]


async def simulate(client: AsyncTestClient[Litestar], body: dict[str, Any]) -> Any:
    return await client.post("/v1/simulate", json=body)


class TestDecision:
    """The answer holds the whole decision, the explanation and where routing would look."""

    async def test_active_ruleset(self, client: AsyncTestClient[Litestar], settings: Settings) -> None:
        await setup_pool(client, ["alice", "bob"], pool="enterprise-na", inactive={"bob"}, fallback="inbound")
        await setup_pool(client, ["carol"], pool="inbound", fallback="unassigned")
        r = await simulate(client, {"lead": VP})
        assert r.status_code == 200, r.text
        d = r.json()
        assert d["dry_run"] is True
        assert d["ruleset"]["version"] == VERSION
        assert d["ruleset"]["source"] == "active"
        assert d["stage"] == "sql"
        assert d["lead"]["email_domain"] == "acme.example"  # what the rules saw
        assert d["pool"] == "enterprise-na"
        assert d["routing_rule"] == "enterprise-na"
        assert d["score"] == sum(d["groups"].values())
        assert {"title-vp-director", "employees-1000-plus", "demo-request"} <= {
            m["rule"] for m in d["matched"]
        }
        target = d["targets"][-1]
        assert target["kind"] == "pool"
        assert target["pool"] == "enterprise-na"
        chain = target["pools"]
        assert chain[0]["id"] == "enterprise-na"
        assert chain[0]["exists"] is True
        assert chain[0]["members"] == [
            {"id": "alice", "available": True, "reason": None},
            {"id": "bob", "available": False, "reason": "inactive"},
        ]
        assert chain[1]["id"] == "inbound"  # the pool's fallback, followed
        assert chain[2] == {"queue": "unassigned"}
        why = d["explanation"]
        assert why["qualification"] == {"rule": "sql", "stage": "sql"}
        assert {"rule": "enterprise-na", "matched": True, "error": None} in why["routing"]["tried"]
        assert "pool 'enterprise-na' (available now: alice)" in d["summary"]

    async def test_missing_pool_and_no_route(self, client: AsyncTestClient[Litestar]) -> None:
        d = (await simulate(client, {"lead": {"email": "kenji@tokyo.example", "country": "JP"}})).json()
        assert d["pool"] == "inbound"
        assert d["targets"][-1]["pools"] == [{"id": "inbound", "exists": False}]
        assert "which does not exist" in d["summary"]

    async def test_no_routing_rules_say_the_queue(self, client: AsyncTestClient[Litestar]) -> None:
        rules = INBOUND.split("\nrouting:")[0] + "\nrouting: {rules: [], fallback: unassigned}\n"
        d = (await simulate(client, {"lead": VP, "ruleset": rules})).json()
        assert (d["pool"], d["targets"], d["explanation"]["routing"]["fallback"]) == (None, [], "unassigned")
        assert d["summary"].endswith(
            "No routing rule matches: the lead would wait in queue 'unassigned'. "
            "Nothing was written or claimed."
        )

    async def test_writes_nothing_and_claims_no_owner(
        self, client: AsyncTestClient[Litestar], settings: Settings
    ) -> None:
        await setup_pool(client, ["alice", "bob"], pool="enterprise-na", fallback="unassigned")
        counts, state = await row_counts(settings), await redis_state(settings)
        for _ in range(3):
            assert (await simulate(client, {"lead": VP})).status_code == 200
        assert await row_counts(settings) == counts
        assert await redis_state(settings) == state
        # Round robin starts where it would have: simulations did not move the cursor.
        first = (await client.post("/v1/leads", json=VP)).json()["owner"]
        second = (await client.post("/v1/leads", json=VP | {"email": "jo@initech.example"})).json()["owner"]
        assert {first, second} == {"alice", "bob"}


ACCOUNT_RULES = """
version: 4
scoring:
  groups:
    fit: {max: 100}
  rules:
    - {id: big, group: fit, when: '(employees ?? 0) >= 1000', points: 50}
qualification:
  - {id: rest, stage: lead}
routing:
  rules:
    - {id: existing-account, when: 'true', route: account_owner}
    - {id: everyone, when: 'true', pool: sales}
  fallback: unassigned
"""


class TestAccountOwner:
    """An account-owner target names the company's recorded owner and whether they can take it."""

    async def test_recorded_owner(self, make_app: Any) -> None:
        async with authed(make_app(ACCOUNT_RULES)) as client:
            await setup_pool(client, ["alice"], fallback="unassigned")
            first = await simulate(client, {"lead": {"email": "a@acme.example"}})
            assert first.json()["targets"][0]["owner"] == {
                "id": None,
                "available": False,
                "reason": "no account owner recorded",
            }
            posted = await client.post("/v1/leads", json={"email": "a@acme.example"})
            assert posted.json()["owner"] == "alice"
            d = (await simulate(client, {"lead": {"email": "b@acme.example"}})).json()
            [account, pool] = d["targets"]
            assert account["kind"] == "account_owner"
            assert account["company_domain"] == "acme.example"
            assert account["owner"] == {"id": "alice", "available": True, "reason": None}
            assert pool["pool"] == "sales"
            assert "account owner alice (available)" in d["summary"]


class TestOtherRulesets:
    """An uploaded YAML body or a stored version decides instead of the active ruleset."""

    async def test_uploaded_ruleset(self, client: AsyncTestClient[Litestar]) -> None:
        lead = {"email": "li@maple.example", "title": "Analyst", "employees": 3000, "country": "CA"}
        active = (await simulate(client, {"lead": lead})).json()
        assert (active["stage"], active["pool"]) == ("lead", "inbound")
        candidate = INBOUND.replace(f"version: {VERSION}\n", "version: 999\n", 1).replace(
            "when: 'score >= 40'", "when: 'score >= 30'"
        )
        r = await simulate(client, {"lead": lead, "ruleset": candidate})
        assert r.status_code == 200, r.text
        d = r.json()
        assert (d["stage"], d["pool"]) == ("mql", "enterprise-na")
        assert d["ruleset"]["version"] == 999
        assert d["ruleset"]["source"] == "uploaded uploaded.yaml"

    async def test_stored_version(self, client: AsyncTestClient[Litestar]) -> None:
        r = await simulate(client, {"lead": VP, "ruleset_version": VERSION})
        assert r.status_code == 200, r.text
        assert r.json()["ruleset"]["source"] == f"stored version {VERSION}"
        assert r.json()["stage"] == "sql"


ACTIVITY_RULES = """
version: 5
fields:
  activity.url: STRING
scoring:
  groups:
    engagement: {max: 40, half_life_days: 14}
  rules:
    - {id: pricing-page, group: engagement, on_activity: page_view, when: 'url =~~ "/pricing"', points: 10}
qualification:
  - {id: warm, stage: mql, when: 'score >= 10'}
  - {id: rest, stage: lead}
routing:
  rules:
    - {id: everyone, when: 'true', pool: inbound}
  fallback: unassigned
"""


class TestActivities:
    """Activities in the body are scored with the lead, decayed to ``now``."""

    async def test_activity_points_decay_to_now(self, client: AsyncTestClient[Litestar]) -> None:
        body = {
            "lead": {"email": "li@maple.example"},
            "ruleset": ACTIVITY_RULES,
            "now": "2026-11-15T00:00:00Z",
            "activities": [
                {
                    "type": "page_view",
                    "occurred_at": "2026-11-01T00:00:00Z",
                    "properties": {"url": "/pricing"},
                },
                {"type": "page_view", "occurred_at": "2026-11-15T00:00:00Z", "properties": {"url": "/blog"}},
            ],
        }
        r = await simulate(client, body)
        assert r.status_code == 200, r.text
        d = r.json()
        assert d["score"] == 5  # 10 points, one half-life (14 days) old
        assert d["stage"] == "lead"
        assert d["as_of"] == "2026-11-15T00:00:00Z"
        [hit] = d["matched"]
        assert (hit["rule"], hit["activity"], hit["decay"]) == ("pricing-page", "page_view", 0.5)
        fresh = await simulate(client, body | {"now": "2026-11-01T00:00:00Z"})
        assert fresh.json()["score"] == 10
        assert fresh.json()["stage"] == "mql"


class TestStoredLead:
    """``lead_id`` simulates a stored lead with its stored activities: replay's examples, one by one."""

    async def test_stored_lead_and_activities(self, client: AsyncTestClient[Litestar]) -> None:
        posted = (await client.post("/v1/leads", json={"email": "li@maple.example"})).json()
        event = {
            "lead_id": posted["lead_id"],
            "type": "page_view",
            "occurred_at": "2026-11-01T00:00:00Z",
            "properties": {"url": "/pricing"},
        }
        assert (await client.post("/v1/events", json=event)).status_code in (200, 201)
        body = {"lead_id": posted["lead_id"], "ruleset": ACTIVITY_RULES, "now": "2026-11-15T00:00:00Z"}
        d = (await simulate(client, body)).json()
        assert d["lead"]["email"] == "li@maple.example"
        assert d["score"] == 5  # the stored page view, one half-life old
        more = [
            {"type": "page_view", "occurred_at": "2026-11-15T00:00:00Z", "properties": {"url": "/pricing"}}
        ]
        assert (await simulate(client, body | {"activities": more})).json()["score"] == 15

    async def test_unknown_lead_id(self, client: AsyncTestClient[Litestar]) -> None:
        r = await simulate(client, {"lead_id": "00000000-0000-0000-0000-000000000000"})
        assert r.status_code == 422
        assert r.json()["errors"] == [{"field": "lead_id", "message": "no stored lead has this id"}]
        r = await simulate(client, {"lead": VP, "lead_id": "00000000-0000-0000-0000-000000000000"})
        assert r.status_code == 422
        assert r.json()["errors"][0]["field"] == "lead"


class TestErrors:
    """Bad input is a 422 problem naming the lead field, body field, or rule and line."""

    async def test_invalid_lead_names_fields(self, client: AsyncTestClient[Litestar]) -> None:
        r = await simulate(client, {"lead": {"title": "VP", "employees": "many"}})
        assert r.status_code == 422
        fields = {e["field"] for e in r.json()["errors"]}
        assert {"lead.employees", "lead.email"} <= fields

    async def test_invalid_ruleset_names_rule_and_line(self, client: AsyncTestClient[Litestar]) -> None:
        broken = INBOUND.replace("points: 25\n", "points: lots\n", 1)
        r = await simulate(client, {"lead": VP, "ruleset": broken})
        assert r.status_code == 422
        problem = r.json()
        assert problem["type"].endswith("/invalid-ruleset")
        assert problem["errors"][0]["rule"] == "title-c-level"
        assert problem["errors"][0]["line"] == INBOUND[: INBOUND.index("points: 25\n")].count("\n") + 1

    async def test_unknown_version(self, client: AsyncTestClient[Litestar]) -> None:
        r = await simulate(client, {"lead": VP, "ruleset_version": 42})
        assert r.status_code == 422
        assert r.json()["errors"] == [
            {"field": "ruleset_version", "message": "no stored ruleset has version 42"}
        ]

    async def test_body_shape(self, client: AsyncTestClient[Litestar]) -> None:
        r = await simulate(client, {"lead": VP, "ruleset": "x", "ruleset_version": 1})
        assert r.status_code == 422
        assert r.json()["errors"][0]["field"] == "ruleset"
        r = await simulate(client, {"lead": VP, "activities": [{"type": "page_view"}]})
        assert r.status_code == 422
        assert r.json()["errors"][0]["field"] == "activities[0]"
        assert "occurred_at" in r.json()["errors"][0]["message"]
        r = await simulate(client, {"lead": VP, "unknown": 1})
        assert r.status_code == 422
        r = await simulate(client, {"email": "a@b.example"})
        assert r.status_code == 422
        r = await client.post("/v1/simulate", content=b"[1]")
        assert r.status_code == 400
