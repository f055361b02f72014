"""The relay every instance runs: fan the log out (:mod:`._fanout`), then send what is due.

Sending, per pass:

1. claim due deliveries ``FOR UPDATE SKIP LOCKED`` (:data:`QUERIES` ``outbound_claim``): each is
   the earliest pending event of its lead for its endpoint, so a lead's later event never
   overtakes an earlier one at the same endpoint. The claim commits at once and pushes the
   delivery's ``next_at`` forward by a lease (:meth:`Relay.lease`): no connection is held while
   waiting on a receiver, and if this process dies mid-send (kill -9) the delivery simply comes
   due again when the lease ends and another instance sends it (same ``webhook-id``): at least
   once, never lost;
2. send each (a webhook, or a CRM connector's write) with at most ``LEADROUTE_OUTBOUND_CONCURRENCY``
   in flight, each within its time limit;
3. settle it in one transaction with its line in the delivery log: delivered; failed and due
   again after the next step of :data:`BACKOFF` (with jitter, or the receiver's ``Retry-After`` if
   longer); dead after the last step (~3 days); a 410 disables the endpoint (its pending
   deliveries wait for it to be enabled again); skipped (a connector with nothing to write).

Nothing here runs on a request's path: intake only appends to the log in its own transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, Final, Protocol

import httpx

from leadroute.outbound._alerts import Email, Slack
from leadroute.outbound._crm import HubSpot, Salesforce
from leadroute.outbound._endpoints import active_secrets, sync_connectors
from leadroute.outbound._fanout import fan_out
from leadroute.outbound._payload import webhook_body, webhook_id
from leadroute.outbound._send import EXCERPT, Outcome, Resolver, send_webhook, system_resolver
from leadroute.outbound._templates import load_templates
from leadroute.runtime import Runtime
from leadroute.store.queries import QUERIES
from leadroute.vault import SealedSecretError, keyring, seal_stored_secrets

__all__ = ["BACKOFF", "Relay", "relay"]

log = logging.getLogger(__name__)

BACKOFF: Final = tuple(
    timedelta(seconds=s)
    for s in (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 14 * 3600, 20 * 3600, 24 * 3600)
)
"""The wait after each failed attempt (Standard Webhooks' example schedule): 10 attempts over
~75 hours; a delivery whose 10th attempt fails is dead."""
JITTER: Final = 0.2
"""Each wait is stretched or shrunk by up to this fraction, so retries of many deliveries spread."""
BATCH: Final = 100
"""Deliveries one claim takes at most."""


class Sender(Protocol):
    async def send(self, job: Any) -> Outcome: ...


class Relay:
    """One instance's outbound relay: its HTTP client, its connectors, its pass."""

    def __init__(self, rt: Runtime) -> None:
        settings = rt.settings
        self.rt = rt
        self.client = httpx.AsyncClient(
            timeout=settings.webhook_timeout,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=settings.outbound_concurrency * 2),
        )
        self.ring = keyring(settings)
        self.resolve: Resolver = system_resolver
        """How webhook hosts are resolved (once per delivery, then pinned); tests replace it."""
        self.connectors: dict[str, Sender] = {}
        if settings.hubspot_token is not None:
            self.connectors["hubspot"] = HubSpot(self.client, settings)
        if settings.salesforce_client_id is not None:
            self.connectors["salesforce"] = Salesforce(self.client, settings)
        if settings.slack_webhook_url is not None or settings.smtp_host is not None:
            templates = load_templates(settings.alert_templates)  # a bad one stops start-up
            if settings.slack_webhook_url is not None:
                self.connectors["slack"] = Slack(self.client, rt.db, settings, templates)
            if settings.smtp_host is not None:
                self.connectors["email"] = Email(rt.db, settings, templates)
        self._slots = asyncio.Semaphore(settings.outbound_concurrency)
        self._tasks: set[asyncio.Task[Outcome]] = set()

    @property
    def lease(self) -> timedelta:
        """How long a claimed delivery is this instance's: longer than the slowest send (a CRM
        write may fetch a token, and fetch one again after a 401)."""
        return timedelta(seconds=self.rt.settings.webhook_timeout * 3 + 5)

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.client.aclose()

    # -- one pass ---------------------------------------------------------------------------

    async def fan_out(self) -> int:
        """Fan new events of the log out to deliveries (one instance at a time does it)."""
        async with self.rt.db.acquire() as conn:
            return await fan_out(conn, self.rt.clock())

    async def claim(self, limit: int = BATCH) -> list[Any]:
        """Claim up to ``limit`` due deliveries; the rows :meth:`deliver` takes, in log order."""
        now = self.rt.clock()
        async with self.rt.db.acquire() as conn:
            claimed = await conn.fetch(QUERIES["outbound_claim"], now, now + self.lease, limit)
            if not claimed:
                return []
            return list(await conn.fetch(QUERIES["outbound_jobs"], [r["id"] for r in claimed]))

    async def run_once(self) -> int:
        """Fan out, then send everything due now and wait for it; returns the attempts made.
        (The background loop does the same without waiting: :meth:`run`.)"""
        await self.fan_out()
        attempts = 0
        while jobs := await self.claim():
            await asyncio.gather(*(self.deliver(job) for job in jobs))
            attempts += len(jobs)
        return attempts

    async def deliver(self, job: Any) -> Outcome:
        """Send one claimed delivery and settle it."""
        async with self._slots:
            outcome = await self._send(job)
        await self._settle(job, outcome)
        return outcome

    async def _send(self, job: Any) -> Outcome:
        settings = self.rt.settings
        limit = settings.webhook_timeout * (1 if job["kind"] == "webhook" else 3)
        try:
            async with asyncio.timeout(limit):
                if job["kind"] == "webhook":
                    return await send_webhook(
                        self.client,
                        url=job["url"],
                        msg_id=webhook_id(job["endpoint_id"], job["event_seq"]),
                        secrets=active_secrets(job["secrets"], self.rt.clock(), self.ring),
                        body=webhook_body(job),
                        allow_private=settings.webhook_allow_private,
                        resolve=self.resolve,
                    )
                connector = self.connectors.get(job["kind"])
                if connector is None:
                    return Outcome("retry", None, f"the {job['kind']} connector is not configured here")
                return await connector.send(job)
        except TimeoutError:
            return Outcome("retry", None, f"no answer within {limit:g} s")
        except SealedSecretError as exc:  # a key missing or wrong: retried once the key is set
            return Outcome("retry", None, str(exc))
        except Exception as exc:  # a bug or a surprise must not lose the delivery: retried later
            log.exception("outbound delivery %s failed unexpectedly", job["id"])
            return Outcome("retry", None, f"internal error: {type(exc).__name__}")

    async def _settle(self, job: Any, outcome: Outcome) -> None:
        now = self.rt.clock()
        attempt: int = job["attempts"]
        status, next_at = "pending", now
        logged: str = outcome.result
        match outcome.result:
            case "delivered" | "skipped":
                status = outcome.result
            case "gone":
                pass  # stays pending: it goes out if the endpoint is enabled again
            case "retry" if attempt > len(BACKOFF):
                status, logged = "dead", "dead"
            case _:
                wait = BACKOFF[attempt - 1] * random.uniform(1 - JITTER, 1 + JITTER)
                if outcome.retry_after is not None:
                    wait = max(wait, timedelta(seconds=outcome.retry_after))
                next_at, logged = now + wait, "failed"
        response = outcome.response[:EXCERPT] if outcome.response is not None else None
        async with self.rt.db.acquire() as conn, conn.transaction():
            await conn.execute(
                QUERIES["outbound_settle"],
                job["id"],
                attempt,
                status,
                next_at,
                outcome.status_code,
                outcome.error,
                now,
            )
            await conn.execute(
                QUERIES["outbound_attempt_insert"],
                job["id"],
                job["endpoint_id"],
                job["event_seq"],
                attempt,
                now,
                logged,
                outcome.status_code,
                outcome.error,
                outcome.latency_ms,
                response,
            )
            if outcome.result == "gone":
                reason = f"the receiver answered 410 Gone at {now.isoformat()}"
                await conn.execute(QUERIES["outbound_endpoint_disable"], job["endpoint_id"], reason, now)
        if status == "dead":
            log.warning(
                "outbound: event %s to %s is dead after %d attempts",
                job["event_seq"],
                job["endpoint_id"],
                attempt,
            )
        elif outcome.result == "gone":
            log.warning("outbound: endpoint %s answered 410 Gone and is disabled", job["endpoint_id"])

    # -- in the background ---------------------------------------------------------------------

    async def run(self, interval: float) -> None:
        """Every ``interval`` seconds: fan out, then start sending what is due, up to the
        concurrency limit, without waiting for slow receivers. Until cancelled."""
        while True:
            try:
                await self.fan_out()
                room = self.rt.settings.outbound_concurrency - len(self._tasks)
                jobs = await self.claim(min(room, BATCH)) if room > 0 else []
                for job in jobs:
                    task = asyncio.create_task(self.deliver(job), name=f"outbound-{job['id']}")
                    self._tasks.add(task)
                    task.add_done_callback(self._done)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("outbound pass failed (%s); the next pass tries again", type(exc).__name__)
                log.debug("outbound pass failed", exc_info=True)
                jobs = []
            if len(jobs) < BATCH:  # a full batch: more may be due, go on at once
                await asyncio.sleep(interval)

    def _done(self, task: asyncio.Task[Outcome]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("outbound delivery failed to settle: %r", task.exception())


@contextlib.asynccontextmanager
async def relay(rt: Runtime) -> AsyncIterator[Relay]:
    """The instance's relay while the app serves: connectors made to match the settings, the
    background loop running unless ``LEADROUTE_OUTBOUND_POLL_SECONDS`` is 0."""
    outbound = Relay(rt)
    async with rt.db.acquire() as conn:
        await conn.execute(QUERIES["outbound_relay_ensure"])  # the cursor, if a restore lost it
        enabled = await sync_connectors(conn, rt.settings, rt.clock())
        if outbound.ring is not None and (sealed := await seal_stored_secrets(conn, outbound.ring)):
            log.info("sealed the plain-text webhook secrets of %d endpoint(s) (LEADROUTE_SECRET_KEY)", sealed)
    if enabled:
        log.info("connectors on: %s", ", ".join(enabled))
    interval = rt.settings.outbound_poll_seconds
    task = asyncio.create_task(outbound.run(interval), name="leadroute-outbound") if interval > 0 else None
    try:
        yield outbound
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await outbound.aclose()
