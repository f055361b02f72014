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
