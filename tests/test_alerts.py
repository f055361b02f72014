"""Alerts for people: Slack incoming-webhook messages and SMTP emails from the outbound relay,
against a local Slack receiver (the exact JSON) and a local SMTP server (aiosmtpd)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from conftest import FakeClock
from leadroute.config import Settings, SettingsError
from leadroute.outbound._templates import load_templates
from leadroute.store.owners_file import import_owners, load_owners_file
from outbound_support import Answer, Request, receiver, relay_pass, smtp_server
from sla_support import fire, instance, sla_rules
from support import Client, authed, connection, explain, fetch, get_lead, lead, owner, pool, post_one

PUBLIC = "https://leadroute.example.com"


async def team(client: Client) -> None:
    """ann sells in pool sales (one lead at a time; Slack member U0ANN1); boss (no Slack id) is its
    escalate_to."""
    await owner(client, "ann", email="ann@corp.example", capacity={"max_open": 1}, slack_user_id="U0ANN1")
    await owner(client, "boss", email="boss@corp.example")
    await pool(client, "sales", ["ann"], escalate_to="boss")


async def assigned_then_breached(client: Client, clock: FakeClock) -> tuple[str, str, str]:
    """A lead assigned to ann who lets its SLA run out: its id, summary (as assigned) and due time."""
    await team(client)
    decision = await post_one(client, lead(1, phone="+1 415 555 0100"))
    lead_id = decision["lead_id"]
    summary = (await explain(client, lead_id))["summary"]
    due = (await get_lead(client, lead_id))["workflow"]["sla"]["due_at"]
    await relay_pass(client)
    clock.advance(minutes=31)
    assert await fire(client) == 1
    await relay_pass(client)
    return lead_id, summary, due


class TestSlack:
    """The rep's message on assignment and breach, the escalation target's, the queue alert once."""

    async def test_assigned_and_breached_tell_the_rep_and_the_escalation(
        self, settings: Settings, clean: None, clock: FakeClock
    ) -> None:
        with receiver() as slack:
            overrides = {"slack_webhook_url": slack.url + "/services/T0/B0/x", "public_url": PUBLIC}
            async with instance(settings, sla_rules(30), clock, **overrides) as client:
                lead_id, summary, due = await assigned_then_breached(client, clock)
                breach_summary = (await explain(client, lead_id))["summary"]
                log = (await client.get("/v1/webhooks/slack/attempts")).json()
        link = f"{PUBLIC}/v1/leads/{lead_id}/explain"
        assigned, breached, escalation = slack.requests[:3]
        for req in slack.requests:
            assert (req.method, req.path) == ("POST", "/services/T0/B0/x")
            assert req.headers["content-type"] == "application/json"
            assert "5550100" not in req.body.decode()  # never the lead's phone
        assert assigned.json() == {"text": f"New lead for you, <@U0ANN1>\n{summary}\n{link}"}
        assert breached.json() == {
            "text": f"<@U0ANN1>, lead {lead_id} was not accepted by {due}\n{breach_summary}\n{link}"
        }
        assert escalation.json() == {
            "text": f"Escalation for Boss: Ann did not accept lead {lead_id} in sales by {due}\n"
            f"{breach_summary}\n{link}"
        }
        outcomes = [(a["type"], a["outcome"]) for a in reversed(log)]
        assert outcomes[:2] == [("lead.assigned", "delivered"), ("lead.sla_breached", "delivered")]

    async def test_a_queue_past_the_threshold_is_announced_once(
        self, settings: Settings, clean: None, clock: FakeClock
    ) -> None:
        with receiver() as slack:
            overrides = {"slack_webhook_url": slack.url, "public_url": PUBLIC, "alert_queue_threshold": 2}
            async with instance(settings, sla_rules(30), clock, **overrides) as client:
                await team(client)
                for n in range(1, 6):  # ann takes the first; 2..5 wait: 4 in the queue
                    await post_one(client, lead(n))
                    await relay_pass(client)
                waiting = await fetch(
                    settings, "SELECT count(*) AS n FROM assignments WHERE ended_at IS NULL AND waiting"
                )
                log = (await client.get("/v1/webhooks/slack/attempts")).json()
        assert waiting[0]["n"] == 4
        channel = [r.json()["text"] for r in slack.requests if r.json()["text"].startswith("Queue")]
        assert len(channel) == 1
        assert channel[0].startswith("Queue of pool sales is long: 3 leads waiting\n")
        queued = [(a["outcome"], a["error"]) for a in reversed(log) if a["type"] == "lead.queued"]
        assert [o for o, _ in queued] == ["skipped", "skipped", "delivered", "skipped"]
        assert queued[-1][1] == "the long queue of sales was already announced"

    async def test_429_with_retry_after_is_tried_again_later(
        self, settings: Settings, clean: None, clock: FakeClock
    ) -> None:
        def answer(_req: Request, n: int) -> Answer:
            if n == 0:
                return Answer(429, {"Retry-After": "30"}, b"rate_limited")
            return Answer(200, {}, b"ok")

        with receiver(answer) as slack:
            async with instance(settings, sla_rules(30), clock, slack_webhook_url=slack.url) as client:
                await team(client)
                await post_one(client, lead(1))
                await relay_pass(client)
                rows = await fetch(
                    settings, "SELECT next_at FROM outbound_deliveries WHERE endpoint_id = 'slack'"
                )
                waited = (rows[0]["next_at"] - clock.now).total_seconds()
                assert 30 <= waited < 31  # Retry-After, longer than the first backoff (5 s)
                await relay_pass(client)
                assert len(slack.requests) == 1  # not due yet
                clock.advance(seconds=31)
                await relay_pass(client)
                log = (await client.get("/v1/webhooks/slack/attempts")).json()
        first, retried = slack.wait_for(2)
        assert first.body == retried.body
        assert [(a["outcome"], a["status_code"]) for a in reversed(log)] == [
            ("failed", 429),
            ("delivered", 200),
        ]


class TestTemplates:
    """Templates are checked at start-up: a bad one stops it, naming the template and the field."""

    def test_the_shipped_templates_load(self) -> None:
        load_templates(None)

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("Call $phone now", r"template 'lead.assigned': unknown field \$phone"),
            ("Costs $5", r"template 'lead.assigned': Invalid placeholder"),
        ],
    )
    def test_a_bad_template_is_a_start_up_error(self, tmp_path: Path, text: str, message: str) -> None:
        path = tmp_path / "alerts.yaml"
        shipped = Path(__file__).parents[1] / "src/leadroute/outbound/alerts.yaml"
        path.write_text(shipped.read_text().replace("New lead for you, $rep\n", text + "\n", 1))
        environ = {
            "LEADROUTE_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/x",
            "LEADROUTE_ALERT_TEMPLATES": str(path),
        }
        with pytest.raises(SettingsError, match=message):
            Settings.from_env(environ)

    def test_a_missing_template_is_named(self, tmp_path: Path) -> None:
        path = tmp_path / "alerts.yaml"
        path.write_text("lead.assigned: hi $owner\n")
        with pytest.raises(SettingsError, match=r"template 'lead\.reassigned' is missing"):
            load_templates(path)


class TestEmail:
    """The same alerts by email: to the owner's address, the escalation to escalate_to's."""

    async def test_assigned_and_breached_mail_the_rep_and_the_escalation(
        self, settings: Settings, clean: None, clock: FakeClock
    ) -> None:
        with smtp_server() as (port, inbox):
            overrides: dict[str, Any] = {
                "smtp_host": "127.0.0.1",
                "smtp_port": port,
                "smtp_from": "leadroute@corp.example",
                "smtp_starttls": False,
                "public_url": PUBLIC,
            }
            async with instance(settings, sla_rules(30), clock, **overrides) as client:
                lead_id, summary, due = await assigned_then_breached(client, clock)
                breach_summary = (await explain(client, lead_id))["summary"]
        link = f"{PUBLIC}/v1/leads/{lead_id}/explain"
        got = [
            (env.rcpt_tos, msg["From"], msg["To"], msg["Subject"], msg.get_content().replace("\r\n", "\n"))
            for env, msg in inbox.mails
        ]
        assert got[:3] == [
            (
                ["ann@corp.example"],
                "leadroute@corp.example",
                "ann@corp.example",
                "New lead for you, Ann",
                f"New lead for you, Ann\n{summary}\n{link}\n",
            ),
            (
                ["ann@corp.example"],
                "leadroute@corp.example",
                "ann@corp.example",
                f"Ann, lead {lead_id} was not accepted by {due}",
                f"Ann, lead {lead_id} was not accepted by {due}\n{breach_summary}\n{link}\n",
            ),
            (
                ["boss@corp.example"],
                "leadroute@corp.example",
                "boss@corp.example",
                f"Escalation for Boss: Ann did not accept lead {lead_id} in sales by {due}",
                f"Escalation for Boss: Ann did not accept lead {lead_id} in sales by {due}\n"
                f"{breach_summary}\n{link}\n",
            ),
        ]
        for _env, msg in inbox.mails:
            assert "5550100" not in msg.as_string()

    async def test_a_queue_past_the_threshold_is_mailed_once_across_instances(
        self, settings: Settings, clean: None, clock: FakeClock
    ) -> None:
        with smtp_server() as (port, inbox):
            overrides: dict[str, Any] = {
                "smtp_host": "127.0.0.1",
                "smtp_port": port,
                "smtp_from": "leadroute@corp.example",
                "smtp_starttls": False,
                "public_url": PUBLIC,
                "alert_queue_threshold": 2,
                "alert_queue_emails": "ops@corp.example, sales-leads@corp.example",
            }
            async with (
                instance(settings, sla_rules(30), clock, **overrides) as client,
                instance(settings, sla_rules(30), clock, **overrides) as other,
            ):
                await team(client)
                for n in range(1, 7):  # ann takes the first; 2..6 wait: 5 in the queue
                    await post_one(client, lead(n))
                    await asyncio.gather(relay_pass(client), relay_pass(other))
                log = (await client.get("/v1/webhooks/email/attempts")).json()
        queue_mails = [(env.rcpt_tos, msg) for env, msg in inbox.mails if msg["Subject"].startswith("Queue")]
        assert [(to, msg["To"]) for to, msg in queue_mails] == [
            (["ops@corp.example"], "ops@corp.example"),
            (["sales-leads@corp.example"], "sales-leads@corp.example"),
        ]
        assert all(msg["Subject"] == "Queue of pool sales is long: 3 leads waiting" for _, msg in queue_mails)
        queued = [a["outcome"] for a in reversed(log) if a["type"] == "lead.queued"]
        assert queued.count("delivered") == 1
        assert len(queued) == 5

    def test_queue_emails_need_smtp(self) -> None:
        with pytest.raises(SettingsError, match="LEADROUTE_ALERT_QUEUE_EMAILS: needs LEADROUTE_SMTP_HOST"):
            Settings.from_env({"LEADROUTE_ALERT_QUEUE_EMAILS": "ops@corp.example"})
        with pytest.raises(SettingsError, match="'not-an-address' is not an email address"):
            Settings.from_env(
                {
                    "LEADROUTE_SMTP_HOST": "mail",
                    "LEADROUTE_SMTP_FROM": "a@b.example",
                    "LEADROUTE_ALERT_QUEUE_EMAILS": "ops@corp.example,not-an-address",
                }
            )


class TestMentions:
    """Owners' Slack member ids: stored through the API and the owners file, checked."""

    async def test_the_api_stores_and_checks_slack_user_id(self, make_app: Any) -> None:
        async with authed(make_app()) as client:
            made = await owner(client, "ann", slack_user_id="U024BE7LH")
            assert made["slack_user_id"] == "U024BE7LH"
            r = await client.patch("/v1/owners/ann", json={"slack_user_id": None})
            assert r.status_code == 200, r.text
            assert r.json()["slack_user_id"] is None
            r = await client.put("/v1/owners/bob", json={"name": "Bob", "slack_user_id": "@bob"})
            assert r.status_code in (400, 422), r.text
            assert "slack_user_id" in r.text

    async def test_the_owners_file_carries_slack_user_id(
        self, tmp_path: Path, settings: Settings, clean: None
    ) -> None:
        yaml_file = tmp_path / "owners.yaml"
        yaml_file.write_text("owners:\n  - {id: ann, name: Ann, slack_user_id: U0ANN1}\n")
        csv_file = tmp_path / "owners.csv"
        csv_file.write_text("id,name,slack_user_id\nben,Ben,W0BEN2\ncid,Cid,\n")
        async with connection(settings) as conn:
            await import_owners(conn, load_owners_file(yaml_file))
            await import_owners(conn, load_owners_file(csv_file))
            rows = await conn.fetch("SELECT id, slack_user_id FROM owners ORDER BY id")
        assert [(r["id"], r["slack_user_id"]) for r in rows] == [
            ("ann", "U0ANN1"),
            ("ben", "W0BEN2"),
            ("cid", None),
        ]
