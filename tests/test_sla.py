"""SLA timers: breach → reassign or escalate, accept in time, exactly once across instances,
restarts, working-hours-aware deadlines, and the breach limit (real PostgreSQL and Redis)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from redis.asyncio import Redis

from conftest import FakeClock
from leadroute.config import Settings
from leadroute.routing import Member
from leadroute.routing.eligibility import normalize_hours, within_hours
from leadroute.workflow.sla import business_due
from sla_support import assert_routing_consistent, fire, instance, iso, kinds, open_counts, sla_rules, steps
from support import authed, connection, get_lead, lead, post_one, setup_pool

PARIS_OFFICE = Member(
    id="x",
    timezone="Europe/Paris",
    working_hours={d: ["09:00-17:00"] for d in ["mon", "tue", "wed", "thu", "fri"]},
)


def utc(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


class TestBusinessDue:
    """The deadline counts only working time, in the owner's timezone (a pure function)."""

    def test_without_hours_it_is_wall_clock_time(self) -> None:
        start = utc(2026, 11, 23, 22, 0)
        assert business_due(Member(id="x"), start, 30) == start + timedelta(minutes=30)

    def test_inside_a_span(self) -> None:
        # Monday 10:00 Paris (09:00 UTC) + 30 min
        assert business_due(PARIS_OFFICE, utc(2026, 11, 23, 9, 0), 30) == utc(2026, 11, 23, 9, 30)

    def test_the_night_does_not_count(self) -> None:
        # Monday 16:50 Paris + 30 min: 10 min on Monday, 20 on Tuesday from 09:00 Paris
        assert business_due(PARIS_OFFICE, utc(2026, 11, 23, 15, 50), 30) == utc(2026, 11, 24, 8, 20)

    def test_the_weekend_does_not_count(self) -> None:
        # Friday 16:30 Paris + 60 min: 30 on Friday, 30 on Monday
        assert business_due(PARIS_OFFICE, utc(2026, 11, 27, 15, 30), 60) == utc(2026, 11, 30, 8, 30)

    def test_a_deadline_on_the_closing_minute_stays_that_day(self) -> None:
        # Monday 16:30 Paris + 30 min: due 17:00 Paris, not Tuesday 09:00
        assert business_due(PARIS_OFFICE, utc(2026, 11, 23, 15, 30), 30) == utc(2026, 11, 23, 16, 0)

    def test_a_start_outside_the_hours_waits_for_the_next_span(self) -> None:
        # Saturday noon Paris: counting starts Monday 09:00 Paris
        assert business_due(PARIS_OFFICE, utc(2026, 11, 28, 11, 0), 15) == utc(2026, 11, 30, 8, 15)

    def test_several_spans_a_day_and_several_days(self) -> None:
        split = Member(
            id="x",
            timezone="UTC",
            working_hours={"mon": ["09:00-12:00", "13:00-17:00"], "tue": ["09:00-10:00"]},
        )
        # Monday 11:00 + 8 h: 1 h to 12:00, 4 h in the afternoon, 1 h Tuesday, then the next Monday
        assert business_due(split, utc(2026, 11, 23, 11, 0), 8 * 60) == utc(2026, 11, 30, 11, 0)

    def test_daylight_saving_change(self) -> None:
        # New York falls back on Sunday 2026-11-01: the Monday span 09:00-17:00 is 14:00-22:00 UTC
        ny = Member(
            id="x",
            timezone="America/New_York",
            working_hours={"mon": ["09:00-17:00"], "fri": ["09:00-17:00"]},
        )
        # Friday 2026-10-30 16:30 EDT (20:30 UTC) + 60: 30 min Friday, 30 min Monday from 09:00 EST
        assert business_due(ny, utc(2026, 10, 30, 20, 30), 60) == utc(2026, 11, 2, 14, 30)


async def _one_lead(client: Any) -> dict[str, Any]:
    decision = await post_one(client, lead(1))
    assert decision["owner"] is not None
    return decision


class TestBreach:
    async def test_breach_reassigns_to_a_different_owner(self, make_app: Any, clock: FakeClock) -> None:
        async with authed(make_app(sla_rules(30), clock=clock)) as client:
            await setup_pool(client, ["alice", "bob", "carol"])
            first = await _one_lead(client)
            view = await get_lead(client, first["lead_id"])
            assert view["status"] == "assigned"
            assert view["workflow"]["sla"]["status"] == "pending"
            assert view["workflow"]["sla"]["due_at"] == iso(clock.now + timedelta(minutes=30))

            clock.advance(minutes=29)
            assert await fire(client) == 0
            clock.advance(minutes=2)
            assert await fire(client) == 1
            assert await fire(client) == 0  # fired once

            view = await get_lead(client, first["lead_id"])
            assert view["status"] == "reassigned"
            assert view["owner"] not in (None, first["owner"])
            assert kinds(view) == ["lead.sla_breached", "lead.reassigned"]
            breached, moved = steps(view)
            assert breached["owner"] == first["owner"]
            assert breached["breach"] == 1
            assert moved["previous_owner"] == first["owner"]
            assert moved["owner"] == view["owner"]
            assert moved["cause"] == "sla_breach"
            # a fresh timer for the new owner, counting the breach
            assert view["workflow"]["sla"]["owner"] == view["owner"]
            assert view["workflow"]["sla"]["breaches"] == 1
            assert view["workflow"]["sla"]["due_at"] == iso(clock.now + timedelta(minutes=30))
            assert [a["status"] for a in view["workflow"]["assignments"]] == ["assigned", "reassigned"]
            assert view["workflow"]["assignments"][0]["ended_at"] is not None
            # the old owner's capacity went back; Redis agrees with PostgreSQL
            assert await open_counts(client) == {view["owner"]: 1}
            await assert_routing_consistent(client)

    async def test_accept_in_time_means_no_breach(self, make_app: Any, clock: FakeClock) -> None:
        async with authed(make_app(sla_rules(30), clock=clock)) as client:
            await setup_pool(client, ["alice", "bob"])
            first = await _one_lead(client)
            clock.advance(minutes=25)
            r = await client.post(
                f"/v1/assignments/{first['lead_id']}/accept", json={"owner_id": first["owner"]}
            )
            assert r.status_code == 200, r.text
            clock.advance(hours=5)
            assert await fire(client) == 0
            view = await get_lead(client, first["lead_id"])
            assert view["status"] == "accepted"
            assert view["owner"] == first["owner"]
            assert view["workflow"]["sla"]["status"] == "cancelled"
            assert view["workflow"]["sla"]["resolution"] == "accepted"
            assert "lead.sla_breached" not in kinds(view)

    async def test_two_instances_fire_each_timer_once(
        self, make_app: Any, clock: FakeClock, settings: Settings
    ) -> None:
        rules = sla_rules(10)
        async with authed(make_app(rules, clock=clock)) as client:
            await setup_pool(client, ["alice", "bob", "carol", "dave"])
            leads = [await post_one(client, lead(n)) for n in range(24)]
            clock.advance(minutes=11)
            async with instance(settings, rules, clock) as other:
                counts = await asyncio.gather(*(fire(c) for c in (client, other, client, other)))
                assert sum(counts) == 24
                assert await fire(client) + await fire(other) == 0
            async with connection(settings) as conn:
                per_lead = await conn.fetch(
                    "SELECT lead_id, count(*) AS n FROM lead_events"
                    " WHERE kind = 'lead.sla_breached' GROUP BY lead_id"
                )
                moved = await conn.fetchval("SELECT count(*) FROM lead_events WHERE kind = 'lead.reassigned'")
            assert len(per_lead) == 24
            assert {r["n"] for r in per_lead} == {1}
            assert moved == 24
            for d in leads:
                view = await get_lead(client, d["lead_id"])
                assert view["status"] == "reassigned"
                assert view["owner"] != d["owner"]
            await assert_routing_consistent(client)

    async def test_restart_between_assignment_and_breach_still_fires(
        self, make_app: Any, clock: FakeClock, settings: Settings
    ) -> None:
        rules = sla_rules(30)
        async with authed(make_app(rules, clock=clock)) as client:
            await setup_pool(client, ["alice", "bob"])
            first = await _one_lead(client)
        # the instance is gone; time passes; a new instance starts with its background scheduler
        clock.advance(minutes=45)
        async with instance(settings, rules, clock, sla_poll_seconds=0.05) as client2:
            for _ in range(100):
                view = await get_lead(client2, first["lead_id"])
                if view["status"] != "assigned":
                    break
                await asyncio.sleep(0.05)
            assert view["status"] == "reassigned"
            assert view["owner"] not in (None, first["owner"])
            assert kinds(view) == ["lead.sla_breached", "lead.reassigned"]

    async def test_working_hours_pause_the_clock_over_the_night(
        self, make_app: Any, clock: FakeClock
    ) -> None:
        async with authed(make_app(sla_rules(90), clock=clock)) as client:
            for ident in ("amelie", "bruno"):
                r = await client.put(
                    f"/v1/owners/{ident}",
                    json={
                        "name": ident,
                        "timezone": "Europe/Paris",
                        "working_hours": {"mon-fri": "09:00-17:00"},
                    },
                )
                assert r.status_code == 200, r.text
            r = await client.put(
                "/v1/pools/sales", json={"members": ["amelie", "bruno"], "sla_business_hours": True}
            )
            assert r.status_code == 200, r.text
            # Monday 15:00 UTC = 16:00 in Paris: 60 minutes today, 30 tomorrow from 09:00 Paris
            first = await _one_lead(client)
            view = await get_lead(client, first["lead_id"])
            assert view["workflow"]["sla"]["business_hours"] is True
            assert view["workflow"]["sla"]["due_at"] == "2026-11-24T08:30:00Z"
            clock.advance(hours=8)  # 23:00 UTC: 90 wall-clock minutes are long gone, but not working ones
            assert await fire(client) == 0
            clock.now = datetime(2026, 11, 24, 8, 31, tzinfo=UTC)
            assert await fire(client) == 1
            view = await get_lead(client, first["lead_id"])
            assert view["status"] == "reassigned"
            assert view["owner"] not in (None, first["owner"])

    async def test_repeated_breaches_end_in_the_fallback_queue(self, make_app: Any, clock: FakeClock) -> None:
        async with authed(make_app(sla_rules(15), clock=clock)) as client:
            await setup_pool(client, ["a1", "a2", "a3", "a4", "a5"])
            first = await _one_lead(client)
            owners = [first["owner"]]
            for _ in range(3):
                clock.advance(minutes=16)
                assert await fire(client) == 1
                owners.append((await get_lead(client, first["lead_id"]))["owner"])
            view = await get_lead(client, first["lead_id"])
            # breach 1 and 2 moved it to two other owners; breach 3 hit the limit (3)
            assert len(set(owners[:3])) == 3
            assert view["status"] == "unassigned"
            assert view["owner"] is None
            assert view["workflow"]["queue"] == "unassigned"
            assert "breached 3 times" in view["workflow"]["reason"]
            assert kinds(view) == [
                "lead.sla_breached",
                "lead.reassigned",
                "lead.sla_breached",
                "lead.reassigned",
                "lead.sla_breached",
                "lead.queued",
            ]
            clock.advance(days=2)
            assert await fire(client) == 0  # no timer left running: it never loops
            assert await open_counts(client) == {}
            await assert_routing_consistent(client)

    async def test_an_activity_never_routes_a_parked_lead_back_to_who_breached_it(
        self, make_app: Any, clock: FakeClock
    ) -> None:
        rules = (
            sla_rules(15)
            .replace(
                "  rules:\n    - {id: senior",
                "  rules:\n    - {id: webinar, group: fit, on_activity: webinar_attended, when: 'true',"
                " points: 30}\n    - {id: senior",
            )
            .replace(
                "  - {id: rest, stage: lead}",
                "  - {id: hot, stage: sql, when: 'score >= 60'}\n"
                "  - {id: warm, stage: mql, when: 'score >= 30'}\n"
                "  - {id: rest, stage: lead}",
            )
        )
        async with authed(make_app(rules, clock=clock)) as client:
            await setup_pool(client, ["alice", "bob"])
            r = await client.post("/v1/leads", json={"email": "p@company-1.example", "title": "Sales"})
            first = r.json()
            assert first["owner"] is not None
            for _ in range(2):
                clock.advance(minutes=16)
                assert await fire(client) == 1
            assert (await get_lead(client, first["lead_id"]))["status"] == "unassigned"

            async def webinar() -> dict[str, Any]:
                body = {
                    "lead_id": first["lead_id"],
                    "type": "webinar_attended",
                    "occurred_at": iso(clock.now),
                }
                r = await client.post("/v1/events", json=body)
                assert r.status_code in (200, 201), r.text
                result: dict[str, Any] = r.json()
                return result

            risen = await webinar()  # lead -> mql: both owners breached it, so it stays queued
            assert (risen["stage"], risen["routed"]) == ("mql", False)
            await setup_pool(client, ["alice", "bob", "carol"])
            risen = await webinar()  # mql -> sql: carol, with the two breaches counted
            assert (risen["stage"], risen["owner"]) == ("sql", "carol")
            view = await get_lead(client, first["lead_id"])
            assert view["workflow"]["sla"]["breaches"] == 2
            clock.advance(minutes=16)
            assert await fire(client) == 1  # the third breach: the fallback queue, no loop
            view = await get_lead(client, first["lead_id"])
            assert view["status"] == "unassigned"
            assert "breached 3 times" in view["workflow"]["reason"]

    async def test_when_every_member_breached_the_lead_goes_to_the_fallback_queue(
        self, make_app: Any, clock: FakeClock
    ) -> None:
        async with authed(make_app(sla_rules(15), clock=clock)) as client:
            await setup_pool(client, ["solo", "duo"])
            first = await _one_lead(client)
            clock.advance(minutes=16)
            assert await fire(client) == 1
            clock.advance(minutes=16)
            assert await fire(client) == 1
            view = await get_lead(client, first["lead_id"])
            assert view["status"] == "unassigned"
            last = steps(view)[-1]
            assert last["kind"] == "lead.queued"
            assert {s["reason"] for s in last["skipped"]} == {"excluded"}
            assert "no eligible owner" in view["workflow"]["reason"]

    async def test_escalate_to_an_owner_then_the_fallback_queue(
        self, make_app: Any, clock: FakeClock
    ) -> None:
        async with authed(make_app(sla_rules(20, "escalate"), clock=clock)) as client:
            r = await client.put("/v1/owners/boss", json={"name": "Boss"})
            assert r.status_code == 200, r.text
            await setup_pool(client, ["alice", "bob"], escalate_to="boss")
            first = await _one_lead(client)
            clock.advance(minutes=21)
            assert await fire(client) == 1
            view = await get_lead(client, first["lead_id"])
            assert view["status"] == "escalated"
            assert view["owner"] == "boss"
            step = steps(view)[-1]
            assert step == step | {
                "kind": "lead.escalated",
                "previous_owner": first["owner"],
                "owner": "boss",
            }
            assert view["workflow"]["sla"]["owner"] == "boss"
            # the boss lets it run out too: escalating to them again is pointless
            clock.advance(minutes=21)
            assert await fire(client) == 1
            view = await get_lead(client, first["lead_id"])
            assert view["status"] == "unassigned"
            assert "boss" in view["workflow"]["reason"]
            assert await open_counts(client) == {}
            await assert_routing_consistent(client)

    async def test_escalate_to_a_pool(self, make_app: Any, clock: FakeClock) -> None:
        async with authed(make_app(sla_rules(20, "escalate"), clock=clock)) as client:
            await setup_pool(client, ["lead1", "lead2"], pool="managers")
            await setup_pool(client, ["alice"], escalate_to="managers")
            first = await _one_lead(client)
            assert first["owner"] == "alice"
            clock.advance(minutes=21)
            assert await fire(client) == 1
            view = await get_lead(client, first["lead_id"])
            assert view["status"] == "escalated"
            assert view["owner"] in {"lead1", "lead2"}
            assert view["pool"] == "managers"
            await assert_routing_consistent(client)

    async def test_escalate_without_a_target_reassigns_and_says_so(
        self, make_app: Any, clock: FakeClock
    ) -> None:
        async with authed(make_app(sla_rules(20, "escalate"), clock=clock)) as client:
            await setup_pool(client, ["alice", "bob"])
            first = await _one_lead(client)
            clock.advance(minutes=21)
            assert await fire(client) == 1
            view = await get_lead(client, first["lead_id"])
            assert view["status"] == "reassigned"
            assert "no escalation target" in steps(view)[-1]["note"]

    async def test_a_lead_being_changed_is_left_for_the_next_pass(
        self, make_app: Any, clock: FakeClock, settings: Settings
    ) -> None:
        async with authed(make_app(sla_rules(10), clock=clock)) as client:
            await setup_pool(client, ["alice", "bob"])
            first = await _one_lead(client)
            clock.advance(minutes=11)
            # a request holds the lead
            async with connection(settings) as conn, conn.transaction():
                await conn.execute("SELECT 1 FROM leads WHERE id = $1 FOR UPDATE", as_id(first))
                assert await fire(client) == 0
            assert await fire(client) == 1


def as_id(decision: dict[str, Any]) -> Any:
    import uuid

    return uuid.UUID(decision["lead_id"])


class TestRedisLoss:
    async def test_a_breach_after_redis_lost_its_state_rebuilds_and_counts_right(
        self, make_app: Any, clock: FakeClock, settings: Settings
    ) -> None:
        async with authed(make_app(sla_rules(10), clock=clock)) as client:
            await setup_pool(client, ["alice", "bob", "carol"])
            leads = [await post_one(client, lead(n)) for n in range(6)]
            assert settings.redis_url is not None
            redis = Redis.from_url(settings.redis_url)
            try:
                keys = [k async for k in redis.scan_iter(match=f"{settings.redis_prefix}:*")]
                assert keys
                await redis.delete(*keys)  # what a FLUSHALL does to us
            finally:
                await redis.aclose()
            clock.advance(minutes=11)
            assert await fire(client) == 6
            for d in leads:
                view = await get_lead(client, d["lead_id"])
                assert view["status"] == "reassigned"
                assert view["owner"] not in (None, d["owner"])
            assert sum((await open_counts(client)).values()) == 6
            await assert_routing_consistent(client)


class TestStale:
    async def test_a_timer_whose_lead_moved_on_without_it_is_cancelled_not_fired(
        self, make_app: Any, clock: FakeClock, settings: Settings
    ) -> None:
        async with authed(make_app(sla_rules(10), clock=clock)) as client:
            await setup_pool(client, ["alice", "bob"])
            d = await post_one(client, lead(1))
            # a writer that closes leads without stopping their timers (older code, a script)
            async with connection(settings) as conn:
                await conn.execute("UPDATE leads SET status = 'closed' WHERE id = $1", as_id(d))
                clock.advance(minutes=11)
                assert await fire(client) == 0
                row = await conn.fetchrow(
                    "SELECT status, resolution FROM sla_timers WHERE lead_id = $1", as_id(d)
                )
            assert row is not None
            assert (row["status"], row["resolution"]) == ("cancelled", "stale")
            assert "lead.sla_breached" not in kinds(await get_lead(client, d["lead_id"]))


HOURS = [
    ("UTC", {"mon-fri": "09:00-17:00"}),
    ("Europe/Paris", {"mon-fri": "09:00-12:30, 13:30-18:00", "sat": "10:00-14:00"}),
    ("America/New_York", {"mon,wed,fri": "08:00-20:00", "tue": "00:00-24:00"}),
    ("Europe/London", {"mon-sat": "09:00-12:00, 11:00-14:00, 14:00-15:30"}),  # overlapping, touching
    ("Asia/Kolkata", {"sun,mon-thu": "22:00-24:00", "mon-fri": "00:00-02:00"}),  # a night shift
]


class TestBusinessDueProperty:
    """Checked minute by minute against routing's own ``within_hours`` (an independent oracle)."""

    @hsettings(max_examples=150, deadline=None)
    @given(
        hours=st.sampled_from(HOURS),
        # around both 2026 daylight-saving changes in Europe and the US
        start=st.sampled_from([datetime(2026, 3, 6, tzinfo=UTC), datetime(2026, 10, 23, tzinfo=UTC)]),
        # whole half hours too, so deadlines land exactly on span edges
        offset=st.integers(0, 14 * 24 * 60) | st.integers(0, 14 * 48).map(lambda n: n * 30),
        minutes=st.integers(1, 600) | st.integers(1, 20).map(lambda n: n * 30),
    )
    def test_exactly_the_minutes_inside_working_hours_count(
        self, hours: tuple[str, dict[str, str]], start: datetime, offset: int, minutes: int
    ) -> None:
        tz, spec = hours
        member = Member(id="x", timezone=tz, working_hours=normalize_hours(spec))
        begin = start + timedelta(minutes=offset)
        due = business_due(member, begin, minutes)
        counted, at = 0, begin
        while at < due:
            counted += within_hours(member, at)
            at += timedelta(minutes=1)
        assert counted == minutes
        assert within_hours(member, due - timedelta(minutes=1))  # the last minute counted is working time
