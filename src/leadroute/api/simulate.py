"""A dry run of one lead against the active ruleset, a stored version, or uploaded YAML."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, post
from litestar.di import NamedDependency

from leadroute.api.problems import problem_responses
from leadroute.replay import (
    InvalidBody,
    chosen_ruleset,
    parse_simulation,
    routing_view,
    simulation_answer,
    stored_lead,
)
from leadroute.runtime import Runtime
from leadroute.scoring import evaluate

__all__ = ["SimulateController"]

MAX_SIMULATE_BYTES = 2 * 1024 * 1024
"""A lead, its activities and at most a 1 MB ruleset."""


class SimulateController(Controller):
    path = "/v1/simulate"
    tags = ["rulesets"]  # noqa: RUF012  (Litestar reads it as a class attribute)

    @post(
        "/",
        status_code=200,
        request_max_body_size=MAX_SIMULATE_BYTES,
        summary="Dry-run one lead",
        responses=problem_responses(400, 404, 413, 422),
    )
    async def simulate(self, rt: NamedDependency[Runtime], request: Request[Any, Any, Any]) -> dict[str, Any]:
        """Score, qualify and choose routing targets for ``lead`` (with optional ``activities``),
        or for the stored lead ``lead_id`` with its stored activities.

        ``ruleset_version`` (a stored version) or ``ruleset`` (YAML text) picks the ruleset,
        otherwise the active one decides. Writes nothing and claims no owner: the answer lists
        the pools routing would try and who is in them. A bad lead field is a 422 naming
        ``lead.<field>``; a ruleset that does not load is a 422 naming the rule and line.
        """
        body, lead, activities = parse_simulation(await request.body())
        as_of = body.now or rt.clock()
        active = rt.rules  # one reference for the whole request
        async with rt.db.acquire() as conn:
            if body.lead_id is not None:
                stored = await stored_lead(conn, body.lead_id)
                if stored is None:
                    raise InvalidBody("lead_id", "no stored lead has this id")
                if stored.lead is None:
                    raise InvalidBody("lead_id", "this lead's stored form no longer reads as a lead")
                lead, activities = stored.lead, stored.activities + activities
            assert lead is not None  # parse_simulation requires lead or lead_id
            chosen = await chosen_ruleset(
                conn, text=body.ruleset, version=body.ruleset_version, field="ruleset_version"
            )
            ruleset, source = chosen or (active.ruleset, "active")
            evaluation = evaluate(ruleset, lead, activities=activities, now=as_of)
            view = await routing_view(conn, evaluation.targets, lead, as_of)
        return simulation_answer(evaluation, lead, view=view, source=source, as_of=as_of)
