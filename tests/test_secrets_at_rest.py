"""Webhook secrets encrypted at rest (Fernet under ``LEADROUTE_SECRET_KEY``): never stored in
plain text, plain rows from before sealed at start-up, old keys still decrypt during a rotation,
a missing key refused clearly; and no secret in the Settings repr."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import msgspec
import pytest

from conftest import FakeClock
from leadroute.app import create_app
from leadroute.config import Settings, SettingsError
from leadroute.vault import embedded_secret_key, generate_key, keyring, seal_stored_secrets
from outbound_support import create_endpoint, receiver, relay_pass, verified
from process_support import cli_env, leadroute
from sla_support import instance, sla_rules
from support import ADMIN_KEY, SECRET_KEY, Client, connection, lead, owner, pool, post_one


async def stored(settings: Settings, ident: str) -> list[dict[str, object]]:
    async with connection(settings) as conn:
        value: list[dict[str, object]] = await conn.fetchval(
            "SELECT secrets FROM outbound_endpoints WHERE id = $1", ident
        )
    return value


async def assign(client: Client, n: int) -> None:
    await owner(client, "ann")
    await pool(client, "sales", ["ann"])
    await post_one(client, lead(n))


class TestSealed:
    async def test_a_new_secret_is_stored_sealed_and_still_signs(
        self, settings: Settings, clean: None, clock: FakeClock
    ) -> None:
        with receiver() as hooks:
            async with instance(settings, sla_rules(), clock, webhook_allow_private=True) as client:
                endpoint = await create_endpoint(client, hooks.url, ["lead.assigned"])
                rotated = (await client.post(f"/v1/webhooks/{endpoint['id']}/rotate", json={})).json()
                await assign(client, 1)
                await relay_pass(client)
        rows = await stored(settings, endpoint["id"])
        text = json.dumps(rows)
        assert endpoint["secret"] not in text
        assert rotated["secret"] not in text
        assert [set(r) & {"secret", "sealed"} for r in rows] == [{"sealed"}, {"sealed"}]
        [req] = hooks.requests
        assert verified(req, endpoint["secret"])["type"] == "lead.assigned"  # the old one, kept
        assert verified(req, rotated["secret"])["type"] == "lead.assigned"  # and the new one

    async def test_plain_rows_from_before_are_sealed_at_start_up(
        self, settings: Settings, clean: None, clock: FakeClock
    ) -> None:
        with receiver() as hooks:
            async with instance(settings, sla_rules(), clock, webhook_allow_private=True) as client:
                endpoint = await create_endpoint(client, hooks.url, ["lead.assigned"])
            plain = [{"secret": endpoint["secret"], "created_at": clock.now.isoformat(), "expires_at": None}]
            async with connection(settings) as conn:  # as a database of before 0015 holds it
                await conn.execute(
                    "UPDATE outbound_endpoints SET secrets = $2 WHERE id = $1", endpoint["id"], plain
                )
            async with instance(settings, sla_rules(), clock, webhook_allow_private=True) as client:
                rows = await stored(settings, endpoint["id"])
                await assign(client, 1)
                await relay_pass(client)
        assert endpoint["secret"] not in json.dumps(rows)
        assert "sealed" in rows[0]
        [req] = hooks.requests
        assert verified(req, endpoint["secret"])["type"] == "lead.assigned"

    async def test_rotating_the_key_keeps_old_secrets_readable_then_reseals(
        self, settings: Settings, clean: None, clock: FakeClock
    ) -> None:
        new_key = generate_key()
        rotated = {"secret_key": new_key, "secret_keys_old": SECRET_KEY, "webhook_allow_private": True}
        with receiver() as hooks:
            async with instance(settings, sla_rules(), clock, webhook_allow_private=True) as client:
                endpoint = await create_endpoint(client, hooks.url, ["lead.assigned"])
            before = await stored(settings, endpoint["id"])
            async with instance(settings, sla_rules(), clock, **rotated) as client:
                await assign(client, 1)
                await relay_pass(client)  # signs with the secret sealed under the old key
                ring = keyring(Settings.from_env({}, secret_key=new_key, secret_keys_old=SECRET_KEY))
                assert ring is not None
                async with connection(settings) as conn:
                    assert await seal_stored_secrets(conn, ring, rotate=True) == 1
            after = await stored(settings, endpoint["id"])
            async with instance(
                settings, sla_rules(), clock, secret_key=new_key, webhook_allow_private=True
            ) as c:
                await post_one(c, lead(2))
                await relay_pass(c)  # the old key is gone: the resealed secret still signs
        assert before[0]["sealed"] != after[0]["sealed"]
        assert [verified(r, endpoint["secret"])["type"] for r in hooks.requests] == ["lead.assigned"] * 2

    async def test_without_the_key_nothing_is_stored_or_signed(
        self, settings: Settings, clean: None, clock: FakeClock
    ) -> None:
        with receiver() as hooks:
            async with instance(settings, sla_rules(), clock, webhook_allow_private=True) as client:
                endpoint = await create_endpoint(client, hooks.url, ["lead.assigned"])
            async with instance(
                settings, sla_rules(), clock, secret_key=None, webhook_allow_private=True
            ) as client:
                r = await client.post("/v1/webhooks", json={"url": hooks.url, "events": ["lead.assigned"]})
                await assign(client, 1)
                await relay_pass(client)
                attempts = (await client.get(f"/v1/webhooks/{endpoint['id']}/attempts")).json()
        assert r.status_code == 409
        assert "LEADROUTE_SECRET_KEY" in r.json()["detail"]
        assert hooks.requests == []
        assert attempts[0]["outcome"] == "failed"
        assert "set LEADROUTE_SECRET_KEY" in attempts[0]["error"]


class TestKeys:
    def test_a_malformed_key_names_the_setting_not_the_value(self) -> None:
        with pytest.raises(SettingsError, match="LEADROUTE_SECRET_KEY: expected 32") as info:
            Settings.from_env({"LEADROUTE_SECRET_KEY": "hunter2-not-a-key"})
        assert "hunter2" not in str(info.value)
        with pytest.raises(SettingsError, match="LEADROUTE_SECRET_KEYS_OLD: expected 32"):
            Settings.from_env({"LEADROUTE_SECRET_KEY": generate_key(), "LEADROUTE_SECRET_KEYS_OLD": "nope"})

    def test_the_embedded_default_makes_one_key_file_readable_by_its_owner_only(self, tmp_path: Path) -> None:
        first = embedded_secret_key(tmp_path / "data")
        assert embedded_secret_key(tmp_path / "data") == first
        path = tmp_path / "data" / "secret.key"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert keyring(Settings.from_env({}, secret_key=first)) is not None

    def test_the_cli_makes_a_key_and_reseals_every_secret(self, settings: Settings, clean: None) -> None:
        made = leadroute("secrets", "generate-key", env=cli_env())
        assert made.returncode == 0, made.stderr
        key = made.stdout.strip()
        assert keyring(Settings.from_env({}, secret_key=key)) is not None
        resealed = leadroute("secrets", "reseal", env=cli_env(settings))
        assert resealed.returncode == 0, resealed.stderr
        assert "re-encrypted the webhook secrets of 0 endpoint(s)" in resealed.stdout
        missing = leadroute("secrets", "reseal", env=cli_env(settings) | {"LEADROUTE_SECRET_KEY": ""})
        assert missing.returncode != 0
        assert "LEADROUTE_SECRET_KEY" in missing.stderr

    def test_production_refuses_to_serve_without_a_key(self, settings: Settings) -> None:
        production = msgspec.structs.replace(settings, allow_embedded=False, secret_key=None)
        with pytest.raises(SettingsError, match="LEADROUTE_SECRET_KEY: required in production"):
            create_app(production)

    def test_the_settings_repr_hides_every_secret(self) -> None:
        settings = Settings.from_env(
            {},
            admin_key=ADMIN_KEY,
            secret_key=SECRET_KEY,
            hubspot_token="pat-na1-SECRET-TOKEN",
            salesforce_client_id="cid",
            salesforce_client_secret="SF-CLIENT-SECRET",
            salesforce_token_url="https://x.my.salesforce.com/services/oauth2/token",
            smtp_host="mail",
            smtp_from="a@b.example",
            smtp_user="u",
            smtp_password="SMTP-PASSWORD",
            slack_webhook_url="https://hooks.slack.com/services/T0/B0/SLACKSECRET",
            database_url="postgresql://app:DBPASSWORD@db/leadroute",
            redis_url="redis://:REDISPASSWORD@redis:6379/0",
        )
        for shown in (repr(settings), str(settings), f"{settings!r}", repr([settings])):
            for secret in (
                ADMIN_KEY,
                SECRET_KEY,
                "SECRET-TOKEN",
                "SF-CLIENT-SECRET",
                "SMTP-PASSWORD",
                "SLACKSECRET",
                "DBPASSWORD",
                "REDISPASSWORD",
            ):
                assert secret not in shown
        assert "salesforce_client_id='cid'" in repr(settings)
        assert "admin_key='***'" in repr(settings)
