"""Bad input gets application/problem+json naming the field or rule; never a 500, nothing lost."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

PROBLEM = "application/problem+json"


def fields(body: dict[str, Any]) -> set[str]:
    return {e["field"] for e in body["errors"]}


class TestLeadProblems:
    """Each kind of bad lead names what is wrong."""

    async def test_bad_email(self, client: AsyncTestClient[Litestar]) -> None:
        r = await client.post("/v1/leads", json={"email": "not-an-email"})
        assert r.status_code == 422
        assert r.headers["content-type"].startswith(PROBLEM)
        assert fields(r.json()) == {"email"}
        assert r.json()["status"] == 422

    async def test_bad_json(self, client: AsyncTestClient[Litestar]) -> None:
        r = await client.post(
            "/v1/leads", content=b'{"email": ', headers={"content-type": "application/json"}
        )
        assert r.status_code == 400
        assert r.headers["content-type"].startswith(PROBLEM)

    async def test_top_level_must_be_an_object(self, client: AsyncTestClient[Litestar]) -> None:
        r = await client.post("/v1/leads", json=[{"email": "a@b.example"}])
        assert r.status_code == 400
        assert r.headers["content-type"].startswith(PROBLEM)

    async def test_wrong_types_name_every_field(self, client: AsyncTestClient[Litestar]) -> None:
        r = await client.post(
            "/v1/leads",
            json={"email": "a@corp.example", "employees": "lots", "annual_revenue": [1], "title": 5},
        )
        assert r.status_code == 422
        assert fields(r.json()) == {"employees", "annual_revenue", "title"}

    async def test_too_long_string_and_bad_attribute(self, client: AsyncTestClient[Litestar]) -> None:
        r = await client.post(
            "/v1/leads",
            json={"email": "a@corp.example", "company": "x" * 5000, "attributes": {"ok": {"nested": 1}}},
        )
        assert r.status_code == 422
        assert fields(r.json()) == {"company", "attributes.ok"}

    async def test_oversize_body_is_413(self, client: AsyncTestClient[Litestar]) -> None:
        r = await client.post(
            "/v1/leads",
            content=b'{"email": "a@corp.example", "notes": "' + b"x" * 70_000 + b'"}',
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 413
        assert r.headers["content-type"].startswith(PROBLEM)

    async def test_nothing_is_written_for_a_bad_lead(self, client: AsyncTestClient[Litestar]) -> None:
        await client.post("/v1/leads", json={"email": "nope"}, headers={"Idempotency-Key": "bad-1"})
        # the key was not consumed: the corrected lead goes through under the same key
        r = await client.post(
            "/v1/leads", json={"email": "ok@corp.example"}, headers={"Idempotency-Key": "bad-1"}
        )
        assert r.status_code == 201

    @pytest.mark.parametrize("path", ["/v1/leads/not-a-uuid", f"/v1/leads/{uuid.uuid4()}"])
    async def test_unknown_lead_is_404_problem(self, client: AsyncTestClient[Litestar], path: str) -> None:
        r = await client.get(path)
        assert r.status_code in (400, 404)
        assert r.headers["content-type"].startswith(PROBLEM)


class TestAdminProblems:
    """Admin writes with bad references are refused with the field named."""

    async def test_pool_with_unknown_owner(self, client: AsyncTestClient[Litestar]) -> None:
        r = await client.put("/v1/pools/p1", json={"members": ["ghost"]})
        assert r.status_code == 422
        assert r.headers["content-type"].startswith(PROBLEM)
        assert "ghost" in r.json()["detail"]

    async def test_owner_body_with_wrong_type(self, client: AsyncTestClient[Litestar]) -> None:
        r = await client.put("/v1/owners/amy", json={"name": "Amy", "active": "maybe"})
        assert r.status_code == 400
        assert r.headers["content-type"].startswith(PROBLEM)

    @pytest.mark.parametrize(
        ("method", "path", "body", "field"),
        [
            ("PUT", "/v1/owners/amy", {"name": "Amy", "colour": "red"}, "colour"),
            ("PUT", "/v1/owners/amy", {"timezone": "UTC"}, "name"),
            ("PUT", "/v1/owners/amy", {"name": "Amy", "capacity": {"max_opn": 3}}, "capacity.max_opn"),
            ("PUT", "/v1/pools/p1", {"members": [], "fallbak": "x"}, "fallbak"),
            ("POST", f"/v1/assignments/{uuid.uuid4()}/accept", {}, "owner_id"),
            ("POST", f"/v1/assignments/{uuid.uuid4()}/reassign", {"owner": "bob"}, "owner"),
        ],
    )
    async def test_an_unknown_or_missing_key_is_named(
        self, client: AsyncTestClient[Litestar], method: str, path: str, body: dict[str, Any], field: str
    ) -> None:
        r = await client.request(method, path, json=body)
        assert r.status_code == 400, r.text
        assert r.headers["content-type"].startswith(PROBLEM)
        assert fields(r.json()) == {field}

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("PUT", "/v1/owners/amy"),
            ("PATCH", "/v1/pools/p1"),
            ("POST", f"/v1/assignments/{uuid.uuid4()}/close"),
        ],
    )
    async def test_a_body_that_is_not_json_is_a_full_problem(
        self, client: AsyncTestClient[Litestar], method: str, path: str
    ) -> None:
        r = await client.request(method, path, content=b"{bad", headers={"content-type": "application/json"})
        assert r.status_code == 400, r.text
        assert r.headers["content-type"].startswith(PROBLEM)
        body = r.json()
        assert body["type"].endswith("/malformed-body")
        assert fields(body) == {"body"}

    async def test_a_missing_required_body_is_named(self, client: AsyncTestClient[Litestar]) -> None:
        r = await client.post(f"/v1/assignments/{uuid.uuid4()}/accept")
        assert r.status_code == 400, r.text
        assert r.json()["errors"] == [{"field": "body", "message": "a JSON body is required"}]

    async def test_unknown_route_and_method_are_typed_problems(
        self, client: AsyncTestClient[Litestar]
    ) -> None:
        r = await client.get("/v1/nothing")
        assert (r.status_code, r.json()["type"].rsplit("/", 1)[1]) == (404, "not-found")
        r = await client.delete("/v1/owners/amy")
        assert (r.status_code, r.json()["type"].rsplit("/", 1)[1]) == (405, "method-not-allowed")

    async def test_bad_owner_id(self, client: AsyncTestClient[Litestar]) -> None:
        r = await client.put("/v1/owners/has space", json={"name": "Amy"})
        assert r.status_code in (400, 422)
        assert r.headers["content-type"].startswith(PROBLEM)


class TestRulesetProblems:
    """A candidate ruleset is checked against the database without being activated."""

    CANDIDATE = """version: 9
scoring:
  groups: {fit: {max: 10}}
  rules:
    - {id: any, group: fit, when: 'true', points: 1}
qualification:
  - {stage: lead}
routing:
  rules:
    - id: to-nowhere
      when: 'true'
      pool: no-such-pool
  fallback: unassigned
"""

    async def test_unknown_pool_in_a_rule_is_named_with_its_line(
        self, client: AsyncTestClient[Litestar]
    ) -> None:
        r = await client.post("/v1/rulesets/validate", content=self.CANDIDATE.encode())
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith(PROBLEM)
        (error,) = r.json()["errors"]
        assert error["rule"] == "to-nowhere"
        assert (error["line"], error["column"]) == (12, 13)  # at the pool's name
        assert "no-such-pool" in error["message"]

    async def test_syntax_error_names_rule_and_line(self, client: AsyncTestClient[Litestar]) -> None:
        broken = self.CANDIDATE.replace("when: 'true', points", "when: 'title =~~', points")
        r = await client.post("/v1/rulesets/validate", content=broken.encode())
        assert r.status_code == 422
        assert r.json()["errors"][0]["rule"] == "any"
        assert r.json()["errors"][0]["line"] == 5

    async def test_valid_candidate_reports_its_tests(self, client: AsyncTestClient[Litestar]) -> None:
        await client.put("/v1/owners/amy", json={"name": "Amy"})
        await client.put("/v1/pools/no-such-pool", json={"members": ["amy"]})
        r = await client.post("/v1/rulesets/validate", content=self.CANDIDATE.encode())
        assert r.status_code == 200, r.text
        assert r.json()["version"] == 9
        assert r.json()["passed"] is True


class TestDeepBodies:
    """A body nested 1,000 deep is a fast 4xx naming the body on every route that takes one (a
    decoder that expects an object stops at the first array: 422; one that recurses: 400)."""

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("POST", "/v1/simulate"),
            ("POST", "/v1/rulesets/replay"),
            ("POST", "/v1/rulesets/rollback"),
            ("PUT", "/v1/owners/ann"),
            ("PUT", "/v1/pools/sales"),
            ("POST", "/v1/leads"),
            ("POST", "/v1/events"),
        ],
    )
    async def test_a_deep_body_is_a_400(self, client: Any, method: str, path: str) -> None:
        body = b"[" * 1000 + b"]" * 1000
        started = time.monotonic()
        r = await client.request(method, path, content=body, headers={"content-type": "application/json"})
        assert time.monotonic() - started < 0.5
        assert r.status_code in (400, 422), r.text
        assert r.json()["errors"][0]["field"] == "body"
