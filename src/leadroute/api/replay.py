"""Replay stored leads under a candidate ruleset: what would change if it were activated."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, post
from litestar.di import NamedDependency

from leadroute.api.problems import problem_responses
from leadroute.intake import MalformedBody
from leadroute.replay import InvalidBody, Side, chosen_ruleset, parse_since, replay_stored, report_dict
from leadroute.runtime import Runtime

__all__ = ["ReplayController", "ReplayIn"]

MAX_REPLAY_BYTES = 2 * 1024 * 1024
DEFAULT_LIMIT = 10_000
MAX_LIMIT = 100_000


class ReplayIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The body of ``POST /v1/rulesets/replay``: the candidate as YAML text or a stored version.

    ``since`` is a duration (``30d``, ``12h``) or an ISO date; ``limit`` caps the leads replayed
    (newest first) so one request does bounded work; ``examples`` is lead ids per kind of change.
    """

    candidate: Annotated[str, msgspec.Meta(max_length=1024 * 1024)] | None = None
    version: int | None = None
    since: str | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    examples: Annotated[int, msgspec.Meta(ge=0, le=100)] = 5


_DECODER = msgspec.json.Decoder(ReplayIn)


def _parse(body: bytes) -> ReplayIn:
    try:
        request = _DECODER.decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidBody.from_validation(exc) from None
    except msgspec.DecodeError as exc:
        raise MalformedBody(f"body is not valid JSON: {exc}") from None
    if (request.candidate is None) == (request.version is None):
        raise InvalidBody("candidate", "give the candidate as YAML text (candidate) or a stored version")
    return request


class ReplayController(Controller):
    path = "/v1/rulesets"
    tags = ["rulesets"]  # noqa: RUF012  (Litestar reads it as a class attribute)

    @post(
        "/replay",
        status_code=200,
        request_max_body_size=MAX_REPLAY_BYTES,
        summary="Replay stored leads",
        responses=problem_responses(400, 404, 413, 422),
    )
    async def replay(self, rt: NamedDependency[Runtime], request: Request[Any, Any, Any]) -> dict[str, Any]:
        """Re-score and re-qualify stored leads under the active ruleset and the candidate.

        Reports the stage transition matrix, pool and routing-target changes, score
        distributions before and after, and example lead ids for each kind of change. Reads
        the newest ``limit`` leads created since ``since``; writes nothing, claims no owner.
        """
        body = _parse(await request.body())
        as_of = rt.clock()
        try:
            since = parse_since(body.since, now=as_of) if body.since is not None else None
        except ValueError as exc:
            raise InvalidBody("since", str(exc).removeprefix("since: ")) from None
        active = rt.rules
        async with rt.db.acquire() as conn:
            chosen = await chosen_ruleset(
                conn, text=body.candidate, version=body.version, field="version", name="candidate.yaml"
            )
            assert chosen is not None  # _parse requires one of them
            report = await replay_stored(
                conn,
                baseline=Side(active.ruleset, "active"),
                candidate=Side(*chosen),
                as_of=as_of,
                since=since,
                limit=body.limit,
                examples=body.examples,
            )
        return report_dict(report)
