"""Sending one request and judging its answer: the webhook sender (Standard Webhooks signatures,
the SSRF guard) and the :class:`Outcome` every sender returns.

A webhook is a ``POST`` of the JSON body with ``webhook-id`` (stable per event and endpoint),
``webhook-timestamp`` (this attempt, Unix seconds) and ``webhook-signature`` (``v1,<base64>``,
one per active secret, space-separated), signed by the ``standardwebhooks`` package's
``Webhook.sign``, the same code receivers verify with. The timestamp is the wall clock, not the
service clock: receivers compare it with theirs to refuse replays.

SSRF guard, pinned against DNS rebinding (:func:`pin`): once per delivery the host is resolved,
*every* address it resolves to is checked (loopback, private, link-local, shared, reserved and
multicast ones are refused unless ``LEADROUTE_WEBHOOK_ALLOW_PRIVATE`` is on), and the request is
sent to the checked addresses only (the first that accepts a connection, in the resolver's
order): the URL's host is replaced by the address, the ``Host`` header keeps the name, and for
https the TLS handshake sends the name as SNI and checks the certificate against the name
(httpcore's ``sni_hostname`` extension). So a name that answers
a public address to the check and a private one a moment later (rebinding) never reaches the
private one: there is no second lookup. Redirects are not followed (a 3xx is a failure, as
Standard Webhooks recommends).
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

import httpx
from standardwebhooks import Webhook

__all__ = [
    "EXCERPT",
    "Blocked",
    "Outcome",
    "Resolver",
    "judge",
    "pin",
    "retry_after",
    "send_webhook",
    "sign",
    "system_resolver",
]

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""Resolves a host name and port to addresses (tests inject one; :func:`system_resolver` by default)."""

EXCERPT: Final = 512
"""Characters of an answer's body kept in the delivery log."""
_READ_LIMIT: Final = 64 * 1024
"""Bytes of an answer read at most (the rest is not waited for)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt got. ``result``: delivered, retry (failed; try again later), gone (410:
    disable the endpoint) or skipped (nothing to send, e.g. no CRM id)."""

    result: Literal["delivered", "retry", "gone", "skipped"]
    status_code: int | None = None
    error: str | None = None
    response: str | None = None
    latency_ms: float | None = None
    retry_after: float | None = None
    """Seconds the receiver asked us to wait (``Retry-After`` of a 429 or 503)."""
    unreachable: bool = False
    """No connection could be made (nothing was sent): another address may be tried."""


class Blocked(Exception):
    """The target resolves to an address the SSRF guard refuses."""


def sign(secrets: list[str], msg_id: str, at: datetime, body: bytes) -> str:
    """The ``webhook-signature`` header: one ``v1,<base64 HMAC-SHA256>`` per secret, space-separated."""
    text = body.decode()
    return " ".join(Webhook(secret).sign(msg_id, at, text) for secret in secrets)


def _refused(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the system resolver gives ``host`` (in its order of preference, no repeats)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def pin(url: httpx.URL, *, allow_private: bool, resolve: Resolver = system_resolver) -> list[str]:
    """Resolve ``url``'s host once, refuse it if any address is not public (unless allowed), and
    return the checked addresses to connect to, in the resolver's order. :class:`Blocked` if
    refused or unresolvable."""
    host = url.host
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        addresses = await resolve(host, port)
    except OSError as exc:
        raise Blocked(f"cannot resolve {host}: {getattr(exc, 'strerror', None) or exc}") from None
    if not addresses:
        raise Blocked(f"{host} resolves to no address")
    if not allow_private:
        for address in addresses:
            if _refused(address):
                raise Blocked(f"{host} resolves to {address}, which is not a public address")
    return addresses


def pinned(url: httpx.URL, address: str) -> tuple[httpx.URL, dict[str, str], dict[str, Any]]:
    """The URL to request (the host replaced by ``address``), the ``Host`` header and the request
    extensions (SNI and certificate name for https) that keep the name everywhere it matters."""
    host = url.host
    default = 443 if url.scheme == "https" else 80
    name = f"[{host}]" if ":" in host else host  # an IPv6 literal keeps its brackets
    authority = name if url.port in (None, default) else f"{name}:{url.port}"
    extensions: dict[str, Any] = {"sni_hostname": host} if url.scheme == "https" else {}
    return url.copy_with(host=address.split("%", 1)[0]), {"host": authority}, extensions


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` in seconds: a number of seconds or an HTTP date (None if absent or bad)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


async def _read(response: httpx.Response) -> str:
    body = b""
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) >= _READ_LIMIT:
            break
    return body.decode("utf-8", "replace")[:EXCERPT]


def judge(status: int, text: str, latency_ms: float, retry: str | None) -> Outcome:
    """The outcome of an answer: 2xx delivered, 410 gone, anything else tried again later."""
    if 200 <= status < 300:
        return Outcome("delivered", status, None, text, latency_ms)
    if status == 410:
        return Outcome("gone", status, "410 Gone: the receiver wants no more webhooks", text, latency_ms)
    wait = retry_after(retry) if status in (429, 503) else None
    return Outcome("retry", status, f"HTTP {status}", text, latency_ms, wait)


async def request(
    client: httpx.AsyncClient,
    method: str,
    url: str | httpx.URL,
    *,
    headers: dict[str, str],
    content: bytes | None = None,
    json: Any = None,
    data: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    extensions: dict[str, Any] | None = None,
) -> Outcome:
    """Send one request and judge the answer; a transport error or timeout is a failure to retry."""
    started = time.perf_counter()
    try:
        async with client.stream(
            method,
            url,
            headers=headers,
            content=content,
            json=json,
            data=data,
            params=params,
            extensions=extensions,
        ) as response:
            text = await _read(response)
    except httpx.TimeoutException:
        return Outcome("retry", None, "timed out", None, (time.perf_counter() - started) * 1000)
    except httpx.ConnectError as exc:
        return Outcome("retry", None, f"ConnectError: {exc}"[:EXCERPT], unreachable=True)
    except httpx.HTTPError as exc:
        return Outcome("retry", None, f"{type(exc).__name__}: {exc}"[:EXCERPT], None, None)
    latency = (time.perf_counter() - started) * 1000
    return judge(response.status_code, text, latency, response.headers.get("retry-after"))


async def send_webhook(
    client: httpx.AsyncClient,
    *,
    url: str,
    msg_id: str,
    secrets: list[str],
    body: bytes,
    allow_private: bool,
    resolve: Resolver = system_resolver,
) -> Outcome:
    """POST one signed webhook to the addresses its host resolves to now, checked (:func:`pin`):
    the first that accepts a connection (as a client tries a name's addresses in turn), never an
    address that was not checked."""
    named = httpx.URL(url)
    try:
        addresses = await pin(named, allow_private=allow_private, resolve=resolve)
    except Blocked as exc:
        return Outcome("retry", None, f"refused: {exc}")
    if not secrets:
        return Outcome("retry", None, "the endpoint has no active secret (rotate it)")
    at = datetime.now(UTC)
    headers = {
        "content-type": "application/json",
        "user-agent": "leadroute-webhooks/1",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": sign(secrets, msg_id, at, body),
    }
    outcome = Outcome("retry")
    for address in addresses:
        target, host, extensions = pinned(named, address)
        outcome = await request(
            client, "POST", target, content=body, headers=headers | host, extensions=extensions
        )
        if not outcome.unreachable:
            break
    return outcome
