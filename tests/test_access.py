"""Access: every /v1 route needs a key with its scope; keys are made, rotated and revoked; browsers
get CORS for their key's origins only; bodies of JSON routes are JSON; answers carry security
headers. Real PostgreSQL and Redis, the app as the service runs it."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar import Litestar

from leadroute.access import (
    CONSOLE_SCOPES,
    ROUTE_SCOPES,
    SCOPES,
    SIGNED_ROUTES,
    first_start_key,
    parse_key,
    security_headers,
)
from leadroute.access._middleware import API_CSP, CONSOLE_CSP
from leadroute.app import create_app
from leadroute.config import Settings
from leadroute.store.db import connect
from leadroute.store.migrate import migrate
from process_support import cli_env, leadroute
from support import ADMIN_KEY, AUTH, Client, authed, connection, lead, setup_pool


def _routes() -> list[tuple[str, str]]:
    """Every (method, path template) under /v1 the app serves, but the OPTIONS Litestar adds."""
    settings = Settings.from_env({}, database_url="postgresql://unused/db", redis_url="redis://unused")
    app = create_app(settings)
    found = set()
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            for method in handler.http_methods:
                if route.path_format.startswith("/v1/") and method != "OPTIONS":
                    found.add((method, route.path_format))
    return sorted(found)


def _console_routes() -> list[tuple[str, str]]:
    """Every (method, path template) of a console page (its static assets are open)."""
    settings = Settings.from_env({}, database_url="postgresql://unused/db", redis_url="redis://unused")
    found = set()
    for route in create_app(settings).routes:
        if not route.path_format.startswith("/console") or route.path_format.startswith("/console/static"):
            continue
        for handler in getattr(route, "route_handlers", []):
            found |= {(m, route.path_format) for m in handler.http_methods if m not in {"OPTIONS", "HEAD"}}
    return sorted(found)


ROUTES = _routes()
KEYED = [r for r in ROUTES if r not in SIGNED_ROUTES]
"""The routes a key opens (the vendor routes of SIGNED_ROUTES take a signature instead)."""
FILL = {
    "lead_id": str(uuid.uuid4()),
    "owner_id": "nobody",
    "pool_id": "nopool",
    "version": "99",
    "key_id": "0000beef",
    "endpoint_id": "nowhere",
    "mapping": "form",
}


def _concrete(template: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: FILL[m[1]], template)


async def _call(client: Client, method: str, template: str, **kwargs: Any) -> Any:
    if method in {"POST", "PUT", "PATCH"}:
        kwargs.setdefault("json", {})
    return await client.request(method, _concrete(template), **kwargs)


async def new_key(
    admin: Client, *scopes: str, origins: tuple[str, ...] = (), name: str = "test"
) -> tuple[str, str]:
    """A key made through the API with the admin key: its token and id."""
    body = {"name": name, "scopes": list(scopes), "origins": list(origins)}
    r = await admin.post("/v1/keys", json=body, headers=AUTH)
    assert r.status_code == 201, r.text
    body = r.json()
    return body["key"], body["stored"]["id"]


class TestTheConsoleScopeTable:
    """Every console page is in CONSOLE_SCOPES, and every row of it is a page."""

    def test_every_page_has_a_row_and_every_row_is_a_page(self) -> None:
        pages = _console_routes()
        assert [p for p in pages if p not in CONSOLE_SCOPES] == []
        assert [p for p in CONSOLE_SCOPES if p not in pages] == []


class TestTheScopeTable:
    """Every /v1 route is in ROUTE_SCOPES, and every row of it is a route."""

    def test_every_route_has_a_scope(self) -> None:
        assert [r for r in KEYED if r not in ROUTE_SCOPES] == []

    def test_every_row_is_a_route(self) -> None:
        assert [r for r in ROUTE_SCOPES if r not in ROUTES] == []
        assert [r for r in SIGNED_ROUTES if r not in ROUTES] == []

    def test_a_route_is_keyed_or_signed_never_both(self) -> None:
        assert set(ROUTE_SCOPES) & set(SIGNED_ROUTES) == set()

    def test_scopes_are_known(self) -> None:
        assert set(ROUTE_SCOPES.values()) <= set(SCOPES)


@pytest.fixture
async def app(make_app: Any) -> Litestar:
    built: Litestar = make_app()
    return built


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(("method", "template"), KEYED, ids=[f"{m} {t}" for m, t in KEYED])
class TestEveryRoute:
    """No key: 401; a key without the route's scope: 403 (even for ids that do not exist); with it: in."""

    async def test_no_key_wrong_scope_right_scope(self, app: Litestar, method: str, template: str) -> None:
        needed = ROUTE_SCOPES[(method, template)]
        async with authed(app, key=None) as anonymous:  # one client per app: one lifespan
            none = await _call(anonymous, method, template)
            assert none.status_code == 401, none.text
            assert none.headers["www-authenticate"] == "Bearer"
            assert none.headers["content-type"] == "application/problem+json"
            bad = await _call(anonymous, method, template, headers={"Authorization": "Bearer lr_live_nope"})
            assert bad.status_code == 401
            assert 'error="invalid_token"' in bad.headers["www-authenticate"]

            other = next(s for s in SCOPES if s not in {needed, "admin"})
            wrong, _ = await new_key(anonymous, other)
            denied = await _call(anonymous, method, template, headers=bearer(wrong))
            assert denied.status_code == 403, denied.text
            assert denied.json()["type"].endswith("/forbidden")
            assert f'scope="{needed}"' in denied.headers["www-authenticate"]

            right, _ = await new_key(anonymous, needed)
            allowed = await _call(anonymous, method, template, headers=bearer(right))
            assert allowed.status_code not in {401, 403}, allowed.text
            assert allowed.status_code < 500, allowed.text


class TestOpenRoutes:
    """Health checks and the schema need no key."""

    @pytest.mark.parametrize("path", ["/health/live", "/health/ready", "/schema/openapi.json"])
    async def test_open(self, app: Litestar, path: str) -> None:
        async with authed(app, key=None) as anonymous:
            r = await anonymous.get(path)
            assert r.status_code == 200, r.text


class TestKeys:
    """Keys are shown once, stored hashed, rotated and revoked; the change is audited."""

    async def test_create_list_rotate_revoke(self, app: Litestar, settings: Settings) -> None:
        async with authed(app) as admin:
            anonymous = admin  # the requests below send their own key
            token, key_id = await new_key(admin, "leads:read", name="crm sync")
            parsed = parse_key(token)
            assert parsed is not None
            assert parsed.id == key_id
            listed = (await admin.get("/v1/keys")).json()
            assert token not in str(listed)
            assert {"id": key_id, "name": "crm sync", "scopes": ["leads:read"]}.items() <= next(
                k for k in listed if k["id"] == key_id
            ).items()
            async with connection(settings) as conn:
                stored = await conn.fetchval("SELECT secret_sha256 FROM api_keys WHERE id = $1", key_id)
            assert parsed.secret.encode() not in bytes(stored)

            lead_path = f"/v1/leads/{uuid.uuid4()}"
            use = {"Authorization": f"Bearer {token}"}
            assert (await anonymous.get(lead_path, headers=use)).status_code == 404  # in: the lead is unknown

            rotated = (await admin.post(f"/v1/keys/{key_id}/rotate")).json()
            assert rotated["stored"]["id"] == key_id
            assert (await anonymous.get(lead_path, headers=use)).status_code == 401  # the old secret
            fresh = {"Authorization": f"Bearer {rotated['key']}"}
            assert (await anonymous.get(lead_path, headers=fresh)).status_code == 404

            revoked = await admin.delete(f"/v1/keys/{key_id}")
            assert revoked.status_code == 200
            assert revoked.json()["revoked_by"] == f"key:{parse_key(ADMIN_KEY).id}"  # type: ignore[union-attr]
            assert (await anonymous.get(lead_path, headers=fresh)).status_code == 401

            trail = (await admin.get("/v1/audit")).json()
            assert [(e["action"], e["subject"]) for e in trail[:3]] == [
                ("key.revoke", f"key:{key_id}"),
                ("key.rotate", f"key:{key_id}"),
                ("key.create", f"key:{key_id}"),
            ]

    async def test_bad_bodies(self, app: Litestar) -> None:
        async with authed(app) as admin:
            for body in (
                {"name": "x", "scopes": []},
                {"name": "x", "scopes": ["everything"]},
                {"name": "x", "scopes": ["leads:write"], "origins": ["https://a.example/path"]},
            ):
                r = await admin.post("/v1/keys", json=body)
                assert r.status_code == 400, (body, r.text)

    async def test_revocation_elsewhere_takes_effect_within_the_cache_time(
        self, settings: Settings, clean: None
    ) -> None:
        app = create_app(msgspec.structs.replace(settings, key_cache_seconds=0.5))
        async with authed(app) as admin:
            token, key_id = await new_key(admin, "routing:admin")
            use = bearer(token)
            assert (await admin.get("/v1/owners", headers=use)).status_code == 200
            async with connection(settings) as conn:  # another instance, or the CLI, revokes it
                await conn.execute("UPDATE api_keys SET revoked_at = now() WHERE id = $1", key_id)
            assert (await admin.get("/v1/owners", headers=use)).status_code == 200  # still cached here
            await asyncio.sleep(0.6)
            assert (await admin.get("/v1/owners", headers=use)).status_code == 401


class TestActors:
    """A change records the key that made it, and the X-Actor person, cleaned."""

    async def test_lead_and_owner_changes_name_the_key(self, app: Litestar) -> None:
        async with authed(app) as admin:
            await setup_pool(admin, ["olive"])
            token, key_id = await new_key(admin, "leads:write", name="web form")
            headers = bearer(token) | {"X-Actor": "jane@corp.example <script>alert(1)</script>"}
            r = await admin.post("/v1/leads", json=lead(1), headers=headers)
            assert r.status_code == 201, r.text
            story = (await admin.get(f"/v1/leads/{r.json()['lead_id']}")).json()
            received = story["history"][0]
            assert received["actor"] == f"key:{key_id} (jane@corp.example scriptalert1script)"

            r = await admin.patch("/v1/owners/olive", json={"weight": 3}, headers={"X-Actor": "sam"})
            assert r.status_code == 200
            trail = (await admin.get("/v1/audit")).json()
            admin_id = parse_key(ADMIN_KEY).id  # type: ignore[union-attr]
            assert trail[0] | {"at": None} == {
                "at": None,
                "actor": f"key:{admin_id} (sam)",
                "action": "owner.patch",
                "subject": "owner:olive",
                "detail": {"fields": ["weight"]},
            }
            assert {(e["action"], e["subject"]) for e in trail} >= {
                ("owner.put", "owner:olive"),
                ("pool.put", "pool:sales"),
            }
            assert any(e["action"] == "ruleset.start" for e in trail)  # activations are in it too


class TestBrowsers:
    """CORS for the key's origins only, never credentials; JSON bodies only; no caching of /v1."""

    FORM = "https://forms.example"

    async def test_preflight(self, app: Litestar) -> None:
        async with authed(app) as admin:
            await new_key(admin, "leads:write", origins=(self.FORM,))
            ask = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
            ok = await admin.options("/v1/leads", headers=ask | {"Origin": self.FORM})
            assert ok.status_code == 204
            assert ok.headers["access-control-allow-origin"] == self.FORM
            assert "authorization" in ok.headers["access-control-allow-headers"].lower()
            assert "access-control-allow-credentials" not in ok.headers
            no = await admin.options("/v1/leads", headers=ask | {"Origin": "https://evil.example"})
            assert no.status_code == 403
            assert "access-control-allow-origin" not in no.headers

    async def test_requests_from_an_origin(self, app: Litestar) -> None:
        async with authed(app) as admin:
            await setup_pool(admin, ["olive"])
            token, _ = await new_key(admin, "leads:write", origins=(self.FORM,))
            form = bearer(token)
            r = await admin.post("/v1/leads", json=lead(1), headers=form | {"Origin": self.FORM})
            assert r.status_code == 201, r.text
            assert r.headers["access-control-allow-origin"] == self.FORM
            assert "origin" in r.headers["vary"].lower()
            r = await admin.post("/v1/leads", json=lead(2), headers=form | {"Origin": "https://evil.example"})
            assert r.status_code == 403
            assert "access-control-allow-origin" not in r.headers
            r = await admin.get("/v1/owners", headers={"Origin": self.FORM})  # not the admin key's origin
            assert r.status_code == 403

    @pytest.mark.parametrize(
        "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
    )
    async def test_json_routes_take_only_json(self, app: Litestar, content_type: str) -> None:
        async with authed(app) as admin:
            r = await admin.post(
                "/v1/leads", content=b'{"email": "a@b.example"}', headers={"Content-Type": content_type}
            )
            assert r.status_code == 415, r.text
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["type"].endswith("/unsupported-media-type")
            ok = await admin.post(
                "/v1/leads",
                content=b'{"email": "a@b.example"}',
                headers={"Content-Type": "application/json; charset=utf-8"},
            )
            assert ok.status_code == 201, ok.text

    async def test_security_headers(self, app: Litestar) -> None:
        async with authed(app, key=None) as anonymous:
            answers = [
                await anonymous.get("/v1/owners", headers=AUTH),
                await anonymous.get("/v1/owners"),
                await anonymous.get("/health/live"),
            ]
            for r in answers:
                assert r.headers["x-content-type-options"] == "nosniff"
                assert r.headers["x-frame-options"] == "DENY"
                assert r.headers["referrer-policy"] == "no-referrer"
                assert "default-src 'none'" in r.headers["content-security-policy"]
                assert "set-cookie" not in r.headers
            assert answers[0].headers["cache-control"] == "no-store"
            assert answers[1].headers["cache-control"] == "no-store"


_API = {"content-security-policy": API_CSP, "referrer-policy": "no-referrer"}
_PAGE = {"content-security-policy": CONSOLE_CSP, "referrer-policy": "same-origin"}


class TestSecurityHeadersByPath:
    """Each kind of path gets its own set of security headers, replacing any the response set."""

    @pytest.mark.parametrize(
        ("path", "expected"),
        [
            ("/v1/leads", {**_API, "cache-control": "no-store"}),
            ("/health/live", _API),
            ("/metrics", _API),
            ("/schema", {"referrer-policy": "no-referrer"}),
            ("/schema/swagger", {"referrer-policy": "no-referrer"}),
            ("/console", {**_PAGE, "cache-control": "no-store"}),
            ("/console/leads", {**_PAGE, "cache-control": "no-store"}),
            ("/console/static/console.css", _PAGE),
            ("/consoles", _API),
        ],
    )
    def test_the_set_of_each_path(self, path: str, expected: dict[str, str]) -> None:
        message: Any = {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/html"), (b"Cache-Control", b"max-age=60")],
        }
        scope: Any = {"type": "http", "path": path}
        asyncio.run(security_headers(message, scope))
        names = [name.decode().lower() for name, _ in message["headers"]]
        assert len(names) == len(set(names)), "a header appears twice"
        got = {name.decode().lower(): value.decode() for name, value in message["headers"]}
        assert got == {
            "content-type": "text/html",
            "x-content-type-options": "nosniff",
            "x-frame-options": "DENY",
            **({"cache-control": "max-age=60"} if "cache-control" not in expected else {}),
            **expected,
        }


class TestCli:
    """`leadroute keys`: the token alone on stdout, once."""

    def test_create_list_rotate_revoke(self, settings: Settings, clean: None) -> None:
        env = cli_env(settings)
        made = leadroute(
            "keys",
            "create",
            "--name",
            "form",
            "--scope",
            "leads:write",
            "--origin",
            "https://f.example",
            env=env,
        )
        assert made.returncode == 0, made.stderr
        token = made.stdout.strip()
        parsed = parse_key(token)
        assert parsed is not None
        assert made.stdout == token + "\n"
        listed = leadroute("keys", "list", env=env)
        assert parsed.id in listed.stdout
        assert "leads:write" in listed.stdout
        assert parsed.secret not in listed.stdout
        rotated = leadroute("keys", "rotate", parsed.id, env=env)
        assert rotated.returncode == 0, rotated.stderr
        assert parse_key(rotated.stdout.strip()).id == parsed.id  # type: ignore[union-attr]
        assert rotated.stdout.strip() != token
        revoked = leadroute("keys", "revoke", parsed.id, env=env)
        assert revoked.returncode == 0, revoked.stderr
        assert revoked.stdout == ""
        assert "revoked" in leadroute("keys", "list", env=env).stdout
        unknown = leadroute("keys", "revoke", "0000dead", env=env)
        assert unknown.returncode == 1
        bad = leadroute("keys", "create", "--name", "x", "--scope", "everything", env=env)
        assert bad.returncode == 2

    async def test_owners_import_is_audited_with_the_cli_actor(self, settings: Settings, clean: None) -> None:
        done = await asyncio.to_thread(
            leadroute, "owners", "import", "examples/owners.yaml", env=cli_env(settings)
        )
        assert done.returncode == 0, done.stderr
        async with connection(settings) as conn:
            row = await conn.fetchrow("SELECT actor, action, subject, detail FROM audit_log")
        assert row is not None
        assert row["actor"].startswith("cli:")
        assert (row["action"], row["subject"]) == ("owners.import", "file:examples/owners.yaml")
        assert "alice" in row["detail"]["owners"]

    def test_generate_makes_a_valid_admin_key_setting(self) -> None:
        made = leadroute("keys", "generate", env=cli_env())
        assert made.returncode == 0, made.stderr
        token = made.stdout.strip()
        assert Settings.from_env({"LEADROUTE_ADMIN_KEY": token}).admin_key == token
        with pytest.raises(Exception, match="LEADROUTE_ADMIN_KEY"):
            Settings.from_env({"LEADROUTE_ADMIN_KEY": "hunter2"})


class TestFirstStart:
    """With no key at all, the first start writes an admin key only its user can read; once."""

    async def test_key_file(self, fresh_database: str, tmp_path: Path) -> None:
        conn = await connect(fresh_database)
        try:
            await migrate(conn)
            path = await first_start_key(conn, tmp_path / "data")
            assert path == tmp_path / "data" / "admin.key"
            assert path.stat().st_mode & 0o777 == 0o600
            token = path.read_text().strip()
            key = parse_key(token)
            assert key is not None
            assert await conn.fetchval("SELECT scopes FROM api_keys WHERE id = $1", key.id) == ["admin"]
            assert await first_start_key(conn, tmp_path / "data") is None  # there is a key now
            assert path.read_text().strip() == token
        finally:
            await conn.close()
