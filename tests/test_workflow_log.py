"""The lead's event log over HTTP: one story per lead, told by history and explain, the queue drain
that places waiting leads, and decay that requalifies leads as time passes."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from conftest import FakeClock
from leadroute.config import Settings
from leadroute.store.db import connect
from leadroute.store.migrate import available, migrate
from leadroute.workflow.drain import drain_queues
from leadroute.workflow.rescore import requalify_due
from process_support import Served
from sla_support import assert_routing_consistent, fire, in_app, instance, iso, sla_rules
from support import (
    ADMIN_ACTOR,
    AUTH,
    Client,
    authed,
    connection,
    explain,
    get_lead,
    lead,
    owner,
    pool,
    post_one,
)

STAGED = """
version: 1
description: engagement makes a lead MQL; only MQLs are routed, with an SLA
fields:
  activity.url: STRING
scoring:
  groups:
    engagement: {max: 100, half_life_days: 7}
  rules:
    - {id: pricing, group: engagement, on_activity: page_view, when: 'url == "/pricing"', points: 50}
qualification:
  - {id: hot, stage: mql, when: 'score >= 40'}
  - {id: rest, stage: lead}
routing:
  rules:
    - {id: mqls, when: 'stage == "mql"', pool: sales}
  fallback: unassigned
  sla: {accept_within_minutes: 30, on_breach: reassign}
"""


THREE_POOLS = """
version: 1
description: one pool per country
scoring:
  groups:
    fit: {max: 100}
  rules:
    - {id: senior, group: fit, when: 'title =~~ "(?i)vp"', points: 60}
qualification:
  - {id: rest, stage: lead}
routing:
  rules:
    - {id: us, when: 'country == "US"', pool: day-shift}
    - {id: fr, when: 'country == "FR"', pool: holiday}
    - {id: de, when: 'country == "DE"', pool: inactive}
  fallback: unassigned
"""


def types(view: dict[str, Any]) -> list[str]:
    return [h["type"] for h in view["history"]]


async def act(client: Client, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    r = await client.post(path, json=body or {})
    assert r.status_code in (200, 201), r.text
    result: dict[str, Any] = r.json()
    return result


async def drain(client: Client) -> int:
    async def run(rt: Any) -> int:
        return await drain_queues(rt, limit=50)

    return await in_app(client, run)


async def decay(client: Client) -> int:
    async def run(rt: Any) -> int:
        return await requalify_due(rt, limit=50)

    return await in_app(client, run)


class TestStory:
    """History and explain tell a lead's whole workflow from its event log."""

    async def test_intake_activity_breach_accept_close_are_all_told(
        self, make_app: Any, clock: FakeClock
    ) -> None:
        async with authed(make_app(STAGED, clock=clock)) as client:
            for ident in ("ann", "ben"):
                await owner(client, ident)
            await pool(client, "sales", ["ann", "ben"])
            posted = await post_one(client, lead(1))
            lead_id = posted["lead_id"]
            assert (posted["stage"], posted["owner"], posted["status"]) == ("lead", None, "unassigned")

            clock.advance(minutes=5)
            url = {"url": "/pricing"}
            body = {"lead_id": lead_id, "type": "page_view", "occurred_at": iso(clock.now), "properties": url}
            rose = await act(client, "/v1/events", body)
            assert (rose["stage"], rose["routed"]) == ("mql", True)
            first = rose["owner"]

            clock.advance(minutes=31)
            assert await fire(client) == 1
            view = await get_lead(client, lead_id)
            second = view["owner"]
            assert second not in (None, first)

            clock.advance(minutes=2)
            await act(client, f"/v1/assignments/{lead_id}/accept", {"owner_id": second})
            clock.advance(minutes=10)
            await act(client, f"/v1/assignments/{lead_id}/close", {"reason": "won"})

            view = await get_lead(client, lead_id)
            why = await explain(client, lead_id)
            await assert_routing_consistent(client)

        assert types(view) == [
            "lead.received",
            "lead.scored",
            "lead.queued",
            "activity.recorded",
            "lead.scored",
            "lead.assigned",
            "lead.sla_breached",
            "lead.reassigned",
            "lead.accepted",
            "lead.closed",
        ]
        history = view["history"]
        seqs = [h["seq"] for h in history]
        assert seqs == sorted(seqs)
        activity = history[3]["data"]
        assert activity["activity"] == "page_view"
        assert activity["properties"] == url
        assert [(p["rule"], p["points"]) for p in activity["points"]] == [("pricing", 50)]
        rescored = history[4]["data"]
        assert (rescored["cause"], rescored["previous_stage"], rescored["stage"]) == (
            "activity",
            "lead",
            "mql",
        )
        assert rescored["matched"] == ["pricing"]
        assigned = history[5]["data"]
        assert (assigned["cause"], assigned["owner"], assigned["pool"]) == ("stage_rose", first, "sales")
        reassigned = history[7]["data"]
        assert (reassigned["cause"], reassigned["previous_owner"], reassigned["owner"]) == (
            "sla_breach",
            first,
            second,
        )
        assert [h["actor"] for h in history[-2:]] == [
            ADMIN_ACTOR,
            ADMIN_ACTOR,
        ]  # the key that called; the owner is in the event

        assert (why["status"], why["owner"], why["stage"]) == ("closed", second, "mql")
        assert [m["type"] for m in why["moves"]] == [
            "lead.sla_breached",
            "lead.reassigned",
            "lead.accepted",
            "lead.closed",
        ]
        summary = why["summary"]
        assert f"assigned to {first} by round robin in pool 'sales'" in summary
        assert f"{first} did not accept within 30 minutes" in summary
        assert f"reassigned it to {second} in pool 'sales' (from {first})" in summary
        assert f"{second} accepted it" in summary
        assert summary.endswith(f"Now closed (last with {second}).")

    async def test_explain_names_where_the_lead_is_after_each_move(
        self, make_app: Any, clock: FakeClock
    ) -> None:
        async with authed(make_app(sla_rules(30), clock=clock)) as client:
            for ident in ("ann", "ben", "cid"):
                await owner(client, ident, capacity={"max_open": 1})
            await pool(client, "sales", ["ann", "ben", "cid"])
            placed = await post_one(client, lead(1))
            lead_id, first = placed["lead_id"], placed["owner"]
            why = await explain(client, lead_id)
            assert why["moves"] == []
            assert f"assigned to {first}" in why["summary"]

            clock.advance(minutes=31)  # the SLA runs out: the next owner of the pool takes it
            assert await fire(client) == 1
            why = await explain(client, lead_id)
            second = why["owner"]
            assert second not in (None, first)
            assert why["summary"].endswith(f"Now with {second} (reassigned).")

            # by hand, to nobody: the third owner is full, so the lead is queued and waits
            third = ({"ann", "ben", "cid"} - {first, second}).pop()
            other = await post_one(client, lead(2))
            assert other["owner"] == third
            await act(client, f"/v1/assignments/{lead_id}/reassign", {"reason": "on holiday"})
            why = await explain(client, lead_id)
            assert (why["status"], why["owner"], why["queue"]) == ("unassigned", None, "unassigned")
            assert why["moves"][-1]["type"] == "lead.queued"
            assert f"by {ADMIN_ACTOR} left it in queue 'unassigned'" in why["summary"]
            assert why["summary"].endswith(f"Now in queue 'unassigned': {why['reason']}.")

            # the third owner closes their lead: the queue drain places the waiting one with them
            await act(client, f"/v1/assignments/{other['lead_id']}/close")
            assert await drain(client) == 1
            why = await explain(client, lead_id)
            assert (why["status"], why["owner"]) == ("assigned", third)
            assert why["moves"][-1]["type"] == "lead.assigned"
            assert f"the queue drain assigned it to {third} in pool 'sales'" in why["summary"]
            assert why["summary"].endswith(f"Now with {third} (assigned).")
            await assert_routing_consistent(client)


class TestQueueDrain:
    """Queued leads are placed, oldest first and exactly once, when an owner of their pool can take them."""

    async def test_freed_capacity_takes_the_oldest_waiting_lead_once_across_two_instances(
        self, make_app: Any, settings: Settings, clock: FakeClock
    ) -> None:
        rules = sla_rules(30)
        async with authed(make_app(rules, clock=clock)) as client:
            await owner(client, "ann", capacity={"max_open": 2})
            await pool(client, "sales", ["ann"])
            held = [await post_one(client, lead(n)) for n in (1, 2)]
            waiting = []
            for n in (3, 4, 5):
                clock.advance(seconds=1)
                waiting.append(await post_one(client, lead(n)))
            assert [w["owner"] for w in waiting] == [None, None, None]
            assert await drain(client) == 0  # nothing freed: nothing placed, nothing written

            for h in held:
                await act(client, f"/v1/assignments/{h['lead_id']}/close")
            async with instance(settings, rules, clock) as other:
                placed = sum(await _both(drain(client), drain(other)))
            assert placed == 2
            owners = [(await get_lead(client, w["lead_id"]))["owner"] for w in waiting]
            assert owners == ["ann", "ann", None]  # the two oldest, once each
            async with connection(settings) as conn:
                drained = await conn.fetchval(
                    "SELECT count(*) FROM lead_events WHERE kind = 'lead.assigned'"
                    " AND payload ->> 'cause' = 'queue_drain'"
                )
            assert drained == 2
            await assert_routing_consistent(client)

    async def test_an_owner_coming_on_shift_or_back_or_reactivated_takes_waiting_leads(
        self, make_app: Any, clock: FakeClock
    ) -> None:
        clock.advance(hours=7)  # Monday 22:00 UTC
        async with authed(make_app(THREE_POOLS, clock=clock)) as client:
            await owner(client, "day", working_hours={"mon-fri": "09:00-17:00"})
            await pool(client, "day-shift", ["day"])
            back = clock.now + timedelta(hours=5)
            await owner(client, "away", out_of_office=[{"from": iso(clock.now), "to": iso(back)}])
            await pool(client, "holiday", ["away"])
            await owner(client, "gone", active=False)
            await pool(client, "inactive", ["gone"])
            waiting = {
                country: (await post_one(client, lead(n, country=country)))["lead_id"]
                for n, country in enumerate(("US", "FR", "DE"))
            }
            assert [(await get_lead(client, w))["owner"] for w in waiting.values()] == [None] * 3
            assert await drain(client) == 0

            r = await client.patch("/v1/owners/gone", json={"active": True})
            assert r.status_code == 200, r.text
            assert await drain(client) == 1
            assert (await get_lead(client, waiting["DE"]))["owner"] == "gone"

            clock.advance(hours=6)  # Tuesday 04:00: back from out of office
            assert await drain(client) == 1
            assert (await get_lead(client, waiting["FR"]))["owner"] == "away"

            clock.advance(hours=5)  # Tuesday 09:00: the working day starts
            assert await drain(client) == 1
            assert (await get_lead(client, waiting["US"]))["owner"] == "day"
            assert await drain(client) == 0
            await assert_routing_consistent(client)

    async def test_a_lead_queued_after_a_breach_never_goes_back_to_who_breached_it(
        self, make_app: Any, clock: FakeClock
    ) -> None:
        async with authed(make_app(sla_rules(1), clock=clock)) as client:
            await owner(client, "ann")
            await pool(client, "sales", ["ann"])
            placed = await post_one(client, lead(1))
            clock.advance(minutes=2)
            assert await fire(client) == 1  # ann breached; nobody else in the pool: queued
            assert (await get_lead(client, placed["lead_id"]))["owner"] is None
            assert await drain(client) == 0  # ann has room, but let its SLA run out
            await owner(client, "ben")
            await pool(client, "sales", ["ann", "ben"])
            assert await drain(client) == 1
            assert (await get_lead(client, placed["lead_id"]))["owner"] == "ben"

    async def test_a_lead_parked_after_too_many_breaches_waits_for_a_person(
        self, settings: Settings, clean: None, clock: FakeClock
    ) -> None:
        async with instance(settings, sla_rules(1), clock, sla_max_breaches=1) as client:
            await owner(client, "ann")
            await pool(client, "sales", ["ann"])
            placed = await post_one(client, lead(1))
            clock.advance(minutes=2)
            assert await fire(client) == 1
            view = await get_lead(client, placed["lead_id"])
            assert "breached 1 times" in view["workflow"]["reason"]
            await owner(client, "ben")
            await pool(client, "sales", ["ann", "ben"])
            assert await drain(client) == 0
            assert (await get_lead(client, placed["lead_id"]))["owner"] is None


async def _both(*work: Any) -> list[int]:
    import asyncio

    return list(await asyncio.gather(*work))


class TestDecay:
    """A lead's stage follows its decaying engagement as time passes, without taking it from its owner."""

    async def test_an_mql_whose_engagement_decays_becomes_a_lead_and_keeps_its_owner(
        self, make_app: Any, settings: Settings, clock: FakeClock
    ) -> None:
        async with authed(make_app(STAGED, clock=clock)) as client:
            await owner(client, "ann")
            await pool(client, "sales", ["ann"])
            lead_id = (await post_one(client, lead(1)))["lead_id"]
            body = {
                "lead_id": lead_id,
                "type": "page_view",
                "occurred_at": iso(clock.now),
                "properties": {"url": "/pricing"},
            }
            assert (await act(client, "/v1/events", body))["stage"] == "mql"
            assert await decay(client) == 0  # not due yet

            clock.advance(days=2)  # 50 points x 0.5 ** (2 / 7) = 41: still an MQL
            assert await decay(client) == 0
            clock.advance(days=1)  # 37: a lead again
            assert await decay(client) == 1
            assert await decay(client) == 0  # once

            view = await get_lead(client, lead_id)
            assert (view["stage"], view["owner"]) == ("lead", "ann")
            scored = [h["data"] for h in view["history"] if h["type"] == "lead.scored"]
            assert (scored[-1]["cause"], scored[-1]["previous_stage"], scored[-1]["stage"]) == (
                "decay",
                "mql",
                "lead",
            )
            assert scored[-1]["score"] == pytest.approx(50 * 0.5 ** (3 / 7), abs=0.01)
            why = await explain(client, lead_id)
            assert why["stage"] == "lead"
            assert why["owner"] == "ann"

            clock.advance(days=60)  # the points no longer count: decay stops checking this lead
            await decay(client)
            async with connection(settings) as conn:
                assert await conn.fetchval("SELECT rescore_at FROM leads") is None


class TestLog:
    """The log is append-only, readable after a sequence number, and migrated for old leads."""

    async def test_events_cannot_be_changed(self, make_app: Any, settings: Settings) -> None:
        async with authed(make_app(sla_rules(30))) as client:
            await owner(client, "ann")
            await pool(client, "sales", ["ann"])
            await post_one(client, lead(1))
        async with connection(settings) as conn:
            with pytest.raises(asyncpg.RaiseError, match="append-only"):
                await conn.execute("UPDATE lead_events SET actor = 'someone'")

    async def test_a_relay_reads_everything_after_a_sequence_number_in_order(
        self, make_app: Any, settings: Settings
    ) -> None:
        from leadroute.workflow.log import events_after

        async with authed(make_app(sla_rules(30))) as client:
            await owner(client, "ann")
            await pool(client, "sales", ["ann"])
            for n in range(3):
                await post_one(client, lead(n))
        async with connection(settings) as conn:
            page = await events_after(conn, 0, limit=100)
            assert [e.seq for e in page.events] == sorted(e.seq for e in page.events)
            assert [e.type for e in page.events] == ["lead.received", "lead.scored", "lead.assigned"] * 3
            rest = await events_after(conn, page.events[4].seq, limit=100)
            assert [e.seq for e in rest.events] == [e.seq for e in page.events[5:]]
            assert page.xmin <= page.xmax

    async def test_leads_stored_before_the_log_keep_a_readable_history(self, fresh_database: str) -> None:
        conn = await connect(fresh_database)
        try:
            await conn.execute(
                "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
                " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            for m in available():
                if m.version < 6:
                    await conn.execute(m.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                        m.version,
                        m.name,
                        m.checksum,
                    )
            await conn.execute(OLD_DATA)
            assert [m.version for m in await migrate(conn)] == [
                m.version for m in available() if m.version >= 6
            ]
            rows = await conn.fetch("SELECT kind, actor, payload FROM lead_events ORDER BY received_at, id")
        finally:
            await conn.close()
        assert [(r["kind"], r["actor"]) for r in rows] == [
            ("lead.received", "system"),
            ("lead.scored", "system"),
            ("lead.assigned", "system"),
            ("activity.recorded", "system"),
            ("lead.sla_breached", "system"),
            ("lead.reassigned", "system"),
            ("lead.accepted", "owner:bob"),
        ]
        received, scored, assigned, activity, breached, moved, accepted = (r["payload"] for r in rows)
        assert received["body"] == {"email": "old@acme.example"}
        assert (scored["score"], scored["stage"], scored["matched"], scored["groups"]) == (
            60,
            "mql",
            ["vp"],
            {"fit": 60},
        )
        assert (assigned["owner"], assigned["cause"]) == ("ann", "received")
        assert activity == {"activity": "page_view", "properties": {"url": "/pricing"}, "points": []}
        assert (breached["owner"], breached["breach"]) == ("ann", 1)
        assert (moved["cause"], moved["previous_owner"], moved["owner"]) == ("sla_breach", "ann", "bob")
        assert accepted["owner"] == "bob"


OLD_DATA = """
INSERT INTO owners (id, name) VALUES ('ann', 'Ann'), ('bob', 'Bob');
INSERT INTO rulesets (id, version, sha256, source) VALUES (1, 1, 'abc', 'version: 1');
INSERT INTO leads (id, created_at, email, stage, score, status, owner_id, pool_id, normalized)
VALUES ('00000000-0000-0000-0000-000000000001', '2026-01-01T10:00Z', 'old@acme.example', 'mql', 60,
        'accepted', 'bob', 'sales', '{}');
INSERT INTO lead_events (id, lead_id, kind, received_at, occurred_at, payload) VALUES
  (1, '00000000-0000-0000-0000-000000000001', 'lead.received', '2026-01-01T10:00Z', NULL,
   '{"email": "old@acme.example"}'),
  (2, '00000000-0000-0000-0000-000000000001', 'activity', '2026-01-01T10:05Z', '2026-01-01T10:05Z',
   '{"type": "page_view", "properties": {"url": "/pricing"}}'),
  (3, '00000000-0000-0000-0000-000000000001', 'sla.breached', '2026-01-01T10:31Z', '2026-01-01T10:31Z',
   '{"owner": "ann", "due_at": "2026-01-01T10:30:00Z", "minutes": 30, "business_hours": false,
     "breach": 1, "on_breach": "reassign"}'),
  (4, '00000000-0000-0000-0000-000000000001', 'assignment.reassigned', '2026-01-01T10:31Z',
   '2026-01-01T10:31Z', '{"by": "sla", "from": "ann", "to": "bob", "pool": "sales", "skipped": []}'),
  (5, '00000000-0000-0000-0000-000000000001', 'assignment.accepted', '2026-01-01T10:40Z',
   '2026-01-01T10:40Z', '{"owner": "bob", "after_minutes": 9, "sla_stopped": true}');
SELECT setval('lead_events_id_seq', 5);
INSERT INTO decisions (id, lead_id, event_id, ruleset_id, ruleset_version, ruleset_sha256, score, groups,
                       matched, stage, qualification_rule, routing_rule, pool_id, owner_id, explanation,
                       decided_at)
VALUES (1, '00000000-0000-0000-0000-000000000001', 1, 1, 1, 'abc', 60,
        '{"fit": {"raw": 60, "score": 60}}', '[{"rule": "vp", "group": "fit", "points": 60}]', 'mql', 'hot',
        'everyone', 'sales', 'ann', '{"assignment": {"strategy": "round_robin", "owners_skipped": []}}',
        '2026-01-01T10:00Z');
INSERT INTO assignments (lead_id, decision_id, owner_id, pool_id, status, created_at, ended_at, rule)
VALUES ('00000000-0000-0000-0000-000000000001', 1, 'ann', 'sales', 'assigned', '2026-01-01T10:00Z',
        '2026-01-01T10:31Z', 'everyone'),
       ('00000000-0000-0000-0000-000000000001', NULL, 'bob', 'sales', 'accepted', '2026-01-01T10:31Z',
        NULL, 'everyone');
"""


class TestAdmission:
    """Past its bound on requests in flight, a worker answers 503 with Retry-After at once."""

    async def test_an_overloaded_worker_answers_503_at_once_and_health_still_answers(
        self, settings: Settings, clean: None, tmp_path: Path
    ) -> None:
        rules = tmp_path / "rules.yaml"
        rules.write_text(STAGED)
        served = Served(tmp_path / "serve.log", settings, rules_path=str(rules), max_in_flight="1")
        try:
            served.wait_ready()
            async with httpx.AsyncClient(base_url=served.base, timeout=30, headers=AUTH) as http:
                posted = await http.post("/v1/leads", json=lead(1))
                assert posted.status_code == 201, posted.text
                lead_id = posted.json()["lead_id"]
                async with connection(settings) as conn, conn.transaction():
                    await conn.execute("SELECT 1 FROM leads WHERE id = $1 FOR UPDATE", uuid.UUID(lead_id))
                    body = {"lead_id": lead_id, "type": "page_view", "occurred_at": iso(datetime.now(UTC))}
                    held = asyncio.create_task(http.post("/v1/events", json=body))  # waits on the row lock
                    await asyncio.sleep(0.5)
                    started = time.monotonic()
                    refused = await http.post("/v1/leads", json=lead(2))
                    took = time.monotonic() - started
                    assert (await http.get("/health/live")).status_code == 200
                assert refused.status_code == 503, refused.text
                assert 1 <= int(refused.headers["retry-after"]) <= 3  # 1 in flight, little throughput
                assert refused.headers["content-type"] == "application/problem+json"
                assert took < 0.5
                assert (await held).status_code == 201
                assert (await http.post("/v1/leads", json=lead(2))).status_code == 201
        finally:
            served.stop()

    async def test_no_free_connection_in_time_is_a_503_not_a_wait(
        self, settings: Settings, clean: None, tmp_path: Path
    ) -> None:
        rules = tmp_path / "rules.yaml"
        rules.write_text(STAGED)
        served = Served(
            tmp_path / "serve.log",
            settings,
            rules_path=str(rules),
            db_pool_min="1",
            db_pool_max="1",
            db_acquire_timeout="0.2",
            sla_poll_seconds="0",
        )
        try:
            served.wait_ready()
            async with httpx.AsyncClient(base_url=served.base, timeout=30, headers=AUTH) as http:
                lead_id = (await http.post("/v1/leads", json=lead(1))).json()["lead_id"]
                async with connection(settings) as conn, conn.transaction():
                    await conn.execute("SELECT 1 FROM leads WHERE id = $1 FOR UPDATE", uuid.UUID(lead_id))
                    body = {"lead_id": lead_id, "type": "page_view", "occurred_at": iso(datetime.now(UTC))}
                    held = asyncio.create_task(http.post("/v1/events", json=body))  # holds the one connection
                    await asyncio.sleep(0.5)
                    started = time.monotonic()
                    refused = await http.post("/v1/leads", json=lead(2))
                    took = time.monotonic() - started
                assert refused.status_code == 503, refused.text
                assert refused.json()["type"].endswith("/overloaded")
                assert 1 <= int(refused.headers["retry-after"]) <= 3
                assert took < 1.5
                assert (await held).status_code == 201
        finally:
            served.stop()


class TestRoutingConfigCache:
    """Routing reads owners and pools from memory until PostgreSQL says they changed."""

    async def test_the_configuration_is_read_once_until_an_owner_or_pool_changes(
        self, settings: Settings, clean: None, clock: FakeClock
    ) -> None:
        async with instance(settings, sla_rules(30), clock) as client:
            await owner(client, "ann")
            await pool(client, "sales", ["ann"])
            router = client.app.state.runtime.routing
            await post_one(client, lead(1))
            first = router.config
            assert set(first.owners) == {"ann"}
            await post_one(client, lead(2))
            assert router.config is first  # nothing changed: not read again
            await owner(client, "ben")
            await pool(client, "sales", ["ann", "ben"])
            third = await post_one(client, lead(3))
            assert router.config is not first
            assert set(router.config.owners) == {"ann", "ben"}
            assert third["owner"] == "ben"  # round robin goes on to the new member
            r = await client.patch("/v1/owners/ben", json={"active": False})
            assert r.status_code == 200, r.text
            assert (await post_one(client, lead(4)))["owner"] == "ann"  # seen at once
