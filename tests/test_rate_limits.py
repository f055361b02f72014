"""Rate limits: exact across instances (Redis), answered 429 with Retry-After and the RateLimit
headers, and a refused lead is not written."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import FakeClock
from leadroute.config import Settings
from leadroute.errors import SettingsError
from leadroute.limits import Limit, parse_limit, parse_scope_limits
from sla_support import instance, sla_rules
from support import count, lead, owner, pool


class TestParsing:
    """Limits are written N/s, N/m or N/h; 0 turns one off; anything else names the setting."""

    def test_rates(self) -> None:
        assert parse_limit("100/s", setting="X") == Limit(count=100, window=1)
        assert parse_limit(" 6000 / m ", setting="X") == Limit(count=6000, window=60)
        assert parse_limit("0", setting="X") is None
        assert parse_scope_limits("leads:write=200/s, default=50/m", setting="X") == {
            "leads:write": Limit(count=200, window=1),
            "default": Limit(count=50, window=60),
        }

    @pytest.mark.parametrize("bad", ["100", "100/d", "-1/s", "0/s", "fast"])
    def test_a_bad_rate_names_the_setting(self, bad: str) -> None:
        with pytest.raises(SettingsError, match="LEADROUTE_RATE_LIMIT_ADDRESS"):
            Settings.from_env({"LEADROUTE_RATE_LIMIT_ADDRESS": bad})


class TestAddressLimit:
    """One client address gets its limit, exactly, however many instances serve it."""

    async def test_the_limit_holds_across_two_instances_and_a_refusal_writes_nothing(
        self, settings: Settings, clean: None, clock: FakeClock
    ) -> None:
        rules = sla_rules(30)
        async with (
            instance(settings, rules, clock, rate_limit_address="0") as admin,
            instance(settings, rules, clock, rate_limit_address="5/m") as one,
            instance(settings, rules, clock, rate_limit_address="5/m") as two,
        ):
            await owner(admin, "ann")
            await pool(admin, "sales", ["ann"])
            answers: list[Any] = []
            for n in range(8):
                answers.append(await (one, two)[n % 2].post("/v1/leads", json=lead(n)))
        assert [r.status_code for r in answers] == [201] * 5 + [429] * 3
        assert [r.headers["ratelimit-remaining"] for r in answers[:5]] == ["4", "3", "2", "1", "0"]
        refused = answers[5]
        assert refused.headers["content-type"] == "application/problem+json"
        assert 1 <= int(refused.headers["retry-after"]) <= 12  # one more request every 12 s
        assert refused.headers["ratelimit-limit"] == "5"
        assert refused.headers["ratelimit-policy"] == "5;w=60"
        assert refused.json()["status"] == 429
        assert await count(settings, "SELECT count(*) FROM leads") == 5

    async def test_health_is_never_limited(self, settings: Settings, clean: None, clock: FakeClock) -> None:
        async with instance(settings, sla_rules(30), clock, rate_limit_address="1/h") as client:
            statuses = [(await client.get("/health/live")).status_code for _ in range(5)]
        assert statuses == [200] * 5


class TestKeyLimit:
    """A key gets the limit of the scope of the route it calls, and every answer carries the
    ``RateLimit-*`` headers of its tightest bucket, the address's or the key's."""

    async def test_the_key_limit_holds(self, settings: Settings, clean: None, clock: FakeClock) -> None:
        async with instance(
            settings, sla_rules(30), clock, rate_limit_address="0", rate_limits="leads:write=3/m, default=0"
        ) as client:
            await owner(client, "ann")
            await pool(client, "sales", ["ann"])
            answers = [await client.post("/v1/leads", json=lead(n)) for n in range(5)]
        assert [r.status_code for r in answers] == [201] * 3 + [429] * 2
        assert [r.headers["ratelimit-remaining"] for r in answers[:3]] == ["2", "1", "0"]
        assert {r.headers["ratelimit-policy"] for r in answers} == {"3;w=60"}
        assert 1 <= int(answers[3].headers["retry-after"]) <= 20  # one more request every 20 s
        assert await count(settings, "SELECT count(*) FROM leads") == 3

    @pytest.mark.parametrize(("address", "key"), [("4/m", "leads:write=6/m"), ("6/m", "leads:write=4/m")])
    async def test_the_tighter_bucket_answers(
        self, settings: Settings, clean: None, clock: FakeClock, address: str, key: str
    ) -> None:
        async with instance(settings, sla_rules(30), clock, rate_limit_address="0") as admin:
            await owner(admin, "ann")
            await pool(admin, "sales", ["ann"])
        async with instance(
            settings, sla_rules(30), clock, rate_limit_address=address, rate_limits=f"{key}, default=0"
        ) as client:
            answers = [await client.post("/v1/leads", json=lead(n)) for n in range(6)]
        assert [r.status_code for r in answers] == [201] * 4 + [429] * 2
        assert [r.headers["ratelimit-remaining"] for r in answers[:4]] == ["3", "2", "1", "0"]
        assert {r.headers["ratelimit-policy"] for r in answers} == {"4;w=60"}  # the tighter one
        assert await count(settings, "SELECT count(*) FROM leads") == 4


class TestRefusedRequestsCountAgainstTheAddress:
    """The address limit holds for requests the access check refuses: a flood of bad keys, or a
    key calling a route outside its scopes, gets 429 once the address has no room left."""

    async def test_unknown_keys(self, settings: Settings, clean: None, clock: FakeClock) -> None:
        bad = {"Authorization": "Bearer lr_live_0badbad0_" + "x" * 43}
        async with instance(settings, sla_rules(30), clock, rate_limit_address="3/m") as client:
            answers = [await client.post("/v1/leads", json=lead(n), headers=bad) for n in range(5)]
        assert [r.status_code for r in answers] == [401] * 3 + [429] * 2
        assert answers[3].headers["ratelimit-policy"] == "3;w=60"

    async def test_a_known_key_without_the_scope(
        self, settings: Settings, clean: None, clock: FakeClock
    ) -> None:
        async with instance(settings, sla_rules(30), clock, rate_limit_address="5/m") as client:
            made = await client.post("/v1/keys", json={"name": "reader", "scopes": ["leads:read"]})
            assert made.status_code == 201, made.text
            reader = {"Authorization": f"Bearer {made.json()['key']}"}
            answers = [await client.post("/v1/leads", json=lead(n), headers=reader) for n in range(5)]
        # the key's first request looks it up, the next ones find it cached: all alike
        assert [r.status_code for r in answers] == [403] * 4 + [429]
        assert answers[4].headers["ratelimit-policy"] == "5;w=60"
        assert await count(settings, "SELECT count(*) FROM leads") == 0
