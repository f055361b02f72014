"""Rulesets: the active one, and a dry-run validation of a candidate file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency

from leadroute.rules import RulesetError, check_pools, parse_ruleset, run_ruleset_tests
from leadroute.runtime import Runtime
from leadroute.store.queries import QUERIES

__all__ = ["RulesetController"]

MAX_RULESET_BYTES = 1024 * 1024


class RulesetController(Controller):
    path = "/v1/rulesets"
    tags = ["rulesets"]  # noqa: RUF012

    @get("/active", summary="The ruleset deciding leads now")
    async def active(self, rt: NamedDependency[Runtime]) -> dict[str, Any]:
        """Version, checksum and size of the active ruleset."""
        rs = rt.rules.ruleset
        return {
            "version": rs.version,
            "sha256": rs.sha256,
            "description": rs.description,
            "path": str(rs.path),
            "scoring_rules": len(rs.scoring_rules),
            "qualification_rules": len(rs.qualification_rules),
            "routing_rules": len(rs.routing_rules),
        }

    @post(
        "/validate",
        status_code=200,
        request_max_body_size=MAX_RULESET_BYTES,
        summary="Check a ruleset file without activating it",
    )
    async def validate(self, rt: NamedDependency[Runtime], request: Request[Any, Any, Any]) -> dict[str, Any]:
        """Load the YAML body, type-check it, check its pools exist, and run its tests. Writes nothing.

        A file that does not load, or names a pool that does not exist, is a 422 problem whose
        ``errors`` give the rule id, line and column of each fault.
        """
        body = await request.body()
        name = Path(request.headers.get("x-ruleset-name", "uploaded.yaml")).name
        ruleset = parse_ruleset(body.decode("utf-8", errors="replace"), path=Path(name))
        known = {r["id"] for r in await rt.db.fetch(QUERIES["pool_ids"])}
        problems = check_pools(ruleset, known)
        if problems:
            raise RulesetError(problems)
        outcomes = run_ruleset_tests(ruleset)
        return {
            "version": ruleset.version,
            "sha256": ruleset.sha256,
            "tests": [{"name": o.name, "passed": o.passed, "diffs": o.diffs} for o in outcomes],
            "passed": all(o.passed for o in outcomes),
        }
