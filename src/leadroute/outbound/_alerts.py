"""Alerts for people: Slack messages and emails when a lead needs a rep, driven by the relay.

Two connectors like the CRM ones (:mod:`._crm`): ``slack`` (``LEADROUTE_SLACK_WEBHOOK_URL``, a
Slack incoming webhook) and ``email`` (``LEADROUTE_SMTP_*``), each on when its settings are, with
the same deliveries, per-lead order, retries and delivery log as a webhook. What each event says
(the words come from :mod:`._templates`):

- ``lead.assigned``, ``lead.reassigned``, ``lead.escalated``: "new lead for you" to the owner, with
  the one-line summary of ``explain`` and a link to it (``LEADROUTE_PUBLIC_URL``);
- ``lead.sla_warning`` (``LEADROUTE_SLA_WARN_BEFORE_MINUTES`` before the deadline) and
  ``lead.sla_breached``: to the owner, and to the pool's ``escalate_to``;
- ``lead.queued``: to the Slack channel, and by email to ``LEADROUTE_ALERT_QUEUE_EMAILS``, once,
  when the pool's queue is longer than ``LEADROUTE_ALERT_QUEUE_THRESHOLD``; announced again only
  after a lead is queued with the queue at or below it. Each connector's announcement and its
  "announced" row commit together, so two instances never both announce one crossing.

Who a message is for (``$rep``): in Slack, ``<@U…>`` (a mention, so Slack notifies them) when the
owner has a ``slack_user_id``, else their name (the incoming webhook posts to its one channel); in
an email, their name, sent to their ``email`` (an owner without one is *skipped*). Nothing else
about the lead leaves: the summary and the link, never its contact details.

A delivery with two messages (a breach) sends both again if the second fails: at least once.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import asyncpg
import httpx

from leadroute.config import Settings
from leadroute.errors import NotFound
from leadroute.outbound._send import Outcome, request
from leadroute.outbound._templates import Templates
from leadroute.store.db import Connection
from leadroute.store.queries import QUERIES
from leadroute.workflow.story import explain

__all__ = ["Alert", "Email", "Slack", "alerts_for", "queue_alert"]

_PLACED = ("lead.assigned", "lead.reassigned", "lead.escalated")
_SLA = ("lead.sla_warning", "lead.sla_breached")


@dataclass(frozen=True, slots=True)
class Alert:
    """One message for ``to``: an owner's id (an escalation may name a pool, which has no address)."""

    to: str
    text: str


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return str(value) if value is not None else ""


async def _summary(conn: Connection, lead_id: uuid.UUID) -> str:
    try:
        return (await explain(conn, lead_id)).summary
    except NotFound:
        return ""


async def _rep(conn: Connection, ident: str, *, mention: bool) -> tuple[str, str]:
    """How a message addresses ``ident``: (``<@U…>`` when mentioning and known, else the name;
    the name). A pool or an unknown id is its id."""
    row = await conn.fetchrow(QUERIES["alert_owner"], ident)
    if row is None:
        return ident, ident
    if mention and row["slack_user_id"]:
        return f"<@{row['slack_user_id']}>", row["name"]
    return row["name"], row["name"]


def _link(settings: Settings, lead_id: Any) -> str:
    return f"{settings.public_url.rstrip('/')}/v1/leads/{lead_id}/explain"


async def alerts_for(
    conn: Connection, job: Any, templates: Templates, settings: Settings, *, mention: bool = False
) -> list[Alert]:
    """The messages one delivery (a row of ``outbound_jobs``) makes for people; [] for none.
    ``mention``: address Slack users as ``<@U…>``. ``lead.queued`` is not here (:func:`queue_alert`)."""
    kind: str = job["event_type"]
    payload: dict[str, Any] = job["payload"]
    owner = payload.get("owner")
    if owner is None or kind not in (*_PLACED, *_SLA):
        return []
    lead_id = job["lead_id"]
    rep, name = await _rep(conn, str(owner), mention=mention)
    fields = {
        "owner": str(owner),
        "owner_name": name,
        "rep": rep,
        "lead_id": str(lead_id),
        "summary": await _summary(conn, lead_id),
        "link": _link(settings, lead_id),
        "pool": str(payload.get("pool") or ""),
        "due_at": _iso(payload.get("sla_due_at") or payload.get("due_at")),
        "minutes_left": str(payload.get("minutes_left") or ""),
    }
    if kind in _PLACED:
        return [Alert(str(owner), templates.render(kind, fields))]
    pool = await conn.fetchrow(QUERIES["alert_breached_pool"], lead_id, job["event_seq"])
    fields["pool"] = pool["id"] if pool is not None else fields["pool"]
    alerts = [Alert(str(owner), templates.render(kind, fields))]
    if pool is not None and pool["escalate_to"] is not None:
        target = pool["escalate_to"]
        fields["escalate_to"] = target
        fields["rep"], _ = await _rep(conn, target, mention=mention)
        alerts.append(Alert(target, templates.render(f"{kind}.escalation", fields)))
    return alerts


class _NotSent(Exception):
    """The queue alert failed: undo its "announced" row (see :func:`queue_alert`)."""

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome


async def queue_alert(
    db: asyncpg.Pool,
    settings: Settings,
    templates: Templates,
    job: Any,
    send: Callable[[str], Awaitable[Outcome]],
) -> Outcome:
    """``lead.queued``: ``send`` the "queue is long" text once per crossing of the threshold, per
    connector (``job["endpoint_id"]``), across every instance."""
    threshold = settings.alert_queue_threshold
    pool = job["payload"].get("pool")
    if threshold is None or pool is None:
        return Outcome("skipped", None, "no queue threshold set, or no pool")
    endpoint = job["endpoint_id"]
    async with db.acquire() as conn:
        count: int = await conn.fetchval(QUERIES["alert_queue_length"], pool)
        if count <= threshold:
            await conn.execute(QUERIES["alert_queue_rearm"], endpoint, pool)
            return Outcome("skipped", None, f"{count} waiting in {pool}, not over {threshold}")
        fields = {
            "pool": pool,
            "queue": str(job["payload"].get("queue") or ""),
            "count": str(count),
            "lead_id": str(job["lead_id"]),
            "link": _link(settings, job["lead_id"]),
        }
        try:
            # the row and the message stand or fall together: the row lock makes a second
            # instance wait for this message, then find the crossing announced
            async with conn.transaction():
                if await conn.fetchval(QUERIES["alert_queue_claim"], endpoint, pool, job["received_at"]):
                    outcome = await send(templates.render("lead.queued", fields))
                    if outcome.result != "delivered":
                        raise _NotSent(outcome)
                    return outcome
        except _NotSent as failed:
            return failed.outcome
    return Outcome("skipped", None, f"the long queue of {pool} was already announced")


class Slack:
    """Posts ``{"text": ...}`` to the Slack incoming webhook: one post per :class:`Alert`."""

    def __init__(
        self, client: httpx.AsyncClient, db: asyncpg.Pool, settings: Settings, templates: Templates
    ) -> None:
        assert settings.slack_webhook_url is not None
        self._client = client
        self._db = db
        self._url = settings.slack_webhook_url
        self._settings = settings
        self._templates = templates

    async def _post(self, text: str) -> Outcome:
        return await request(
            self._client, "POST", self._url, headers={"content-type": "application/json"}, json={"text": text}
        )

    async def send(self, job: Any) -> Outcome:
        if job["event_type"] == "lead.queued":
            return await queue_alert(self._db, self._settings, self._templates, job, self._post)
        async with self._db.acquire() as conn:
            alerts = await alerts_for(conn, job, self._templates, self._settings, mention=True)
        if not alerts:
            return Outcome("skipped", None, f"{job['event_type']} names no owner to alert")
        outcome = Outcome("skipped")
        for alert in alerts:
            outcome = await self._post(alert.text)
            if outcome.result != "delivered":
                return outcome
        return outcome


class Email:
    """Sends each :class:`Alert` for an owner to their ``email`` over SMTP (``smtplib`` in a thread:
    a few mails a minute do not need an async SMTP client)."""

    def __init__(self, db: asyncpg.Pool, settings: Settings, templates: Templates) -> None:
        assert settings.smtp_host is not None
        assert settings.smtp_from is not None
        self._db = db
        self._settings = settings
        self._templates = templates

    async def send(self, job: Any) -> Outcome:
        if job["event_type"] == "lead.queued":
            if not self._settings.queue_emails:
                return Outcome("skipped", None, "no LEADROUTE_ALERT_QUEUE_EMAILS to tell")
            return await queue_alert(self._db, self._settings, self._templates, job, self._queue_mails)
        mails: list[EmailMessage] = []
        async with self._db.acquire() as conn:
            for alert in await alerts_for(conn, job, self._templates, self._settings):
                row = await conn.fetchrow(QUERIES["alert_owner"], alert.to)
                if row is not None and row["email"]:
                    mails.append(self._mail(row["email"], alert.text))
        if not mails:
            return Outcome("skipped", None, "no owner with an email to alert")
        return await self._send_mails(mails)

    async def _queue_mails(self, text: str) -> Outcome:
        return await self._send_mails([self._mail(to, text) for to in self._settings.queue_emails])

    async def _send_mails(self, mails: list[EmailMessage]) -> Outcome:
        try:
            await asyncio.to_thread(self._deliver, mails)
        except smtplib.SMTPResponseException as exc:
            return Outcome("retry", None, f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"[:512])
        except (smtplib.SMTPException, OSError) as exc:
            return Outcome("retry", None, f"{type(exc).__name__}: {exc}"[:512])
        return Outcome("delivered", None, None, f"{len(mails)} mail(s) accepted")

    def _mail(self, to: str, text: str) -> EmailMessage:
        subject, _, _ = text.partition("\n")
        mail = EmailMessage()
        mail["From"] = self._settings.smtp_from
        mail["To"] = to
        mail["Subject"] = subject
        mail.set_content(text + "\n")
        return mail

    def _deliver(self, mails: list[EmailMessage]) -> None:
        s = self._settings
        assert s.smtp_host is not None
        with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.webhook_timeout) as smtp:
            if s.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if s.smtp_user is not None and s.smtp_password is not None:
                smtp.login(s.smtp_user, s.smtp_password)
            for mail in mails:
                smtp.send_message(mail)
