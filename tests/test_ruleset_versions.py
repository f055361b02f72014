"""Ruleset versions: immutable stored versions, upload, activate, rollback, start-up, CLI, migration."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from leadroute.app import create_app
from leadroute.cli import main
from leadroute.config import Settings
from leadroute.rules import parse_ruleset
from leadroute.store.db import connect
from leadroute.store.migrate import available, migrate
from leadroute.store.rulesets import RulesetVersionConflict, load_stored_ruleset, store_ruleset
from ruleset_support import active_version, rules_text, upload, wait_for_version
from support import ADMIN_ACTOR, authed, connection, setup_pool

PROBLEM = "application/problem+json"


def app_on(settings: Settings, text: str, name: str = "rules.yaml") -> Any:
    return create_app(settings, ruleset=parse_ruleset(text, path=Path(name)))


class TestUpload:
    async def test_upload_stores_a_draft_once_and_lists_it(self, settings: Settings, clean: None) -> None:
        async with authed(app_on(settings, rules_text(1))) as client:
            await setup_pool(client)
            r = await upload(client, rules_text(2, 20), **{"X-Actor": "sam"})
            assert r.status_code == 201, r.text
            body = r.json()
            assert (body["version"], body["status"], body["created"]) == (2, "draft", True)
            assert body["created_by"] == f"{ADMIN_ACTOR} (sam)"
            assert body["tests"] == [{"name": "every lead scores 20", "passed": True}]
            assert len(body["sha256"]) == 64

            again = await upload(client, rules_text(2, 20), **{"content-type": "text/plain"})
            assert again.status_code == 200, again.text
            assert again.json()["created"] is False
            assert again.json()["sha256"] == body["sha256"]

            listing = (await client.get("/v1/rulesets")).json()
            assert [(v["version"], v["status"], v["active"]) for v in listing["versions"]] == [
                (2, "draft", False),
                (1, "published", True),
            ]
            assert listing["active"]["version"] == 1
            assert listing["active"]["action"] == "start"
            assert listing["versions"][1]["last_activated_at"] is not None
            assert listing["versions"][0]["last_activated_at"] is None

            one = (await client.get("/v1/rulesets/2")).json()
            assert one["source"] == rules_text(2, 20)
            assert one["active"] is False
            assert one["activations"] == []
            assert await active_version(client) == 1  # uploading never activates

    async def test_changed_content_under_a_stored_version_is_refused(
        self, settings: Settings, clean: None
    ) -> None:
        async with authed(app_on(settings, rules_text(1))) as client:
            await setup_pool(client)
            assert (await upload(client, rules_text(2, 20))).status_code == 201
            r = await upload(client, rules_text(2, 30), **{"X-Ruleset-Name": "inbound.yaml"})
            assert r.status_code == 409, r.text
            assert r.headers["content-type"].startswith(PROBLEM)
            problem = r.json()
            assert problem["type"].endswith("/ruleset-version-conflict")
            assert "inbound.yaml: version 2 is already stored with different content" in problem["detail"]
            assert "bump 'version:' to 3" in problem["detail"]
            assert problem["errors"][0]["field"] == "version"
            # the same for a version that is published and active
            r = await upload(client, rules_text(1, 99))
            assert r.status_code == 409
            assert (await client.get("/v1/rulesets/2")).json()["source"] == rules_text(2, 20)

    async def test_a_bad_upload_names_the_rule_test_or_field_and_stores_nothing(
        self, settings: Settings, clean: None
    ) -> None:
        async with authed(app_on(settings, rules_text(1))) as client:
            await setup_pool(client)
            failing = await upload(client, rules_text(2, 20, expect=25))
            assert failing.status_code == 422, failing.text
            assert failing.json()["type"].endswith("/ruleset-tests-failed")
            assert failing.json()["errors"][0]["test"] == "every lead scores 25"
            assert "score" in failing.json()["errors"][0]["message"]

            no_pool = await upload(client, rules_text(2, 20, pool="nowhere"))
            assert no_pool.status_code == 422
            assert no_pool.json()["errors"][0]["rule"] == "everyone"
            assert "nowhere" in no_pool.json()["errors"][0]["message"]

            broken = await upload(client, rules_text(2).replace("when: 'true'", "when: 'title =~~'", 1))
            assert broken.status_code == 422
            assert broken.json()["errors"][0]["rule"] == "base"

            form = await client.post(
                "/v1/rulesets", content=b"version=2", headers={"content-type": "text/html"}
            )
            assert form.status_code == 415
            assert form.json()["errors"][0]["field"] == "content-type"

            versions = (await client.get("/v1/rulesets")).json()["versions"]
            assert [v["version"] for v in versions] == [1]

    async def test_validate_says_whether_an_upload_would_be_new_stored_or_refused(
        self, settings: Settings, clean: None
    ) -> None:
        async with authed(app_on(settings, rules_text(1))) as client:
            await setup_pool(client)

            async def validate(text: str) -> dict[str, Any]:
                r = await client.post("/v1/rulesets/validate", content=text.encode())
                assert r.status_code == 200, r.text
                body: dict[str, Any] = r.json()
                return body

            new = await validate(rules_text(2, 20))
            assert (new["version_status"], new["passed"]) == ("new", True)
            same = await validate(rules_text(1))
            assert (same["version_status"], same["passed"]) == ("stored", True)
            changed = await validate(rules_text(1, 50))
            assert (changed["version_status"], changed["passed"]) == ("conflict", False)
            assert "bump 'version:' to 2" in changed["version_message"]
            assert [v["version"] for v in (await client.get("/v1/rulesets")).json()["versions"]] == [1]

    async def test_unknown_version_is_404(self, settings: Settings, clean: None) -> None:
        async with authed(app_on(settings, rules_text(1))) as client:
            assert (await client.get("/v1/rulesets/7")).status_code == 404
            r = await client.post("/v1/rulesets/7/activate")
            assert r.status_code == 404
            assert r.json()["errors"][0]["field"] == "version"

    async def test_a_version_beyond_the_column_is_unknown_not_a_500(
        self, settings: Settings, clean: None
    ) -> None:
        huge = 2**31  # one more than PostgreSQL's integer holds
        async with authed(app_on(settings, rules_text(1))) as client:
            assert (await client.get(f"/v1/rulesets/{huge}")).status_code == 404
            assert (await client.get(f"/v1/rulesets/{10**30}")).status_code == 404
            assert (await client.post(f"/v1/rulesets/{huge}/activate")).status_code == 404
            assert (await client.post("/v1/rulesets/rollback", json={"version": huge})).status_code == 404
            r = await client.post(
                "/v1/simulate", json={"lead": {"email": "a@b.example"}, "ruleset_version": huge}
            )
            assert r.status_code == 422
            assert r.json()["errors"][0]["field"] == "ruleset_version"
            r = await client.post("/v1/rulesets/replay", json={"version": huge})
            assert r.status_code == 422
            assert r.json()["errors"][0]["field"] == "version"
            r = await upload(client, rules_text(1).replace("version: 1\n", f"version: {huge}\n", 1))
            assert r.status_code == 422
            assert "is too large (at most 2147483647)" in r.json()["errors"][0]["message"]


class TestActivateAndRollback:
    async def test_activate_publishes_and_new_decisions_carry_the_version(
        self, settings: Settings, clean: None
    ) -> None:
        async with authed(app_on(settings, rules_text(1))) as client:
            await setup_pool(client)
            sha2 = (await upload(client, rules_text(2, 20))).json()["sha256"]
            r = await client.post("/v1/rulesets/2/activate", headers={"X-Actor": "sam"})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["active"]["version"] == 2
            assert body["active"]["by"] == f"{ADMIN_ACTOR} (sam)"
            assert body["previous"]["version"] == 1
            assert body["changed"] is True
            assert body["instance_version"] == 2  # this instance switched before answering
            assert await active_version(client) == 2
            stored = (await client.get("/v1/rulesets/2")).json()
            assert stored["status"] == "published"
            assert stored["published_by"] == f"{ADMIN_ACTOR} (sam)"
            assert [a["action"] for a in stored["activations"]] == ["activate"]

            lead = (await client.post("/v1/leads", json={"email": "kim@acme.example"})).json()
            assert lead["score"] == 20
            assert (lead["ruleset_version"], lead["ruleset_sha256"]) == (2, sha2)
            explain = (await client.get(f"/v1/leads/{lead['lead_id']}/explain")).json()
            assert explain["ruleset"] == {"version": 2, "sha256": sha2}

            again = await client.post("/v1/rulesets/2/activate")
            assert again.json()["changed"] is False

    async def test_rollback_walks_back_through_history(self, settings: Settings, clean: None) -> None:
        async with authed(app_on(settings, rules_text(1))) as client:
            await setup_pool(client)
            for version in (2, 3):
                assert (await upload(client, rules_text(version, 10 * version))).status_code == 201
                assert (await client.post(f"/v1/rulesets/{version}/activate")).status_code == 200
            r = await client.post("/v1/rulesets/rollback")
            assert r.status_code == 200, r.text
            assert (r.json()["active"]["version"], r.json()["previous"]["version"]) == (2, 3)
            assert r.json()["active"]["action"] == "rollback"
            assert await active_version(client) == 2
            r = await client.post("/v1/rulesets/rollback")
            assert r.json()["active"]["version"] == 1
            lead = (await client.post("/v1/leads", json={"email": "kim@acme.example"})).json()
            assert (lead["ruleset_version"], lead["score"]) == (1, 10)
            nothing = await client.post("/v1/rulesets/rollback")
            assert nothing.status_code == 409
            assert nothing.json()["type"].endswith("/nothing-to-roll-back")
            # to a given version, then a plain rollback returns to where we were
            r = await client.post("/v1/rulesets/rollback", json={"version": 3})
            assert r.json()["active"]["version"] == 3
            r = await client.post("/v1/rulesets/rollback")
            assert r.json()["active"]["version"] == 1

    async def test_rollback_refuses_drafts_unknown_versions_and_bad_bodies(
        self, settings: Settings, clean: None
    ) -> None:
        async with authed(app_on(settings, rules_text(1))) as client:
            await setup_pool(client)
            await upload(client, rules_text(2, 20))
            draft = await client.post("/v1/rulesets/rollback", json={"version": 2})
            assert draft.status_code == 409
            assert draft.json()["type"].endswith("/ruleset-not-published")
            assert (await client.post("/v1/rulesets/rollback", json={"version": 9})).status_code == 404
            bad = await client.post("/v1/rulesets/rollback", json={"versoin": 1})
            assert bad.status_code == 400
            assert "versoin" in bad.json()["detail"]
            assert await active_version(client) == 1

    async def test_activation_checks_pools_again(self, settings: Settings, clean: None) -> None:
        async with authed(app_on(settings, rules_text(1))) as client:
            await setup_pool(client)
            await setup_pool(client, pool="later")
            assert (await upload(client, rules_text(2, 20, pool="later"))).status_code == 201
            async with connection(settings) as conn:
                await conn.execute("DELETE FROM pools WHERE id = 'later'")
            r = await client.post("/v1/rulesets/2/activate")
            assert r.status_code == 422
            assert r.json()["errors"][0]["rule"] == "everyone"
            assert await active_version(client) == 1


class TestStorage:
    async def test_stored_versions_cannot_change(self, settings: Settings, clean: None) -> None:
        async with authed(app_on(settings, rules_text(1))):
            pass
        async with connection(settings) as conn:
            with pytest.raises(asyncpg.RaiseError, match="cannot change"):
                await conn.execute("UPDATE rulesets SET source = 'x' WHERE version = 1")
            with pytest.raises(asyncpg.RaiseError, match="cannot be deleted"):
                await conn.execute("DELETE FROM rulesets WHERE version = 1")
            with pytest.raises(asyncpg.UniqueViolationError):
                await conn.execute(
                    "INSERT INTO rulesets (version, sha256, source, status) VALUES (1, 'other', 'x', 'draft')"
                )

    async def test_load_stored_ruleset(self, settings: Settings, clean: None) -> None:
        async with authed(app_on(settings, rules_text(1, 15))):
            pass
        async with connection(settings) as conn:
            loaded = await load_stored_ruleset(conn, 1)
            assert loaded is not None
            ruleset, ruleset_id = loaded
            assert ruleset.version == 1
            assert ruleset.scoring_rules[0].points == 15
            assert ruleset_id == await conn.fetchval("SELECT id FROM rulesets WHERE version = 1")
            assert await load_stored_ruleset(conn, 2) is None

    async def test_migration_keeps_the_newest_of_versions_recorded_twice(self, fresh_database: str) -> None:
        conn = await connect(fresh_database)
        try:
            first = available()[0]
            assert first.version == 1
            await conn.execute(first.sql)
            await conn.execute(
                "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
                " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (1, $1, $2)",
                first.name,
                first.checksum,
            )
            await conn.execute(
                "INSERT INTO rulesets (version, sha256, source) VALUES (4, 'old', 'a'), (4, 'new', 'b')"
            )
            await migrate(conn)
            rows = await conn.fetch("SELECT sha256, status FROM rulesets ORDER BY id")
            assert [(r["sha256"], r["status"]) for r in rows] == [("old", "legacy"), ("new", "published")]
            loaded = await conn.fetchval(
                "SELECT source FROM rulesets WHERE version = 4 AND status <> 'legacy'"
            )
            assert loaded == "b"
        finally:
            await conn.close()


class TestStartup:
    async def test_a_restart_keeps_the_fleets_choice_and_a_new_file_version_wins(
        self, settings: Settings, clean: None
    ) -> None:
        async with authed(app_on(settings, rules_text(1))) as client:
            await setup_pool(client)
            await upload(client, rules_text(2, 20))
            await client.post("/v1/rulesets/2/activate")
        # restart with the same file: v2 (activated while it ran) stays, loaded from its stored source
        async with authed(app_on(settings, rules_text(1))) as client:
            assert await active_version(client) == 2
            lead = (await client.post("/v1/leads", json={"email": "kim@acme.example"})).json()
            assert lead["score"] == 20
            await client.post("/v1/rulesets/rollback")
        async with authed(app_on(settings, rules_text(1))) as client:
            assert await active_version(client) == 1  # the rollback survived the restart
        # a deploy of a new file version stores and activates it
        async with authed(app_on(settings, rules_text(3, 30))) as client:
            assert await active_version(client) == 3
            listing = (await client.get("/v1/rulesets")).json()
            assert listing["active"]["action"] == "start"
            assert [v["status"] for v in listing["versions"]] == ["published"] * 3

    async def test_a_changed_file_under_a_stored_version_starts_on_the_last_good_one(
        self, settings: Settings, clean: None, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A sales-ops typo (the file edited, the version not bumped) is not an outage: the
        instance runs the active stored version, logs an ERROR, and /health/ready (still 200)
        says why with ``ruleset_file_conflict: 1``."""
        async with authed(app_on(settings, rules_text(1))) as client:
            await setup_pool(client)
        async with authed(app_on(settings, rules_text(1, 50), name="inbound.yaml")) as client:
            ready = await client.get("/health/ready")
            assert ready.status_code == 200
            body = ready.json()
            assert (body["ruleset"], body["ruleset_file_conflict"]) == (1, 1)
            assert "inbound.yaml: version 1 is already stored with different content" in body["detail"]
            assert "bump 'version:' to 2" in body["detail"]
            assert "Serving the last good version, v1" in body["detail"]
            lead = (await client.post("/v1/leads", json={"email": "kim@acme.example"})).json()
            assert lead["score"] == 10  # the stored v1, not the edited file's 50
        refused = [r for r in caplog.records if r.levelname == "ERROR" and "RULES FILE REFUSED" in r.message]
        assert refused
        async with authed(app_on(settings, rules_text(1))) as client:
            assert (await client.get("/health/ready")).json()["ruleset_file_conflict"] == 0

    async def test_with_no_active_version_a_changed_file_still_refuses_to_start(
        self, settings: Settings, clean: None
    ) -> None:
        """Nothing was ever activated (only stored): there is no last good version to fall back to."""
        async with connection(settings) as conn:
            await migrate(conn)
            await store_ruleset(conn, parse_ruleset(rules_text(1)), status="published", actor="t")
        with pytest.raises(BaseException) as info:  # noqa: PT011 (the test client wraps it in a group)
            async with authed(app_on(settings, rules_text(1, 50), name="inbound.yaml")):
                pass
        conflict = find_error(info.value, RulesetVersionConflict)
        assert "bump 'version:' to 2" in str(conflict)

    async def test_serve_refuses_to_start_with_the_message_when_nothing_is_active(
        self, settings: Settings, clean: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        async with connection(settings) as conn:
            await migrate(conn)
            await store_ruleset(conn, parse_ruleset(rules_text(1)), status="published", actor="t")
        rules = tmp_path / "inbound.yaml"
        rules.write_text(rules_text(1, 50))
        env = cli_env(settings, monkeypatch)
        env.setenv("LEADROUTE_RULES_PATH", str(rules))
        code, _, err = await run_cli(["serve"])
        assert code == 1
        assert f"{rules}: version 1 is already stored with different content" in err
        assert "bump 'version:' to 2" in err

    async def test_rules_check_reports_a_changed_file_against_the_stored_versions(
        self, settings: Settings, clean: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """`rules check` passes a file's own tests either way; against the database it fails a
        version edited without a bump, and says plainly when it could not check."""
        async with authed(app_on(settings, rules_text(1))) as client:
            await setup_pool(client)
        rules = tmp_path / "inbound.yaml"
        rules.write_text(rules_text(1, 50))
        env = cli_env(settings, monkeypatch)
        code, out, err = await run_cli(["rules", "check", str(rules)])
        assert code == 1, out + err
        assert "version 1 is already stored with different content" in err
        assert "checked against LEADROUTE_DATABASE_URL" in err

        rules.write_text(rules_text(2, 50))
        code, out, err = await run_cli(["rules", "check", str(rules)])
        assert code == 0, out + err
        assert "version 2 is not stored yet (a new version) in LEADROUTE_DATABASE_URL" in out
        rules.write_text(rules_text(1))
        code, out, err = await run_cli(["rules", "check", str(rules)])
        assert (code, "version 1 is stored with this content") == (0, out.splitlines()[-1][:37])

        env.setenv("LEADROUTE_DATABASE_URL", "postgresql://127.0.0.1:1/nothing")
        code, out, err = await run_cli(["rules", "check", str(rules)])
        assert code == 0, out + err
        assert "NOT CHECKED against the stored versions: cannot reach LEADROUTE_DATABASE_URL" in err

        env.delenv("LEADROUTE_DATABASE_URL")
        env.delenv("LEADROUTE_REDIS_URL")
        env.setenv("LEADROUTE_DATA_DIR", str(tmp_path / "nothing-runs-here"))
        code, out, err = await run_cli(["rules", "check", str(rules)])
        assert code == 0, out + err
        assert "NOT CHECKED against the stored versions: LEADROUTE_DATABASE_URL is not set" in err


def find_error(exc: BaseException, kind: type[BaseException]) -> BaseException:
    """``exc`` or the first ``kind`` inside it (exception groups, causes)."""
    if isinstance(exc, kind):
        return exc
    inner: list[BaseException] = list(exc.exceptions) if isinstance(exc, BaseExceptionGroup) else []
    inner += [e for e in (exc.__cause__, exc.__context__) if e is not None]
    for sub in inner:
        try:
            return find_error(sub, kind)
        except LookupError:
            continue
    raise LookupError(f"no {kind.__name__} in {exc!r}")


def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    assert settings.database_url is not None
    assert settings.redis_url is not None
    monkeypatch.setenv("LEADROUTE_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("LEADROUTE_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("LEADROUTE_REDIS_PREFIX", settings.redis_prefix)
    return monkeypatch


async def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """Run ``leadroute ARGV`` in a thread (it runs its own event loop); exit code, stdout, stderr."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()

    def call() -> int:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            return main(argv)

    code = await asyncio.to_thread(call)
    return code, out.getvalue(), err.getvalue()


class TestCli:
    async def test_publish_activate_rollback_list_reach_a_running_instance(
        self, settings: Settings, clean: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        cli_env(settings, monkeypatch)
        async with authed(app_on(settings, rules_text(1))) as client:
            await setup_pool(client)
            rules = tmp_path / "inbound.yaml"
            rules.write_text(rules_text(2, 20))
            code, out, err = await run_cli(["rules", "publish", str(rules)])
            assert code == 0, err
            assert "published version 2" in out
            assert await active_version(client) == 1  # published, not active

            code, out, _ = await run_cli(["rules", "activate", "2"])
            assert code == 0
            assert "version 2" in out
            assert "was version 1" in out
            await wait_for_version(client, 2)

            code, out, _ = await run_cli(["rules", "rollback"])
            assert code == 0
            await wait_for_version(client, 1)

            rules.write_text(rules_text(3, 30))
            code, out, _ = await run_cli(["rules", "publish", "--activate", str(rules)])
            assert code == 0, out
            await wait_for_version(client, 3)

            code, out, _ = await run_cli(["rules", "rollback", "2"])
            assert code == 0
            await wait_for_version(client, 2)

            code, out, _ = await run_cli(["rules", "list"])
            assert code == 0
            lines = out.splitlines()
            assert lines[0].split()[:3] == ["VERSION", "STATUS", "SHA256"]
            assert lines[1].split()[0] == "3"
            active = [line for line in lines if line.startswith("*")]
            assert len(active) == 1
            assert active[0].split()[1] == "2"

    async def test_publish_refuses_conflicts_failing_tests_and_unknown_pools(
        self, settings: Settings, clean: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        cli_env(settings, monkeypatch)
        async with authed(app_on(settings, rules_text(1))) as client:
            await setup_pool(client)
        rules = tmp_path / "inbound.yaml"
        rules.write_text(rules_text(1, 50))
        code, _, err = await run_cli(["rules", "publish", str(rules)])
        assert code == 1
        assert f"{rules}: version 1 is already stored with different content" in err
        rules.write_text(rules_text(2, 20, expect=21))
        code, _, err = await run_cli(["rules", "publish", str(rules)])
        assert code == 1
        assert "test 'every lead scores 21' fails" in err
        rules.write_text(rules_text(2, 20, pool="nowhere"))
        code, _, err = await run_cli(["rules", "publish", str(rules)])
        assert code == 1
        assert "rule 'everyone'" in err
        assert "nowhere" in err
        code, _, err = await run_cli(["rules", "activate", "5"])
        assert code == 1
        assert "no ruleset version 5" in err
        code, _, err = await run_cli(["rules", "rollback"])
        assert code == 1
        assert "no earlier activation" in err


def test_settings_reject_non_positive_intervals() -> None:
    from leadroute.config import SettingsError

    with pytest.raises(SettingsError, match="LEADROUTE_RULESET_POLL_INTERVAL"):
        Settings.from_env({"LEADROUTE_RULESET_POLL_INTERVAL": "0"})
    with pytest.raises(SettingsError, match="LEADROUTE_WATCH_INTERVAL"):
        Settings.from_env({"LEADROUTE_WATCH_INTERVAL": "-1"})
    assert Settings.from_env({"LEADROUTE_WATCH_RULES": "true"}).watch_rules is True
