"""Hostile input over HTTP: each is answered with a 4xx (or a 200) in under 100 ms, never a 500.

A backtracking regex in a ruleset, a YAML alias bomb, control characters in a lead or an event,
JSON nested a thousand deep. Each test makes one ordinary request first, so the time measured is
the hostile request's own, not the first request's start-up.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from leadroute.config import Settings
from leadroute.models import MAX_JSON_DEPTH
from support import count, post_one

Client = AsyncTestClient[Litestar]
LIMIT = 0.1
"""Seconds a hostile request may take."""

EVIL_RULES = """\
version: 1
scoring:
  groups: {fit: {max: 60}}
  rules:
    - {id: evil, group: fit, when: 'title =~ "(a+)+$"', points: 10}
qualification:
  - {stage: lead}
routing:
  rules: []
  fallback: unassigned
"""
EVIL_TITLE = "a" * 254 + "!"
ALIAS_BOMB = "a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n" + "".join(
    f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]\n"
    for name, prev in zip("bcdefghi", "abcdefgh", strict=True)
)


async def timed(request: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    response = await request
    return response, time.perf_counter() - started


def fields(response: Any) -> dict[str, str]:
    return {e["field"]: e["message"] for e in response.json()["errors"]}


async def warm_up(client: Client) -> None:
    await client.post("/v1/leads", json={"email": "warm@up.example", "title": "CTO"})


class TestRegexes:
    """A backtracking pattern in an uploaded ruleset costs no more than any other."""

    async def test_simulate_with_a_catastrophic_pattern_and_a_255_character_title(
        self, client: Client
    ) -> None:
        await client.post("/v1/simulate", json={"lead": {"email": "a@b.example"}, "ruleset": EVIL_RULES})
        body = {"lead": {"email": "a@b.example", "title": EVIL_TITLE}, "ruleset": EVIL_RULES}
        r, elapsed = await timed(client.post("/v1/simulate", json=body))
        assert r.status_code == 200, r.text
        assert elapsed < LIMIT, f"{elapsed:.3f} s"
        assert r.json()["score"] == 0

    async def test_simulate_with_a_backreference_is_a_422_naming_the_rule(self, client: Client) -> None:
        rules = EVIL_RULES.replace('"(a+)+$"', '"(a)\\\\1"')
        body = {"lead": {"email": "a@b.example", "title": "aa"}, "ruleset": rules}
        r, elapsed = await timed(client.post("/v1/simulate", json=body))
        assert r.status_code == 422, r.text
        assert elapsed < LIMIT
        (error,) = r.json()["errors"]
        assert (error["rule"], error["line"]) == ("evil", 5)
        assert "backreferences" in error["message"]


class TestYaml:
    """An alias bomb uploaded for validation is refused at its first alias."""

    async def test_validate_an_alias_bomb(self, client: Client) -> None:
        await client.post("/v1/rulesets/validate", content=b"version: 1\n")
        r, elapsed = await timed(client.post("/v1/rulesets/validate", content=ALIAS_BOMB.encode()))
        assert r.status_code == 422, r.text
        assert elapsed < LIMIT, f"{elapsed:.3f} s"
        (error,) = r.json()["errors"]
        assert (error["line"], error["column"]) == (2, 8)
        assert error["message"].startswith("YAML alias '*a' is not supported")

    async def test_validate_deeply_nested_yaml(self, client: Client) -> None:
        text = "version: 1\nscoring: " + "[" * 500_000
        r, elapsed = await timed(client.post("/v1/rulesets/validate", content=text.encode()))
        assert r.status_code == 422, r.text
        assert elapsed < LIMIT
        assert "nested more than" in r.json()["errors"][0]["message"]


class TestControlCharacters:
    """A control character in any string is a 422 naming the field, and nothing reaches PostgreSQL."""

    @pytest.mark.parametrize(
        ("lead", "field"),
        [
            ({"title": "VP\x00Sales"}, "title"),
            ({"first_name": "Ann\nMarie"}, "first_name"),  # names are one line
            ({"company": "Acme\x1b[31m"}, "company"),
            ({"employees": "12\x00"}, "employees"),
            ({"attributes": {"notes": "hi\x00"}}, "attributes.notes"),
            ({"notes": "bell\x07"}, "attributes.notes"),  # an extra key is an attribute
            ({"tags": ["ok", "bad\x7f"]}, "attributes.tags"),
            ({"attributes": {"bad\x00key": "x"}}, "attributes.bad?key"),
        ],
    )
    async def test_a_lead(self, client: Client, settings: Settings, lead: dict[str, Any], field: str) -> None:
        await warm_up(client)
        r, elapsed = await timed(client.post("/v1/leads", json={"email": "nul@acme.example", **lead}))
        assert r.status_code == 422, r.text
        assert elapsed < LIMIT, f"{elapsed:.3f} s"
        assert field in fields(r)
        assert "\\u0000" not in r.text  # neither the value nor a key is echoed with its NUL
        assert await count(settings, "SELECT count(*) FROM leads WHERE email = 'nul@acme.example'") == 0

    async def test_free_text_keeps_tabs_and_line_breaks(self, client: Client) -> None:
        notes = "first line\r\nsecond\tline\n"
        decision = await post_one(client, {"email": "ok@acme.example", "notes": notes})
        lead = (await client.get(f"/v1/leads/{decision['lead_id']}")).json()
        assert lead["lead"]["attributes"]["notes"] == notes

    async def test_the_message_names_the_code_point_not_the_value(self, client: Client) -> None:
        r = await client.post("/v1/leads", json={"email": "a@acme.example", "title": "secret\x00"})
        assert fields(r) == {"title": "contains control character U+0000; this is one line of text"}
        assert "secret" not in r.text

    @pytest.mark.parametrize(
        ("event", "field"),
        [
            ({"properties": {"url": "/pricing\x00"}}, "properties.url"),
            ({"properties": {"tags": ["a", "\x01"]}}, "properties.tags"),
            ({"event_id": "e\n1"}, "event_id"),
            ({"email": "ann@acme.example\x00"}, "email"),
            ({"type": "page_view\x00"}, "type"),
        ],
    )
    async def test_an_event(
        self, client: Client, settings: Settings, event: dict[str, Any], field: str
    ) -> None:
        lead = await post_one(client, {"email": "ann@acme.example"})
        body = {"lead_id": lead["lead_id"], "type": "page_view", "occurred_at": _now(), **event}
        r, elapsed = await timed(client.post("/v1/events", json=body))
        assert r.status_code == 422, r.text
        assert elapsed < LIMIT
        assert field in fields(r)
        assert await count(settings, "SELECT count(*) FROM lead_events WHERE kind = 'activity.recorded'") == 0

    async def test_simulate_names_the_lead_field(self, client: Client) -> None:
        r = await client.post("/v1/simulate", json={"lead": {"email": "a@acme.example", "city": "x\x00"}})
        assert r.status_code == 422, r.text
        assert "lead.city" in fields(r)


class TestNesting:
    """JSON nested past the bound is a 400 naming the body, however deep it goes."""

    @pytest.mark.parametrize("path", ["/v1/leads", "/v1/events"])
    @pytest.mark.parametrize(
        "body",
        [
            b"[" * 1000 + b"]" * 1000,
            b'{"email": "a@acme.example", "attributes": {"x": ' + b"[" * 1000 + b"]" * 1000 + b"}}",
            b'{"email": "a@acme.example", "x": '
            + b"[" * (MAX_JSON_DEPTH + 1)
            + b"]" * (MAX_JSON_DEPTH + 1)
            + b"}",
            b'{"properties": {"p": ' + b'{"a": ' * 900 + b"1" + b"}" * 900 + b"}}",
        ],
        ids=["arrays-1000-deep", "attribute-1000-deep", "just-past-the-bound", "objects-900-deep"],
    )
    async def test_too_deep(self, client: Client, path: str, body: bytes) -> None:
        await warm_up(client)
        r, elapsed = await timed(
            client.post(path, content=body, headers={"content-type": "application/json"})
        )
        assert r.status_code == 400, r.text
        assert elapsed < LIMIT, f"{elapsed:.3f} s"
        assert fields(r) == {"body": f"body nests arrays or objects more than {MAX_JSON_DEPTH} levels deep"}

    async def test_within_the_bound_a_wrong_shape_is_a_422_naming_the_field(self, client: Client) -> None:
        r = await client.post("/v1/leads", json={"email": "a@acme.example", "x": [[[1]]]})
        assert r.status_code == 422, r.text
        assert set(fields(r)) == {"attributes.x"}


def _now() -> str:
    return datetime.now(UTC).isoformat()
