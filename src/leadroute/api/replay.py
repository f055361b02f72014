"""Replay stored leads under a candidate ruleset: what would change if it were activated."""

from __future__ import annotations

from litestar import Controller
from litestar.di import NamedDependency
from litestar.params import JSONBody

from leadroute.api.bodies import parsed_body
from leadroute.api.simulate import dry_run
from leadroute.replay import ReplayIn, ReplayReport, parse_replay, replay_request
from leadroute.runtime import Runtime

__all__ = ["ReplayController", "ReplayIn"]


class ReplayController(Controller):
    path = "/v1/rulesets"
    tags = ["rulesets"]  # noqa: RUF012  (Litestar reads it as a class attribute)

    @dry_run("/replay", summary="Replay stored leads", body=parsed_body(ReplayIn, parse_replay))
    async def replay(self, rt: NamedDependency[Runtime], data: JSONBody[ReplayIn]) -> ReplayReport:
        """Re-score and re-qualify stored leads under the active ruleset and the candidate.

        Reports the stage transition matrix, pool and routing-target changes, score
        distributions before and after, and example lead ids for each kind of change. Reads
        the newest ``limit`` leads created since ``since``; writes nothing, claims no owner.
        """
        return await replay_request(rt, data)
