"""The webhook SSRF guard against DNS rebinding: the host is resolved once per delivery, every
address is checked, and the request goes to exactly the checked address with the name kept in
``Host``, SNI and the certificate check. The resolver is injected (no DNS offline): it answers
the check with one address and any later lookup with another, as a rebinding server would."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import FakeClock
from leadroute.config import Settings
from leadroute.outbound._send import send_webhook
from outbound_support import Receiver, create_endpoint, receiver, relay_pass
from sla_support import instance, sla_rules
from support import Client, lead, owner, pool, post_one

NAME = "hooks.example.test"


class Rebinding:
    """Answers the first lookup with ``first``, every later one with ``then``; counts lookups."""

    def __init__(self, first: list[str], then: list[str]) -> None:
        self.first, self.then = first, then
        self.lookups: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append((host, port))
        return self.first if len(self.lookups) == 1 else self.then


def use_resolver(client: Client, resolve: Rebinding) -> None:
    client.app.state.outbound.resolve = resolve


async def one_assignment(client: Client) -> None:
    await owner(client, "ann")
    await pool(client, "sales", ["ann"])
    await post_one(client, lead(1))


class TestPinned:
    async def test_the_request_goes_to_the_checked_address_with_the_name_as_host(
        self, settings: Settings, clean: None, clock: FakeClock
    ) -> None:
        with receiver() as hooks:
            port = int(hooks.url.rsplit(":", 1)[1])
            # the check sees 127.0.0.1 (allowed here); a second lookup would get a dead address
            resolve = Rebinding(["127.0.0.1"], ["10.255.255.1"])
            async with instance(settings, sla_rules(), clock, webhook_allow_private=True) as client:
                use_resolver(client, resolve)
                await create_endpoint(client, f"http://{NAME}:{port}/hook", ["lead.assigned"])
                await one_assignment(client)
                await relay_pass(client)
                log = (await client.get("/v1/webhooks")).json()
        [req] = hooks.requests
        assert req.path == "/hook"
        assert req.headers["host"] == f"{NAME}:{port}"
        assert resolve.lookups == [(NAME, port)]  # once: no second lookup to rebind
        assert any(e["url"] == f"http://{NAME}:{port}/hook" for e in log)

    async def test_the_next_checked_address_is_tried_when_one_refuses_connections(
        self, settings: Settings, clean: None, clock: FakeClock
    ) -> None:
        with receiver() as hooks:
            port = int(hooks.url.rsplit(":", 1)[1])
            resolve = Rebinding(["::1", "127.0.0.1"], ["10.255.255.1"])  # nothing listens on ::1
            async with instance(settings, sla_rules(), clock, webhook_allow_private=True) as client:
                use_resolver(client, resolve)
                endpoint = await create_endpoint(client, f"http://{NAME}:{port}/hook", ["lead.assigned"])
                await one_assignment(client)
                await relay_pass(client)
                attempts = (await client.get(f"/v1/webhooks/{endpoint['id']}/attempts")).json()
        [req] = hooks.requests
        assert req.headers["host"] == f"{NAME}:{port}"
        assert resolve.lookups == [(NAME, port)]
        assert [a["outcome"] for a in attempts] == ["delivered"]

    async def test_any_private_address_among_the_answers_is_refused(
        self, settings: Settings, clean: None, clock: FakeClock
    ) -> None:
        with receiver() as hooks:
            resolve = Rebinding(["93.184.216.34", "10.0.0.5"], ["127.0.0.1"])
            async with instance(settings, sla_rules(), clock) as client:
                use_resolver(client, resolve)
                endpoint = await create_endpoint(client, f"http://{NAME}/hook", ["lead.assigned"])
                await one_assignment(client)
                await relay_pass(client)
                attempts = (await client.get(f"/v1/webhooks/{endpoint['id']}/attempts")).json()
        assert hooks.requests == []
        [attempt] = attempts
        assert attempt["outcome"] == "failed"
        assert attempt["error"] == f"refused: {NAME} resolves to 10.0.0.5, which is not a public address"


def _certificate(tmp: Path) -> tuple[Path, Path, bytes]:
    """A self-signed certificate for NAME only: (cert file, key file, PEM to trust)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAME)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(NAME)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp / "cert.pem").write_bytes(pem)
    (tmp / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return tmp / "cert.pem", tmp / "key.pem", pem


class TestPinnedHttps:
    async def test_https_keeps_sni_and_the_certificate_check_on_the_name(self, tmp_path: Path) -> None:
        cert, key, pem = _certificate(tmp_path)
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.load_cert_chain(cert, key)
        names: list[str | None] = []
        server.sni_callback = lambda _sock, name, _ctx: names.append(name)
        hooks = Receiver()
        hooks.server.socket = server.wrap_socket(hooks.server.socket, server_side=True)
        hooks.thread.start()
        port = hooks.server.server_address[1]
        resolve = Rebinding(["127.0.0.1"], ["10.255.255.1"])
        try:
            async with httpx.AsyncClient(verify=ssl.create_default_context(cadata=pem.decode())) as client:
                outcome = await send_webhook(
                    client,
                    url=f"https://{NAME}:{port}/hook",
                    msg_id="msg_1_wh",
                    secrets=["whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
                    body=b'{"type":"lead.assigned"}',
                    allow_private=True,
                    resolve=resolve,
                )
        finally:
            hooks.server.shutdown()
            hooks.server.server_close()
        assert outcome.result == "delivered", outcome
        assert names == [NAME]
        [req] = hooks.requests
        assert req.headers["host"] == f"{NAME}:{port}"
        assert resolve.lookups == [(NAME, port)]
