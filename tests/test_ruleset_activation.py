"""Fleet-wide activation with two app instances on one database, and the opt-in rules-file watch.

Two ``create_app`` apps in one process share the test database as two servers would: each has its
own pool, its own LISTEN connection and its own ``rt.rules``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, cast

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from leadroute.app import create_app
from leadroute.config import Settings
from leadroute.rules import parse_ruleset
from leadroute.rulesets import RulesetSync
from leadroute.store.rulesets import store_ruleset
from ruleset_support import active_version, rules_text, upload, wait_for_version
from support import authed, connection, setup_pool

Client = AsyncTestClient[Litestar]


@asynccontextmanager
async def fleet(settings: Settings, text: str, n: int = 2) -> AsyncIterator[list[Client]]:
    """``n`` instances started on the same rules file; yields a client of each."""
    async with AsyncExitStack() as stack:
        clients = []
        for _ in range(n):
            app = create_app(settings, ruleset=parse_ruleset(text, path=Path("fleet.yaml")))
            clients.append(await stack.enter_async_context(authed(app)))
        yield clients


async def write(path: Path, text: str) -> None:
    await asyncio.to_thread(path.write_text, text)


def sync_of(client: Client) -> RulesetSync:
    return cast(RulesetSync, client.app.state.runtime.rulesets)


class TestFleet:
    """An activation on one instance reaches every other one, and no request sees half of it."""

    async def test_activate_on_one_instance_switches_the_other_within_a_second(
        self, settings: Settings, clean: None
    ) -> None:
        # a 60 s poll: only the notification can make the other instance switch in time
        slow_poll = msgspec.structs.replace(settings, ruleset_poll_interval=60.0)
        async with fleet(slow_poll, rules_text(1)) as (a, b):
            await setup_pool(a)
            assert (await upload(a, rules_text(2, 20))).status_code == 201
            assert await active_version(b) == 1
            started = time.monotonic()
            r = await a.post("/v1/rulesets/2/activate")
            assert r.status_code == 200, r.text
            await wait_for_version(b, 2, within=1.0 - (time.monotonic() - started))
            lead = (await b.post("/v1/leads", json={"email": "kim@acme.example"})).json()
            assert (lead["ruleset_version"], lead["score"]) == (2, 20)

            started = time.monotonic()
            r = await b.post("/v1/rulesets/rollback")
            assert r.status_code == 200, r.text
            await wait_for_version(a, 1, within=1.0 - (time.monotonic() - started))
            lead = (await a.post("/v1/leads", json={"email": "lee@acme.example"})).json()
            assert (lead["ruleset_version"], lead["score"]) == (1, 10)

    async def test_a_bad_upload_never_replaces_the_active_ruleset(
        self, settings: Settings, clean: None
    ) -> None:
        async with fleet(settings, rules_text(1)) as (a, b):
            await setup_pool(a)
            assert (await upload(a, rules_text(2, 20, expect=99))).status_code == 422  # its test fails
            assert (await upload(a, rules_text(1, 50))).status_code == 409  # changed, same version
            assert (await upload(a, rules_text(2, 20, pool="nowhere"))).status_code == 422
            assert (await upload(a, "version: [")).status_code == 422
            assert (await a.post("/v1/rulesets/2/activate")).status_code == 404  # nothing was stored
            await asyncio.sleep(0.3)  # time enough for a notification, had one been sent
            for client in (a, b):
                assert await active_version(client) == 1
                lead = (await client.post("/v1/leads", json={"email": "kim@acme.example"})).json()
                assert (lead["ruleset_version"], lead["score"]) == (1, 10)

    async def test_the_poll_catches_an_activation_whose_notification_was_missed(
        self, settings: Settings, clean: None
    ) -> None:
        fast_poll = msgspec.structs.replace(settings, ruleset_poll_interval=0.2)
        async with fleet(fast_poll, rules_text(1)) as (a, b):
            async with connection(settings) as conn:
                stored, _ = await store_ruleset(
                    conn, parse_ruleset(rules_text(2, 20)), status="published", actor="test"
                )
                # an activation row written without NOTIFY: as if the notification were lost
                await conn.execute(
                    "INSERT INTO ruleset_activations (ruleset_id, action) VALUES ($1, 'activate')", stored.id
                )
            await wait_for_version(a, 2, within=1.0)
            await wait_for_version(b, 2, within=1.0)

    async def test_the_listener_reconnects_after_its_connection_drops(
        self, settings: Settings, clean: None
    ) -> None:
        fast_poll = msgspec.structs.replace(settings, ruleset_poll_interval=0.2)
        async with fleet(fast_poll, rules_text(1)) as (a, b):
            await setup_pool(a)
            await upload(a, rules_text(2, 20))
            sync = sync_of(b)
            old_pid = sync.listener_pid
            assert old_pid is not None
            async with connection(settings) as conn:
                assert await conn.fetchval("SELECT pg_terminate_backend($1)", old_pid)
            deadline = time.monotonic() + 2.0
            while sync.listener_pid in (None, old_pid):
                assert time.monotonic() < deadline, "the listener did not reconnect"
                await asyncio.sleep(0.02)
            assert (await a.post("/v1/rulesets/2/activate")).status_code == 200
            await wait_for_version(b, 2, within=1.0)

    async def test_no_request_sees_a_half_switched_ruleset(self, settings: Settings, clean: None) -> None:
        async with fleet(settings, rules_text(1)) as (a, b):
            await setup_pool(a)
            sha = {1: (await a.get("/v1/rulesets/active")).json()["sha256"]}
            sha[2] = (await upload(a, rules_text(2, 20))).json()["sha256"]

            async def post(n: int) -> dict[str, Any]:
                r = await b.post("/v1/leads", json={"email": f"p{n}@acme.example"})
                assert r.status_code == 201, r.text
                result: dict[str, Any] = r.json()
                return result

            # Each round activates the other version on A and at once sends a burst of leads to B,
            # which switches (on A's notification) while the burst is in flight.
            results: list[dict[str, Any]] = []
            for round_ in range(8):
                if round_:
                    r = await a.post(f"/v1/rulesets/{2 if round_ % 2 else 1}/activate")
                    assert r.status_code == 200, r.text
                results += await asyncio.gather(*(post(10 * round_ + n) for n in range(10)))
            seen = {(d["ruleset_version"], d["ruleset_sha256"], d["score"]) for d in results}
            assert seen == {(1, sha[1], 10), (2, sha[2], 20)}  # both, and never a mix
            async with connection(settings) as conn:
                mismatched = await conn.fetchval(
                    "SELECT count(*) FROM decisions d JOIN rulesets r ON r.id = d.ruleset_id"
                    " WHERE r.version <> d.ruleset_version OR r.sha256 <> d.ruleset_sha256"
                )
            assert mismatched == 0


class _Collect(logging.Handler):
    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class TestWatch:
    """With watching on, a good edit of the rules file goes live fleet-wide and a bad one never
    does; without it (the default), editing the file changes nothing until a restart."""

    @pytest.fixture
    def rules_file(self, tmp_path: Path) -> Path:
        path = tmp_path / "inbound.yaml"
        path.write_text(rules_text(1))
        return path

    @pytest.fixture
    def logged(self) -> Iterator[list[logging.LogRecord]]:
        """Records of the sync logger (a handler of its own: Litestar's logging set-up replaces
        the root handlers that pytest's caplog relies on)."""
        handler = _Collect(logging.INFO)
        records = handler.records
        logger = logging.getLogger("leadroute.rulesets.sync")
        logger.addHandler(handler)
        previous = logger.level
        logger.setLevel(logging.INFO)
        try:
            yield records
        finally:
            logger.removeHandler(handler)
            logger.setLevel(previous)

    async def wait_for_log(self, logged: list[logging.LogRecord], text: str, within: float = 2.0) -> None:
        deadline = time.monotonic() + within
        while not any(text in r.getMessage() for r in logged):
            assert time.monotonic() < deadline, f"no log line with {text!r}"
            await asyncio.sleep(0.02)

    async def test_a_good_change_goes_live_fleet_wide_and_a_bad_one_never_does(
        self, settings: Settings, clean: None, rules_file: Path, logged: list[logging.LogRecord]
    ) -> None:
        watching = msgspec.structs.replace(
            settings, watch_rules=True, watch_interval=0.05, rules_path=rules_file
        )
        async with AsyncExitStack() as stack:
            a = await stack.enter_async_context(authed(create_app(watching)))
            b = await stack.enter_async_context(
                authed(create_app(settings, ruleset=parse_ruleset(rules_text(1))))
            )
            await setup_pool(a)
            assert await active_version(a) == 1

            await write(rules_file, rules_text(2, 20))
            await wait_for_version(a, 2, within=2.0)
            await wait_for_version(b, 2, within=1.0)  # the other instance does not watch: it follows
            listing = (await a.get("/v1/rulesets")).json()
            assert (listing["active"]["version"], listing["active"]["action"]) == (2, "watch")
            assert listing["versions"][0]["status"] == "published"

            bad: list[tuple[str, str]] = [
                ("version: 3\nscoring: [", "does not load"),
                (rules_text(3, 30, expect=31), "1 test(s) fail ('every lead scores 31'"),
                (rules_text(3, 30, pool="nowhere"), "names unknown pools"),
                (rules_text(2, 25), "bump 'version:' to 3"),
            ]
            for text, message in bad:
                await write(rules_file, text)
                await self.wait_for_log(logged, message)
                assert await active_version(a) == 2
                assert await active_version(b) == 2
            errors = [r for r in logged if r.levelno >= logging.ERROR]
            assert len(errors) == len(bad)
            assert all("stays active" in r.getMessage() for r in errors)
            assert not any(
                "test@example.com" in r.getMessage() for r in logged
            )  # the test lead's email: no PII in logs

            await write(rules_file, rules_text(3, 30))
            await wait_for_version(a, 3, within=2.0)
            await wait_for_version(b, 3, within=1.0)

    async def test_reverting_the_file_to_a_stored_version_activates_it(
        self, settings: Settings, clean: None, rules_file: Path
    ) -> None:
        watching = msgspec.structs.replace(
            settings, watch_rules=True, watch_interval=0.05, rules_path=rules_file
        )
        async with authed(create_app(watching)) as client:
            await setup_pool(client)
            await write(rules_file, rules_text(2, 20))
            await wait_for_version(client, 2, within=2.0)
            await write(rules_file, rules_text(1))
            await wait_for_version(client, 1, within=2.0)
            assert [v["version"] for v in (await client.get("/v1/rulesets")).json()["versions"]] == [2, 1]

    async def test_watch_is_off_by_default(self, settings: Settings, clean: None, rules_file: Path) -> None:
        # A short interval, so that a watch left on by default would pick the edit up many times
        # over within the wait; the same edit with watching switched on shows the wait is enough.
        quick = msgspec.structs.replace(settings, rules_path=rules_file, watch_interval=0.05)
        assert await self.version_after_an_edit(quick, rules_file) == 1
        watching = msgspec.structs.replace(quick, watch_rules=True)
        assert await self.version_after_an_edit(watching, rules_file) == 2

    async def version_after_an_edit(self, settings: Settings, rules_file: Path, wait: float = 1.0) -> int:
        """Start an app on ``rules_file`` (v1), edit it to v2, wait ``wait`` s: the version active then."""
        await write(rules_file, rules_text(1))
        async with authed(create_app(settings)) as client:
            await setup_pool(client)
            assert await active_version(client) == 1
            await write(rules_file, rules_text(2, 20))
            deadline = time.monotonic() + wait
            version = await active_version(client)
            while version == 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
                version = await active_version(client)
            return version
