"""Local receivers for the outbound tests: webhook endpoints, HubSpot, Salesforce (HTTP), and a
local SMTP server for email alerts (:func:`smtp_server`, aiosmtpd).

A :class:`Receiver` is an ``http.server`` on 127.0.0.1 in a thread of its own. It records every
request exactly as it arrived (method, path with query, lower-cased headers, raw body) and answers
with what the test's ``answer`` function returns for it, optionally after a delay (a slow
receiver) or never until released (a receiver that hangs while the sender is killed).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from standardwebhooks import Webhook

from leadroute.outbound import Relay
from sla_support import in_app
from support import Client


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay: float = 0.0
    hold: threading.Event | None = None
    """Wait for this event before answering (a receiver that hangs)."""


Responder = Callable[[Request, int], Answer]
"""What to answer to a request, given it and how many requests came before it."""


def always(status: int = 200) -> Responder:
    return lambda _req, _n: Answer(status)


class Receiver:
    """An HTTP server recording requests; ``answer`` decides each response."""

    def __init__(self, answer: Responder | None = None) -> None:
        self.answer = answer or always(200)
        self.requests: list[Request] = []
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                req = Request(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
                with receiver.arrived:
                    n = len(receiver.requests)
                    receiver.requests.append(req)
                    receiver.arrived.notify_all()
                answer = receiver.answer(req, n)
                if answer.hold is not None:
                    answer.hold.wait(120)
                if answer.delay:
                    time.sleep(answer.delay)
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                except OSError:
                    pass  # the sender is gone (killed, or timed out)

            do_POST = do_PATCH = do_GET = do_PUT = _any  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def wait_for(self, count: int, timeout: float = 30) -> list[Request]:
        """Block until ``count`` requests have arrived; all of them."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(self.requests)} of {count} requests arrived in {timeout}s")
                self.arrived.wait(left)
            return list(self.requests)


@contextmanager
def receiver(answer: Responder | None = None) -> Iterator[Receiver]:
    r = Receiver(answer)
    r.thread.start()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()


def verified(req: Request, secret: str) -> Any:
    """The webhook's body after the ``standardwebhooks`` verifier accepted its signature."""
    return Webhook(secret).verify(req.body, req.headers)


async def relay_pass(client: Client) -> int:
    """One pass of the app's relay at its clock's "now", waiting for every send; attempts made."""

    async def run(rt: Any) -> int:
        outbound: Relay = client.app.state.outbound
        return await outbound.run_once()

    return await in_app(client, run)


async def create_endpoint(client: Client, url: str, events: list[str], **fields: Any) -> dict[str, Any]:
    r = await client.post("/v1/webhooks", json={"url": url, "events": events} | fields)
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


class _Inbox:
    def __init__(self) -> None:
        self.mails: list[tuple[Envelope, EmailMessage]] = []

    async def handle_DATA(self, _server: SMTP, _session: Session, envelope: Envelope) -> str:  # noqa: N802
        assert isinstance(envelope.content, bytes)
        mail = message_from_bytes(envelope.content, _class=EmailMessage, policy=policy.default)
        assert isinstance(mail, EmailMessage)
        self.mails.append((envelope, mail))
        return "250 OK"


@contextmanager
def smtp_server() -> Iterator[tuple[int, _Inbox]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()
