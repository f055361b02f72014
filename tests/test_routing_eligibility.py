"""Eligibility: each rule as a pure function, and each reason shown by ``explain`` end to end."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from conftest import FakeClock
from leadroute.routing.eligibility import (
    Member,
    PoolRules,
    capacity_reason,
    local_day,
    normalize_absences,
    normalize_hours,
    out_of_office,
    screen,
    skip_reason,
    valid_timezone,
    within_hours,
)
from support import POOL_RULES, authed, explain, owner, pool, post_one

MONDAY_15_UTC = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
NINE_TO_SIX = normalize_hours({"mon-fri": "09:00-18:00"})


class TestNormalize:
    def test_ranges_and_lists_expand_to_weekdays(self) -> None:
        assert normalize_hours({"mon-wed": "09:00-12:00, 13:00-18:00", "sat": ["10:00-14:00"]}) == {
            "mon": ["09:00-12:00", "13:00-18:00"],
            "tue": ["09:00-12:00", "13:00-18:00"],
            "wed": ["09:00-12:00", "13:00-18:00"],
            "sat": ["10:00-14:00"],
        }
        assert normalize_hours(None) is None
        assert normalize_hours({}) is None

    @pytest.mark.parametrize(
        ("spec", "message"),
        [
            ({"mon-fri": "9-18"}, "not a span"),
            ({"fri-mon": "09:00-18:00"}, "backwards"),
            ({"monday": "09:00-18:00"}, "not a weekday"),
            ({"mon": "18:00-09:00"}, "ends before it starts"),
            ({"mon": "09:00-24:30"}, "not a valid time span"),
        ],
    )
    def test_bad_hours_name_the_problem(self, spec: dict[str, Any], message: str) -> None:
        with pytest.raises(ValueError, match=message):
            normalize_hours(spec)

    def test_absences_are_checked_and_sorted(self) -> None:
        assert normalize_absences(
            [{"from": "2027-02-01", "to": "2027-02-02"}, {"from": "2026-12-24", "to": "2027-01-02"}]
        ) == [{"from": "2026-12-24", "to": "2027-01-02"}, {"from": "2027-02-01", "to": "2027-02-02"}]
        with pytest.raises(ValueError, match="before"):
            normalize_absences([{"from": "2026-12-24", "to": "2026-12-01"}])
        with pytest.raises(ValueError, match="must both be dates or both datetimes"):
            normalize_absences([{"from": "2026-12-24", "to": "2026-12-25T10:00:00"}])
        with pytest.raises(ValueError, match="exactly 'from' and 'to'"):
            normalize_absences([{"start": "2026-12-24", "to": "2026-12-25"}])

    def test_timezones_are_iana_names(self) -> None:
        assert valid_timezone("Europe/Paris") == "Europe/Paris"
        with pytest.raises(ValueError, match="unknown timezone"):
            valid_timezone("Mars/Olympus")


class TestChecks:
    def test_working_hours_are_read_in_the_owners_timezone(self) -> None:
        paris = Member(id="p", timezone="Europe/Paris", working_hours=NINE_TO_SIX)  # 16:00 Monday
        tokyo = Member(id="t", timezone="Asia/Tokyo", working_hours=NINE_TO_SIX)  # 00:00 Tuesday
        new_york = Member(id="n", timezone="America/New_York", working_hours=NINE_TO_SIX)  # 10:00
        assert within_hours(paris, MONDAY_15_UTC)
        assert not within_hours(tokyo, MONDAY_15_UTC)
        assert within_hours(new_york, MONDAY_15_UTC)
        assert within_hours(Member(id="always"), MONDAY_15_UTC)
        saturday = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
        assert not within_hours(paris, saturday)

    def test_out_of_office_dates_are_whole_local_days_datetimes_half_open(self) -> None:
        dates = Member(
            id="d", timezone="Asia/Tokyo", out_of_office=[{"from": "2026-11-24", "to": "2026-11-24"}]
        )
        assert out_of_office(dates, MONDAY_15_UTC)  # already Tuesday the 24th in Tokyo
        assert not out_of_office(Member(id="u", out_of_office=dates.out_of_office), MONDAY_15_UTC)
        span = [{"from": "2026-11-23T14:00:00+00:00", "to": "2026-11-23T15:00:00+00:00"}]
        assert not out_of_office(Member(id="s", out_of_office=span), MONDAY_15_UTC)  # ends at 15:00
        naive = [{"from": "2026-11-23T15:30:00", "to": "2026-11-23T17:00:00"}]  # owner's local time
        assert out_of_office(Member(id="n", timezone="Europe/Paris", out_of_office=naive), MONDAY_15_UTC)

    def test_reasons_in_order_and_capacity(self) -> None:
        pool_rules = PoolRules(required_skill="fr")
        assert skip_reason(Member(id="x", skills=["fr"]), pool_rules, MONDAY_15_UTC, {"x"}) == "excluded"
        assert skip_reason(Member(id="x", active=False), pool_rules, MONDAY_15_UTC) == "inactive"
        assert skip_reason(Member(id="x", skills=["de"]), pool_rules, MONDAY_15_UTC) == "missing_skill"
        tokyo = Member(id="t", timezone="Asia/Tokyo", working_hours=NINE_TO_SIX, skills=["fr"])
        assert skip_reason(tokyo, pool_rules, MONDAY_15_UTC) == "off_hours"
        assert skip_reason(tokyo, PoolRules(required_skill="fr", allow_off_hours=True), MONDAY_15_UTC) is None
        capped = Member(id="c", max_open=2, max_per_day=5)
        assert capacity_reason(capped, 1, 4) is None
        assert capacity_reason(capped, 2, 0) == "over_capacity"
        assert capacity_reason(capped, 0, 5) == "daily_cap"
        assert local_day(tokyo, MONDAY_15_UTC) == "2026-11-24"

    def test_screen_keeps_member_order_and_names_the_pool(self) -> None:
        roster = screen(
            [Member(id="a"), Member(id="b", active=False)], PoolRules(), MONDAY_15_UTC, pool_id="sales"
        )
        assert [m.id for m in roster.members] == ["a", "b"]
        assert roster.eligible == {"a"}
        assert [(s.owner, s.reason, s.pool) for s in roster.skipped] == [("b", "inactive", "sales")]


class TestExplainShowsEveryReason:
    async def test_each_reason_is_recorded_and_explained(self, make_app: Any, clock: FakeClock) -> None:
        # FakeClock: Monday 15:00 UTC (16:00 in Paris, 00:00 Tuesday in Tokyo).
        async with authed(make_app(POOL_RULES, clock=clock)) as client:
            paris = {
                "timezone": "Europe/Paris",
                "working_hours": {"mon-fri": "09:00-18:00"},
                "skills": ["fr"],
            }
            await owner(client, "a-full", **paris, capacity={"max_open": 0})
            await owner(client, "b-daily", **paris, capacity={"max_per_day": 0})
            await owner(client, "c-inactive", **paris, active=False)
            await owner(client, "d-away", **paris, out_of_office=[{"from": "2026-11-20", "to": "2026-11-27"}])
            await owner(client, "e-tokyo", **(paris | {"timezone": "Asia/Tokyo"}))
            await owner(client, "f-noskill", **(paris | {"skills": ["de"]}))
            await owner(client, "g-ready", **paris)
            members = ["a-full", "b-daily", "c-inactive", "d-away", "e-tokyo", "f-noskill", "g-ready"]
            await pool(client, "sales", members, required_skill="fr")
            decision = await post_one(client, {"email": "x@acme.example", "title": "VP"})
            assert decision["owner"] == "g-ready"
            why = await explain(client, decision["lead_id"])
        skipped = {s["owner"]: s["reason"] for s in why["assignment"]["owners_skipped"]}
        assert skipped == {
            "a-full": "over_capacity",
            "b-daily": "daily_cap",
            "c-inactive": "inactive",
            "d-away": "out_of_office",
            "e-tokyo": "off_hours",
            "f-noskill": "missing_skill",
        }
        for name, reason in skipped.items():
            assert f"{name} ({reason})" in why["summary"]

    async def test_nobody_eligible_goes_to_the_fallback_with_every_reason(
        self, make_app: Any, clock: FakeClock
    ) -> None:
        async with authed(make_app(POOL_RULES, clock=clock)) as client:
            await owner(client, "kenji", timezone="Asia/Tokyo", working_hours={"mon-fri": "09:00-18:00"})
            await pool(client, "sales", ["kenji"], fallback="night-queue")
            decision = await post_one(client, {"email": "x@acme.example"})
            why = await explain(client, decision["lead_id"])
            await pool(client, "sales", ["kenji"], fallback="night-queue", allow_off_hours=True)
            later = await post_one(client, {"email": "y@acme.example"})
        assert decision["status"] == "unassigned"
        assert why["assignment"]["queue"] == "night-queue"
        assert why["assignment"]["owners_skipped"] == [
            {"owner": "kenji", "reason": "off_hours", "pool": "sales"}
        ]
        assert later["owner"] == "kenji"  # the pool allows off-hours
