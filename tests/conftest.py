"""Real PostgreSQL and Redis for the tests: the local servers if they answer, else embedded ones.

Each test run creates its own database (dropped at the end) and its own Redis key prefix (deleted
at the end), so runs never see each other's data. Tests that use the app start from empty tables.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from leadroute.app import create_app
from leadroute.config import Settings
from leadroute.rules import Ruleset, parse_ruleset
from leadroute.runtime import Clock, utc_now
from leadroute.store.db import connect
from leadroute.store.migrate import migrate
from support import ADMIN_KEY, SECRET_KEY, authed, connection

ROOT = Path(__file__).resolve().parent.parent
LOCAL_POSTGRES = "postgresql://127.0.0.1:5432/postgres"
LOCAL_REDIS = "redis://127.0.0.1:6379/0"


class Servers(msgspec.Struct, frozen=True):
    admin_dsn: str  # a database we may CREATE DATABASE from
    redis_url: str


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


async def _postgres_usable(dsn: str) -> bool:
    try:
        conn = await connect(dsn, timeout=2)
    except (OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    """Local servers when both answer (CI, dev machines); embedded ones otherwise (a fresh machine)."""
    local = (
        _answers("127.0.0.1", 5432)
        and _answers("127.0.0.1", 6379)
        and asyncio.run(_postgres_usable(LOCAL_POSTGRES))
    )
    if local:
        yield Servers(LOCAL_POSTGRES, LOCAL_REDIS)
        return
    from leadroute.embedded import EmbeddedServers

    with tempfile.TemporaryDirectory(prefix="leadroute-test-") as data_dir:
        embedded = EmbeddedServers(Path(data_dir), database="postgres")
        embedded.start()
        try:
            yield Servers(embedded.database_url, embedded.redis_url)
        finally:
            embedded.stop()


def _with_database(dsn: str, name: str) -> str:
    """The same DSN pointing at another database (works for host and unix-socket DSNs)."""
    if "?" in dsn:
        base, _, query = dsn.partition("?")
        return f"{base.rsplit('/', 1)[0]}/{name}?{query}"
    return f"{dsn.rsplit('/', 1)[0]}/{name}"


async def _drop_keys(redis_url: str, prefix: str) -> None:
    """Delete every key under this run's prefix (never FLUSHALL: the server may be shared)."""
    redis = Redis.from_url(redis_url)
    try:
        keys = [k async for k in redis.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


@pytest.fixture(scope="session")
async def settings(servers: Servers) -> AsyncIterator[Settings]:
    """Settings for this run: a database and a Redis prefix of its own, removed afterwards."""
    run = secrets.token_hex(4)
    database = f"leadroute_test_{run}"
    admin = await connect(servers.admin_dsn)
    await admin.execute(f'CREATE DATABASE "{database}"')
    settings = Settings.from_env(
        {},
        database_url=_with_database(servers.admin_dsn, database),
        redis_url=servers.redis_url,
        redis_prefix=f"lrtest{run}",
        rules_path=str(ROOT / "rules"),
        db_pool_min=1,
        db_pool_max=30,
        sla_poll_seconds=0,  # no background SLA scheduler: tests fire timers with fire_due_timers
        reconcile_minutes=0,  # no periodic reconcile: tests that set counts by hand keep them
        outbound_poll_seconds=0,  # no background relay: outbound tests run its passes themselves
        admin_key=ADMIN_KEY,  # every app stores it at start; clients send it (support.authed)
        secret_key=SECRET_KEY,  # webhook secrets are stored encrypted under it
    )
    try:
        yield settings
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()
        await _drop_keys(servers.redis_url, settings.redis_prefix)


@pytest.fixture
async def fresh_database(servers: Servers) -> AsyncIterator[str]:
    """An empty database of its own for one test, dropped afterwards; yields its DSN."""
    name = f"leadroute_fresh_{secrets.token_hex(4)}"
    admin = await connect(servers.admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(servers.admin_dsn, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def clean(settings: Settings) -> None:
    """Empty tables and no routing state: every test starts from nothing."""
    assert settings.database_url is not None
    assert settings.redis_url is not None
    async with connection(settings) as conn:
        await migrate(conn)
        tables = await conn.fetchval(
            "SELECT string_agg(quote_ident(tablename), ', ') FROM pg_tables"
            " WHERE schemaname = current_schema() AND tablename <> 'schema_migrations'"
        )
        await conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    await _drop_keys(settings.redis_url, settings.redis_prefix)


@pytest.fixture
def make_app(settings: Settings, clean: None) -> Any:
    """Build an app, optionally on a ruleset given as YAML text."""

    def build(ruleset: str | Ruleset | None = None, *, clock: Clock = utc_now) -> Litestar:
        if isinstance(ruleset, str):
            ruleset = parse_ruleset(ruleset, path=Path("test.yaml"))
        return create_app(settings, ruleset=ruleset, clock=clock)

    return build


@pytest.fixture
async def client(make_app: Any) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """A client of one app instance on the default ruleset."""
    async with authed(make_app()) as c:
        yield c


class FakeClock:
    """A clock tests move by hand: ``clock()`` is "now", ``clock.advance(minutes=31)`` moves it."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 23, 15, 0, tzinfo=UTC)  # a Monday, 15:00 UTC

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    """A fresh :class:`FakeClock` per test (pass it to ``make_app(clock=clock)``)."""
    return FakeClock()


PHASE_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()
"""``item.stash[PHASE_REPORTS]["call"]``: how the test itself went."""


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the test item (``item.stash``), so a fixture's teardown can
    tell whether the test failed (the browser tests' ``page`` saves a screenshot then)."""
    report = yield
    item.stash.setdefault(PHASE_REPORTS, {})[report.when] = report
    return report
