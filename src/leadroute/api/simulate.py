"""A dry run of one lead against the active ruleset, a stored version, or uploaded YAML."""

from __future__ import annotations

from typing import Any

from litestar import Controller, post
from litestar.di import NamedDependency
from litestar.dto import AbstractDTO
from litestar.params import JSONBody

from leadroute.api.bodies import parsed_body
from leadroute.api.problems import problem_responses
from leadroute.replay import SimulateIn, SimulationAnswer, parse_simulation, simulate
from leadroute.runtime import Runtime

__all__ = ["MAX_DRY_RUN_BYTES", "SimulateController", "dry_run"]

MAX_DRY_RUN_BYTES = 2 * 1024 * 1024
"""A lead, its activities and at most a 1 MB ruleset; or a replay's at most 1 MB candidate."""


def dry_run(path: str, *, summary: str, body: type[AbstractDTO[Any]]) -> post:
    """The route of a dry run (simulate, replay): a JSON body the domain parses, a 200, nothing
    written; a bad field is a 422 naming it, an unknown lead or version a 422 or 404."""
    return post(
        path,
        status_code=200,
        request_max_body_size=MAX_DRY_RUN_BYTES,
        dto=body,
        return_dto=None,
        summary=summary,
        responses=problem_responses(400, 404, 413, 422),
    )


class SimulateController(Controller):
    path = "/v1/simulate"
    tags = ["rulesets"]  # noqa: RUF012  (Litestar reads it as a class attribute)

    @dry_run("/", summary="Dry-run one lead", body=parsed_body(SimulateIn, parse_simulation))
    async def simulate(self, rt: NamedDependency[Runtime], data: JSONBody[SimulateIn]) -> SimulationAnswer:
        """Score, qualify and choose routing targets for ``lead`` (with optional ``activities``),
        or for the stored lead ``lead_id`` with its stored activities.

        ``ruleset_version`` (a stored version) or ``ruleset`` (YAML text) picks the ruleset,
        otherwise the active one decides. Writes nothing and claims no owner: the answer lists
        the pools routing would try and who is in them. A bad lead field is a 422 naming
        ``lead.<field>``; a ruleset that does not load is a 422 naming the rule and line.
        """
        return await simulate(rt, data)
