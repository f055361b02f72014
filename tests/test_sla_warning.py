"""SLA "about to breach" warnings: ``LEADROUTE_SLA_WARN_BEFORE_MINUTES`` before the deadline, once
across instances, never after the lead was accepted; the relay turns ``lead.sla_warning`` into a
Slack alert (the rep mentioned, the escalation target named), an email, and a webhook event."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conftest import FakeClock
from leadroute.config import Settings
from leadroute.routing import Member
from leadroute.routing.config import PoolConfig, RoutingConfig
from leadroute.rules import Sla
from leadroute.workflow import scheduler
from leadroute.workflow.log import LeadSlaWarning
from leadroute.workflow.scheduler import fire_due_warnings
from leadroute.workflow.sla import timer_due
from outbound_support import create_endpoint, receiver, relay_pass, smtp_server, verified
from sla_support import fire, in_app, instance, iso, sla_rules
from support import Client, connection, explain, get_lead, lead, owner, pool, post_one

PUBLIC = "https://leadroute.example.com"


async def warn(client: Client) -> int:
    """One warning pass of this instance at its clock's "now"; how many warnings were given."""
    return await in_app(client, fire_due_warnings)


async def team(client: Client) -> None:
    await owner(client, "ann", email="ann@corp.example", slack_user_id="U0ANN1")
    await owner(client, "boss", email="boss@corp.example")
    await pool(client, "sales", ["ann"], escalate_to="boss")


async def warnings_of(settings: Settings, lead_id: str) -> list[dict[str, object]]:
    async with connection(settings) as conn:
        rows = await conn.fetch(
            "SELECT received_at, payload FROM lead_events WHERE lead_id = $1 AND kind = 'lead.sla_warning'",
            lead_id,
        )
    return [dict(r["payload"]) | {"at": r["received_at"]} for r in rows]


class TestWarningTimer:
    async def test_warns_once_at_the_lead_time_before_the_deadline(
        self, settings: Settings, clean: None, clock: FakeClock
    ) -> None:
        async with instance(settings, sla_rules(30), clock, sla_warn_before_minutes=10) as client:
            await team(client)
            lead_id = (await post_one(client, lead(1)))["lead_id"]
            due = (await get_lead(client, lead_id))["workflow"]["sla"]["due_at"]
            started = clock.now
            clock.advance(minutes=19, seconds=59)  # 1 s before warn_at (due - 10 min)
            assert await warn(client) == 0
            clock.advance(seconds=1)
            assert await warn(client) == 1
            assert await warn(client) == 0  # once
            clock.advance(minutes=5)
            assert await warn(client) == 0  # still once
            view = await get_lead(client, lead_id)
            assert view["status"] == "assigned"  # a warning moves nothing
            history = [h["type"] for h in view["history"]]
            assert history.count("lead.sla_warning") == 1
        [given] = await warnings_of(settings, lead_id)
        assert given["owner"] == "ann"
        assert given["minutes_left"] == 10
        assert given["minutes"] == 30
        assert given["pool"] == "sales"
        assert given["due_at"] == due
        assert isinstance(given["at"], datetime)
        assert (given["at"] - started).total_seconds() == 20 * 60

    @pytest.mark.parametrize(("action", "body"), [("accept", {"owner_id": "ann"}), ("close", {})])
    async def test_no_warning_after_accept_or_close(
        self, settings: Settings, clean: None, clock: FakeClock, action: str, body: dict[str, str]
    ) -> None:
        async with instance(settings, sla_rules(30), clock, sla_warn_before_minutes=10) as client:
            await team(client)
            lead_id = (await post_one(client, lead(1)))["lead_id"]
            clock.advance(minutes=5)
            r = await client.post(f"/v1/assignments/{lead_id}/{action}", json=body)
            assert r.status_code == 200, r.text
            clock.advance(minutes=20)
            assert await warn(client) == 0
        assert await warnings_of(settings, lead_id) == []

    async def test_a_reassignment_moves_the_warning_to_the_new_owner_and_time(
        self, settings: Settings, clean: None, clock: FakeClock
    ) -> None:
        async with instance(settings, sla_rules(30), clock, sla_warn_before_minutes=10) as client:
            await owner(client, "ann")
            await owner(client, "ben")
            await pool(client, "sales", ["ann", "ben"])
            lead_id = (await post_one(client, lead(1)))["lead_id"]
            first = (await get_lead(client, lead_id))["owner"]
            clock.advance(minutes=15)
            r = await client.post(f"/v1/assignments/{lead_id}/reassign", json={})
            assert r.status_code == 200, r.text
            second = (await get_lead(client, lead_id))["owner"]
            assert second != first
            clock.advance(minutes=10)  # the first owner's warning time (20 min) has passed
            assert await warn(client) == 0
            clock.advance(minutes=10)  # 20 minutes into the second owner's SLA
            assert await warn(client) == 1
        [given] = await warnings_of(settings, lead_id)
        assert given["owner"] == second

    async def test_no_warning_once_the_deadline_passed(
        self, settings: Settings, clean: None, clock: FakeClock
    ) -> None:
        """A scheduler that was down past the deadline breaches, without a late "about to" warning."""
        async with instance(settings, sla_rules(30), clock, sla_warn_before_minutes=10) as client:
            await team(client)
            lead_id = (await post_one(client, lead(1)))["lead_id"]
            clock.advance(minutes=31)
            assert await warn(client) == 0
            assert await fire(client) == 1
        assert await warnings_of(settings, lead_id) == []

    async def test_off_when_not_shorter_than_the_sla(
        self, settings: Settings, clean: None, clock: FakeClock
    ) -> None:
        async with instance(settings, sla_rules(10), clock, sla_warn_before_minutes=10) as client:
            await team(client)
            lead_id = (await post_one(client, lead(1)))["lead_id"]
            for _ in range(10):
                clock.advance(minutes=1)
                assert await warn(client) == 0
        async with connection(settings) as conn:
            assert await conn.fetchval("SELECT warn_at FROM sla_timers WHERE lead_id = $1", lead_id) is None

    async def test_a_failing_warning_is_dropped_and_does_not_block_the_others(
        self, settings: Settings, clean: None, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        real = LeadSlaWarning

        def broken_for_ann(**fields: Any) -> Any:
            if fields["owner"] == "ann":
                raise ValueError("a bug")
            return real(**fields)

        async with instance(settings, sla_rules(30), clock, sla_warn_before_minutes=10) as client:
            await owner(client, "ann")
            await owner(client, "ben")
            await pool(client, "sales", ["ann", "ben"])
            leads = [(await post_one(client, lead(n)))["lead_id"] for n in (1, 2)]
            clock.advance(minutes=21)
            monkeypatch.setattr(scheduler, "LeadSlaWarning", broken_for_ann)
            assert await warn(client) == 1  # ben's, after ann's failed
            monkeypatch.setattr(scheduler, "LeadSlaWarning", real)
            assert await warn(client) == 0  # ann's was dropped, not retried every pass
            clock.advance(minutes=10)
            assert await fire(client) == 2  # the breaches still come
        given = [await warnings_of(settings, lead_id) for lead_id in leads]
        assert sorted(len(g) for g in given) == [0, 1]

    async def test_two_instances_warn_each_lead_once(
        self, settings: Settings, clean: None, clock: FakeClock
    ) -> None:
        async with instance(settings, sla_rules(30), clock, sla_warn_before_minutes=10) as client:
            await owner(client, "ann")
            await owner(client, "ben")
            await pool(client, "sales", ["ann", "ben"])
            leads = [(await post_one(client, lead(n)))["lead_id"] for n in range(1, 13)]
            clock.advance(minutes=21)
            async with instance(settings, sla_rules(30), clock, sla_warn_before_minutes=10) as other:
                counts = await asyncio.gather(*(warn(c) for c in (client, other, client, other)))
                assert sum(counts) == 12
                assert await warn(client) + await warn(other) == 0
        async with connection(settings) as conn:
            per_lead = await conn.fetch(
                "SELECT lead_id, count(*) AS n FROM lead_events"
                " WHERE kind = 'lead.sla_warning' GROUP BY lead_id"
            )
        assert sorted(str(r["lead_id"]) for r in per_lead) == sorted(leads)
        assert {r["n"] for r in per_lead} == {1}


class TestWarningAlerts:
    async def test_slack_tells_the_rep_with_a_mention_and_the_escalation_target(
        self, settings: Settings, clean: None, clock: FakeClock
    ) -> None:
        with receiver() as slack, receiver() as hooks:
            overrides = {
                "slack_webhook_url": slack.url,
                "public_url": PUBLIC,
                "sla_warn_before_minutes": 10,
                "webhook_allow_private": True,
            }
            async with instance(settings, sla_rules(30), clock, **overrides) as client:
                endpoint = await create_endpoint(client, hooks.url, ["lead.sla_warning"])
                await team(client)
                lead_id = (await post_one(client, lead(1, phone="+1 415 555 0100")))["lead_id"]
                due = (await get_lead(client, lead_id))["workflow"]["sla"]["due_at"]
                await relay_pass(client)
                clock.advance(minutes=20)
                assert await warn(client) == 1
                summary = (await explain(client, lead_id))["summary"]
                await relay_pass(client)
        link = f"{PUBLIC}/v1/leads/{lead_id}/explain"
        texts = [r.json()["text"] for r in slack.requests]
        assert texts[1:] == [
            f"<@U0ANN1>, lead {lead_id} must be accepted within 10 minutes (by {due})\n{summary}\n{link}",
            f"Heads-up for Boss: Ann has 10 minutes left to accept lead {lead_id} in sales (by {due})\n"
            f"{summary}\n{link}",
        ]
        assert all("5550100" not in t for t in texts)
        [hook] = hooks.requests
        body = verified(hook, endpoint["secret"])
        assert body["type"] == "lead.sla_warning"
        assert body["data"]["lead_id"] == lead_id
        assert body["data"]["event"]["minutes_left"] == 10
        assert body["data"]["event"]["due_at"] == due
        assert body["data"]["owner"]["id"] == "ann"
        assert iso(clock.now) == body["timestamp"]

    async def test_email_tells_the_rep_and_the_escalation_target_by_name(
        self, settings: Settings, clean: None, clock: FakeClock
    ) -> None:
        with smtp_server() as (port, inbox):
            overrides: dict[str, Any] = {
                "smtp_host": "127.0.0.1",
                "smtp_port": port,
                "smtp_from": "leadroute@corp.example",
                "smtp_starttls": False,
                "public_url": PUBLIC,
                "sla_warn_before_minutes": 10,
            }
            async with instance(settings, sla_rules(30), clock, **overrides) as client:
                await team(client)
                lead_id = (await post_one(client, lead(1)))["lead_id"]
                due = (await get_lead(client, lead_id))["workflow"]["sla"]["due_at"]
                await relay_pass(client)
                clock.advance(minutes=20)
                assert await warn(client) == 1
                await relay_pass(client)
        warned = [(env.rcpt_tos, msg["Subject"]) for env, msg in inbox.mails[1:]]
        assert warned == [
            (["ann@corp.example"], f"Ann, lead {lead_id} must be accepted within 10 minutes (by {due})"),
            (
                ["boss@corp.example"],
                f"Heads-up for Boss: Ann has 10 minutes left to accept lead {lead_id} in sales (by {due})",
            ),
        ]


class TestWarningTime:
    """When a timer warns (pure): N minutes before the deadline, in working hours when it counts them."""

    PARIS = Member(
        id="emma",
        timezone="Europe/Paris",
        working_hours={d: ["09:00-17:00"] for d in ["mon", "tue", "wed", "thu", "fri"]},
    )

    def config(self, business_hours: bool) -> RoutingConfig:
        sales = PoolConfig(
            id="sales", strategy="round_robin", fallback="unassigned", sla_business_hours=business_hours
        )
        return RoutingConfig(
            version=1, pools={"sales": sales}, rosters={"sales": (self.PARIS,)}, owners={"emma": self.PARIS}
        )

    def test_wall_clock(self) -> None:
        start = datetime(2026, 11, 23, 15, 50, tzinfo=UTC)  # Monday 16:50 in Paris
        due = timer_due(
            self.config(False),
            "sales",
            "emma",
            Sla(accept_within_minutes=30, on_breach="reassign"),
            start,
            warn_before=10,
        )
        assert due is not None
        assert (due.due - start, due.warn) == (timedelta(minutes=30), start + timedelta(minutes=20))

    def test_working_hours_count_backwards_from_the_deadline_too(self) -> None:
        start = datetime(2026, 11, 23, 15, 50, tzinfo=UTC)  # Monday 16:50 in Paris, 10 minutes left
        due = timer_due(
            self.config(True),
            "sales",
            "emma",
            Sla(accept_within_minutes=30, on_breach="reassign"),
            start,
            warn_before=10,
        )
        assert due is not None
        assert due.due == datetime(2026, 11, 24, 8, 20, tzinfo=UTC)  # Tuesday 09:20 Paris
        assert due.warn == datetime(2026, 11, 24, 8, 10, tzinfo=UTC)  # Tuesday 09:10, not Monday night

    def test_none_when_the_sla_is_not_longer_than_the_lead_time(self) -> None:
        start = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
        for minutes, before in ((10, 10), (5, 10), (30, 0)):
            sla = Sla(accept_within_minutes=minutes, on_breach="reassign")
            due = timer_due(self.config(False), "sales", "emma", sla, start, warn_before=before)
            assert due is not None
            assert due.warn is None
