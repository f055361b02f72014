"""The OpenAPI document tells the truth: requests generated from it get documented answers.

Schemathesis reads ``/schema/openapi.json`` from the real app (real PostgreSQL and Redis),
generates valid and invalid requests for every operation, and runs every check it has on each
answer: no 5xx, only documented status codes and content types, bodies that match their schema,
invalid data rejected. Bounded: a few examples per operation, no shrinking, no database of
examples (so a run does the same work on every machine).

Run it alone with ``.venv/bin/pytest tests/test_schema_fuzz.py -q``; ``FUZZ_EXAMPLES=200`` runs a
longer search (each 5xx it finds should become a regular test).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from litestar.testing import TestClient
from schemathesis import Case

from support import AUTH

EXCLUDED_PATHS: list[str] = []  # every route is fuzzed
"""Path prefixes the fuzz run leaves out (every operation whose path starts with one)."""

NOT_CHECKED = [
    # "Schema-valid data is accepted": not so here, by design. Whether a pool's members exist, an
    # owner's timezone is an IANA name, or working hours parse is checked against the database
    # and the calendar (a 422 naming the field), which no JSON Schema can say; and Litestar does
    # not carry a list item's constraints (``list[Skill]``) into the document. Every such answer
    # is still checked to be a documented status, content type and problem body.
    schemathesis.checks.positive_data_acceptance,
]
"""Checks left out, each with its reason; every other check schemathesis has runs."""

MAX_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "12"))
"""Examples per operation: ~25 operations x 12 stays well under a minute on 2 shared cores."""


@pytest.fixture
def client(make_app: Any) -> Iterator[TestClient[Any]]:
    """One app (started once: lifespan, pools, migrations) for every generated request, with the
    admin key (every scope: the fuzz run explores what each route does, ``test_access`` who may)."""
    with TestClient(make_app(), raise_server_exceptions=False) as c:
        c.headers.update(AUTH)
        yield c


def _operations(client: TestClient[Any]) -> list[Any]:
    document = client.get("/schema/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document)
    excluded = (
        re.compile("^(" + "|".join(re.escape(p) for p in EXCLUDED_PATHS) + ")") if EXCLUDED_PATHS else None
    )
    operations = []
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an invalid operation fails the test here
        if excluded is None or not excluded.match(operation.path):
            operations.append(operation)
    return operations


def _fuzz(client: TestClient[Any], operation: Any) -> list[str]:
    """Run the generated cases of one operation; returns the failures, described."""
    failures: list[str] = []

    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def run(case: Case[Any]) -> None:
        kwargs = case.as_transport_kwargs(base_url=str(client.base_url))
        response = client.request(**_httpx_kwargs(kwargs))
        try:
            case.validate_response(response, excluded_checks=NOT_CHECKED)
        except (AssertionError, BaseExceptionGroup) as exc:  # one failure, or a group of them
            failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {exc}")

    run()
    return failures


def _httpx_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Schemathesis speaks ``requests``; the test client is ``httpx``."""
    out = {k: v for k, v in kwargs.items() if k in {"method", "url", "headers", "params"}}
    if "json" in kwargs:
        out["json"] = kwargs["json"]
    if "data" in kwargs:
        data = kwargs["data"]
        out["content" if isinstance(data, bytes | str) else "data"] = data
    return out


class TestSchemaFuzz:
    """Every documented operation (outside EXCLUDED_PATHS) answers as its schema says."""

    def test_every_operation_answers_as_documented(self, client: TestClient[Any]) -> None:
        operations = _operations(client)
        assert operations, "no operation left to fuzz"
        failures = [f for operation in operations for f in _fuzz(client, operation)]
        assert not failures, "\n\n".join(failures[:20])


class TestFoundByFuzzing:
    """Answers the fuzz run once got wrong, kept as plain tests."""

    @pytest.mark.parametrize(
        ("path", "body", "field"),
        [
            ("/v1/owners/ann", {"name": "Ann\x00"}, "name"),
            ("/v1/owners/ann", {"name": "Ann", "skills": ["fr\x00"]}, "skills"),
            ("/v1/pools/inbound", {"required_skill": "fr\x00"}, "required_skill"),
        ],
    )
    def test_a_nul_character_is_a_422_naming_the_field(
        self, client: TestClient[Any], path: str, body: dict[str, Any], field: str
    ) -> None:
        r = client.put(path, json=body)  # PostgreSQL text cannot hold U+0000: this was a 500
        assert r.status_code == 422
        assert r.headers["content-type"].startswith("application/problem+json")
        assert [e["field"] for e in r.json()["errors"]] == [field]
