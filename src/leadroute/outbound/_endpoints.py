"""Webhook endpoints and CRM connectors: what is stored, and the changes the API and CLI make.

An endpoint is a webhook (a URL, the event types it wants, its secrets) or a CRM connector (id
``hubspot`` or ``salesforce``, made and enabled by :func:`sync_connectors` from the settings at
start-up; the API shows them and redelivers to them but does not change them).

Secrets are Standard Webhooks symmetric keys, ``whsec_`` + base64 of 32 random bytes. Rotating
adds a new one and lets the old ones sign for a while longer (``keep_previous_hours``): during
that time every webhook carries one signature per secret, space-separated, so a receiver can move
to the new secret whenever it likes. Secrets are stored encrypted under ``LEADROUTE_SECRET_KEY``
(:mod:`leadroute.vault`: signing needs them back, so they are sealed, not hashed) and shown only
when made (create, rotate).

A new endpoint starts at the current end of the log: it gets the events that come after it, never
the history (redeliver a range for that). Events that happen while an endpoint is disabled are not
queued for it; deliveries already pending wait and go out when it is enabled again.

Why one module of ~410 lines: endpoints, their secrets and their delivery log are one table
family whose rules (read-only connectors, rotation, what redelivery may touch) are checked
together; the sending and the relay are elsewhere.
"""

from __future__ import annotations

import base64
import ipaddress
import secrets
from datetime import datetime, timedelta
from typing import Any, Final, Literal

import httpx
import msgspec

from leadroute.config import Settings
from leadroute.errors import ClientError, NotFound, WorkflowConflict
from leadroute.outbound._payload import ALERT_EVENTS, CRM_EVENTS, EVENT_TYPES, webhook_id
from leadroute.store.db import Connection
from leadroute.store.queries import QUERIES
from leadroute.structs import Struct
from leadroute.vault import Keyring, keyring, open_secret

__all__ = [
    "CONNECTORS",
    "REDELIVER_MAX",
    "Attempt",
    "ConnectorReadOnly",
    "Delivery",
    "Endpoint",
    "EndpointSecret",
    "InvalidWebhook",
    "Kind",
    "NewEndpoint",
    "SecretKeyMissing",
    "active_secrets",
    "attempts",
    "check_url",
    "create_webhook",
    "delete_webhook",
    "deliveries",
    "get_endpoint",
    "list_endpoints",
    "new_secret",
    "redeliver",
    "rotate_secret",
    "sync_connectors",
    "update_webhook",
]

Kind = Literal["webhook", "hubspot", "salesforce", "slack", "email"]
CONNECTORS: Final = ("hubspot", "salesforce", "slack", "email")
_SETTINGS: Final = {"hubspot": "HUBSPOT", "salesforce": "SALESFORCE", "slack": "SLACK", "email": "SMTP"}
REDELIVER_MAX: Final = 10_000
"""Events one redelivery request may cover at most (a longer outage: several requests)."""


class InvalidWebhook(ClientError):
    status = 422
    kind = "invalid-webhook"
    title = "Invalid webhook endpoint"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", errors=[{"field": field, "message": message}])


class ConnectorReadOnly(WorkflowConflict):
    kind = "connector-read-only"
    title = "CRM connectors are configured by the deployment"

    def __init__(self, ident: str) -> None:
        super().__init__(
            f"{ident!r} is a connector: it is configured with "
            f"LEADROUTE_{_SETTINGS.get(ident, ident.upper())}_* settings, "
            "not through the API (redelivery and the delivery log work as for webhooks)"
        )


class SecretKeyMissing(WorkflowConflict):
    kind = "secret-key-missing"
    title = "No key to encrypt webhook secrets with"

    def __init__(self) -> None:
        super().__init__(
            "webhook secrets are stored encrypted: set LEADROUTE_SECRET_KEY (`leadroute secrets "
            "generate-key` makes one) on every instance, then try again"
        )


def _ring(settings: Settings) -> Keyring:
    ring = keyring(settings)
    if ring is None:
        raise SecretKeyMissing
    return ring


class Endpoint(Struct, kw_only=True):
    """A webhook endpoint or a CRM connector, as the API shows it (never its secrets)."""

    id: str
    kind: Kind
    url: str | None
    description: str | None
    events: list[str]
    enabled: bool
    disabled_reason: str | None
    signing_secrets: int
    """How many secrets sign each webhook now (more than 1 while a rotation is under way)."""
    start_after: int
    """The log's sequence number when it was made: it gets the events after this one."""
    created_at: datetime
    updated_at: datetime


class NewEndpoint(Endpoint, kw_only=True):
    """An endpoint just made: the only time its secret is shown."""

    secret: str
    """``whsec_...``: give it to the receiver, which verifies every webhook with it."""


class EndpointSecret(Struct, kw_only=True):
    """A new secret after a rotation, and until when the previous ones keep signing."""

    id: str
    secret: str
    previous_expire_at: datetime | None
    signing_secrets: int


class Delivery(Struct, kw_only=True):
    """One event for one endpoint: its state and what the last attempt got."""

    event: int
    """The event's sequence number in the log."""
    type: str
    lead_id: str
    webhook_id: str
    status: Literal["pending", "delivered", "dead", "skipped"]
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    created_at: datetime
    done_at: datetime | None


class Attempt(Struct, kw_only=True):
    """One line of the delivery log."""

    event: int
    type: str
    attempt: int
    at: datetime
    outcome: str
    """``delivered``, ``failed`` (tried again later), ``dead`` (the last try failed), ``gone`` (410:
    the endpoint was disabled), ``skipped`` (a connector had nothing to write)."""
    status_code: int | None
    error: str | None
    latency_ms: float | None
    response: str | None
    """The first 512 characters of the answer's body."""


def new_secret() -> str:
    """A Standard Webhooks symmetric secret: ``whsec_`` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _unexpired(stored: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    return [s for s in stored if s.get("expires_at") is None or datetime.fromisoformat(s["expires_at"]) > now]


def active_secrets(stored: list[dict[str, Any]], now: datetime, ring: Keyring | None = None) -> list[str]:
    """The secrets that sign now: every stored one that has not expired, newest first, decrypted
    (:class:`leadroute.vault.SealedSecretError` when they cannot be)."""
    return [open_secret(s, ring) for s in _unexpired(stored, now)]


def check_url(url: str, *, allow_private: bool) -> str:
    """An endpoint URL as stored: http(s), a host, and no literal non-public address unless allowed.

    Names are resolved and checked again at every send (:mod:`leadroute.outbound._send`).
    """
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise InvalidWebhook("url", "is not a URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidWebhook("url", "must be an http:// or https:// URL with a host")
    if parsed.userinfo:
        raise InvalidWebhook("url", "must not carry a user name or password")
    if not allow_private and (parsed.host == "localhost" or parsed.host.endswith(".localhost")):
        raise InvalidWebhook("url", "must not point at this machine (LEADROUTE_WEBHOOK_ALLOW_PRIVATE is off)")
    try:
        address = ipaddress.ip_address(parsed.host)
    except ValueError:
        return url
    if not allow_private and not address.is_global:
        raise InvalidWebhook("url", "must be a public address (LEADROUTE_WEBHOOK_ALLOW_PRIVATE is off)")
    return url


def _view(row: Any, now: datetime) -> Endpoint:
    return Endpoint(
        id=row["id"],
        kind=row["kind"],
        url=row["url"],
        description=row["description"],
        events=list(row["events"]),
        enabled=row["enabled"],
        disabled_reason=row["disabled_reason"],
        signing_secrets=len(_unexpired(row["secrets"], now)),
        start_after=row["start_after"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _events(events: list[str]) -> list[str]:
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown:
        raise InvalidWebhook("events", f"unknown event type(s) {unknown}; known: {list(EVENT_TYPES)}")
    if not events:
        raise InvalidWebhook("events", "name at least one event type")
    return sorted(set(events), key=EVENT_TYPES.index)


async def create_webhook(
    conn: Connection,
    settings: Settings,
    *,
    url: str,
    events: list[str],
    description: str | None,
    enabled: bool,
    now: datetime,
) -> NewEndpoint:
    """Make a webhook endpoint with a new secret; it gets the events after the log's end now."""
    url = check_url(url, allow_private=settings.webhook_allow_private)
    ring = _ring(settings)
    secret = new_secret()
    stored = [{"sealed": ring.seal(secret), "created_at": now.isoformat(), "expires_at": None}]
    ident = "wh_" + secrets.token_hex(8)
    row = await conn.fetchrow(
        QUERIES["outbound_endpoint_insert"],
        ident,
        "webhook",
        url,
        description,
        _events(events),
        stored,
        enabled,
        now,
    )
    view = _view(row, now)
    return NewEndpoint(**msgspec.structs.asdict(view), secret=secret)


async def list_endpoints(conn: Connection, now: datetime) -> list[Endpoint]:
    """Every endpoint: webhooks and connectors."""
    return [_view(r, now) for r in await conn.fetch(QUERIES["outbound_endpoint_list"])]


async def _row(conn: Connection, ident: str, *, lock: bool = False) -> Any:
    row = await conn.fetchrow(QUERIES["outbound_endpoint_lock" if lock else "outbound_endpoint_get"], ident)
    if row is None:
        raise NotFound("webhook endpoint", ident)
    return row


async def get_endpoint(conn: Connection, ident: str, now: datetime) -> Endpoint:
    """One endpoint."""
    return _view(await _row(conn, ident), now)


async def update_webhook(
    conn: Connection, settings: Settings, ident: str, changes: dict[str, Any], now: datetime
) -> Endpoint:
    """Change the fields given (``url``, ``events``, ``description``, ``enabled``)."""
    async with conn.transaction():
        row = await _row(conn, ident, lock=True)
        if row["kind"] != "webhook":
            raise ConnectorReadOnly(ident)
        url = (
            check_url(changes["url"], allow_private=settings.webhook_allow_private)
            if "url" in changes
            else row["url"]
        )
        events = _events(changes["events"]) if "events" in changes else list(row["events"])
        enabled = changes.get("enabled", row["enabled"])
        reason = None if enabled else (row["disabled_reason"] if not row["enabled"] else "disabled by hand")
        updated = await conn.fetchrow(
            QUERIES["outbound_endpoint_update"],
            ident,
            url,
            changes.get("description", row["description"]),
            events,
            enabled,
            reason,
            row["secrets"],
            now,
        )
    return _view(updated, now)


async def delete_webhook(conn: Connection, ident: str) -> None:
    """Delete a webhook endpoint with its deliveries and delivery log."""
    async with conn.transaction():
        row = await _row(conn, ident, lock=True)
        if row["kind"] != "webhook":
            raise ConnectorReadOnly(ident)
        await conn.execute(QUERIES["outbound_endpoint_delete"], ident)


async def rotate_secret(
    conn: Connection, settings: Settings, ident: str, *, keep_previous_hours: float, now: datetime
) -> EndpointSecret:
    """A new secret signs from now on; the previous ones sign too for ``keep_previous_hours``
    (0: they stop now). Already-expired secrets are dropped."""
    ring = _ring(settings)
    async with conn.transaction():
        row = await _row(conn, ident, lock=True)
        if row["kind"] != "webhook":
            raise ConnectorReadOnly(ident)
        expire = now + timedelta(hours=keep_previous_hours)
        kept = []
        for old in row["secrets"]:
            if old.get("expires_at") is not None and datetime.fromisoformat(old["expires_at"]) <= now:
                continue
            if keep_previous_hours <= 0:
                continue
            ends = old.get("expires_at")
            until = min(datetime.fromisoformat(ends), expire) if ends is not None else expire
            kept.append(old | {"expires_at": until.isoformat()})
        secret = new_secret()
        stored = [{"sealed": ring.seal(secret), "created_at": now.isoformat(), "expires_at": None}, *kept]
        await conn.execute(
            QUERIES["outbound_endpoint_update"],
            ident,
            row["url"],
            row["description"],
            list(row["events"]),
            row["enabled"],
            row["disabled_reason"],
            stored,
            now,
        )
    return EndpointSecret(
        id=ident,
        secret=secret,
        previous_expire_at=expire if kept else None,
        signing_secrets=len(_unexpired(stored, now)),
    )


async def redeliver(conn: Connection, ident: str, first: int, last: int, now: datetime) -> list[int]:
    """Send the events ``first..last`` (sequence numbers, inclusive) that the endpoint wants again,
    from attempt 1, in order per lead; each keeps its ``webhook-id``. Returns their sequence numbers."""
    if first < 1 or last < first:
        raise InvalidWebhook("from_event", "must be at least 1 and at most to_event")
    if last - first + 1 > REDELIVER_MAX:
        raise InvalidWebhook("to_event", f"a redelivery covers at most {REDELIVER_MAX} events")
    await _row(conn, ident)
    rows = await conn.fetch(QUERIES["outbound_redeliver"], ident, first, last, now)
    return sorted(r["event_seq"] for r in rows)


async def deliveries(
    conn: Connection, ident: str, *, status: str | None, before: int | None, limit: int
) -> list[Delivery]:
    """An endpoint's deliveries, newest event first (``before``: only events before this one)."""
    await _row(conn, ident)
    rows = await conn.fetch(QUERIES["outbound_deliveries"], ident, status, before or 2**62, limit)
    return [
        Delivery(
            event=r["event_seq"],
            type=r["event_type"],
            lead_id=str(r["lead_id"]),
            webhook_id=webhook_id(ident, r["event_seq"]),
            status=r["status"],
            attempts=r["attempts"],
            next_attempt_at=r["next_at"] if r["status"] == "pending" else None,
            last_status=r["last_status"],
            last_error=r["last_error"],
            created_at=r["created_at"],
            done_at=r["done_at"],
        )
        for r in rows
    ]


async def attempts(conn: Connection, ident: str, *, event: int | None, limit: int) -> list[Attempt]:
    """An endpoint's delivery log, newest attempt first (``event``: that event's attempts only)."""
    await _row(conn, ident)
    rows = await conn.fetch(QUERIES["outbound_attempts"], ident, event, limit)
    return [
        Attempt(
            event=r["event_seq"],
            type=r["event_type"],
            attempt=r["attempt"],
            at=r["at"],
            outcome=r["outcome"],
            status_code=r["status_code"],
            error=r["error"],
            latency_ms=r["latency_ms"],
            response=r["response"],
        )
        for r in rows
    ]


async def sync_connectors(conn: Connection, settings: Settings, now: datetime) -> list[str]:
    """Make the connectors (CRM write-back, alerts) match the settings: configured ones exist and
    are enabled (a new one starts at the end of the log), the others are disabled. Returns the
    enabled ones."""
    configured = {
        "hubspot": settings.hubspot_token is not None,
        "salesforce": settings.salesforce_client_id is not None,
        "slack": settings.slack_webhook_url is not None,
        "email": settings.smtp_host is not None,
    }
    for ident, on in configured.items():
        if on:
            events = list(ALERT_EVENTS if ident in ("slack", "email") else CRM_EVENTS)
            await conn.execute(QUERIES["outbound_connector_upsert"], ident, events, now)
        else:
            await conn.execute(QUERIES["outbound_endpoint_disable"], ident, "not configured", now)
    return [ident for ident, on in configured.items() if on]
