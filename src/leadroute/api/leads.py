"""Lead intake, read and explain."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, HeaderParameter

from leadroute.errors import NotFound
from leadroute.runtime import Runtime
from leadroute.store.queries import QUERIES
from leadroute.workflow.actions import workflow_history
from leadroute.workflow.intake import submit_lead

__all__ = ["MAX_BODY_BYTES", "LeadController"]

MAX_BODY_BYTES = 64 * 1024
"""A lead is a form, not an upload: bodies over 64 KB get 413."""


class LeadController(Controller):
    path = "/v1/leads"
    tags = ["leads"]  # noqa: RUF012  (Litestar reads it as a class attribute)

    @post("/", request_max_body_size=MAX_BODY_BYTES, status_code=201, summary="Submit a lead")
    async def create(
        self,
        request: Request[Any, Any, Any],
        rt: NamedDependency[Runtime],
        idempotency_key: Annotated[
            str | None, HeaderParameter(name="Idempotency-Key", max_length=255, required=False)
        ] = None,
    ) -> Response[dict[str, Any]]:
        """Score, qualify and route one lead; a retry with the same key returns the first decision."""
        result = await submit_lead(rt, await request.body(), idempotency_key)
        return Response(result.decision, status_code=201 if result.created else 200)

    @get("/{lead_id:uuid}", summary="A lead, its current owner and its history")
    async def read(self, rt: NamedDependency[Runtime], lead_id: FromPath[uuid.UUID]) -> dict[str, Any]:
        """The lead as normalized, its stage, score, owner, and every event, decision and assignment."""
        async with rt.db.acquire() as conn:
            lead = await conn.fetchrow(QUERIES["lead_get"], lead_id)
            if lead is None:
                raise NotFound("lead", str(lead_id))
            events = await conn.fetch(QUERIES["lead_events"], lead_id)
            decisions = await conn.fetch(QUERIES["lead_decisions"], lead_id)
            assignments = await conn.fetch(QUERIES["lead_assignments"], lead_id)
            workflow = await workflow_history(conn, lead_id)  # state, SLA timers, steps with details
        history = sorted(
            [{"at": e["received_at"], "type": e["kind"]} for e in events]
            + [
                {
                    "at": d["decided_at"],
                    "type": "decision",
                    "stage": d["stage"],
                    "score": d["score"],
                    "ruleset_version": d["ruleset_version"],
                    "routing_rule": d["routing_rule"],
                }
                for d in decisions
            ]
            + [
                {
                    "at": a["created_at"],
                    "type": "assignment",
                    "status": a["status"],
                    "owner": a["owner_id"],
                    "pool": a["pool_id"],
                    "queue": a["queue"],
                    "reason": a["reason"],
                }
                for a in assignments
            ],
            key=lambda item: item["at"],
        )
        return {
            "id": str(lead["id"]),
            "created_at": lead["created_at"],
            "stage": lead["stage"],
            "score": lead["score"],
            "status": lead["status"],
            "owner": lead["owner_id"],
            "pool": lead["pool_id"],
            "lead": lead["normalized"],
            "history": history,
            "workflow": workflow,
        }

    @get("/{lead_id:uuid}/explain", summary="Why this lead got its score, stage and owner")
    async def explain(self, rt: NamedDependency[Runtime], lead_id: FromPath[uuid.UUID]) -> dict[str, Any]:
        """Every rule that matched with its points, the deciding rules, and each owner skipped and why."""
        async with rt.db.acquire() as conn:
            decisions = await conn.fetch(QUERIES["lead_decisions"], lead_id)
        if not decisions:
            raise NotFound("lead", str(lead_id))
        d = decisions[-1]
        why = d["explanation"]
        return {
            "lead_id": str(lead_id),
            "decided_at": d["decided_at"],
            "ruleset": {"version": d["ruleset_version"], "sha256": d["ruleset_sha256"]},
            "score": d["score"],
            **why,
            "stage": d["stage"],
            "owner": d["owner_id"],
            "summary": summarize(d["stage"], d["score"], why),
        }


def summarize(stage: str, score: float, why: dict[str, Any]) -> str:
    """One sentence for a person: "why did this lead go to Bob?"."""
    routing, placed = why["routing"], why["assignment"]
    text = f"Scored {score:g} and qualified as {stage} by rule {why['qualification']['rule']!r}. "
    # Why an account-owner rule did not apply, unless an owner skip below says it (or the queue
    # reason does); decisions stored before this was recorded have none.
    misses = [m for m in placed.get("account") or [] if m["owner"] is None]
    if misses and placed.get("owner") is not None:
        text += "; ".join(f"Account owner rule {m['rule']!r}: {m['why']}" for m in misses) + ". "
    if routing["rule"] is None:
        text += "No routing rule matched"
    else:
        text += f"Routing rule {routing['rule']!r} chose pool {routing['pool']!r}"
    if placed.get("unchanged"):
        return text + f"; routing did not run again: {placed['reason']}."
    skipped = placed["owners_skipped"]
    if skipped:
        text += "; skipped " + skipped_owners(skipped)
    if placed["owner"] is not None:
        how = (placed.get("strategy") or "routing").replace("_", " ")
        where = "as the account's owner" if how == "account owner" else f"by {how} in pool {placed['pool']!r}"
        text += f"; assigned to {placed['owner']} {where}."
    elif placed["reason"] == "no routing rule matched" and routing["rule"] is None:
        text += f"; left in queue {placed['queue']!r}."  # the reason would say it twice
    else:
        text += f"; left in queue {placed['queue']!r}: {placed['reason']}."
    return text


def skipped_owners(skipped: list[dict[str, Any]]) -> str:
    """Each skipped owner once, in the order they were met: ``bob (inactive), carl (off_hours)``.

    An owner can be skipped at several places: as the account owner (``pool`` null) and again as
    a member of the pool, or in a pool and its fallback. They are named once, with where:
    ``bob (inactive, as the account owner and in pool 'sales')``, or per reason when the reasons
    differ (``bob (off_hours as the account owner, over_capacity in pool 'sales')``). A single
    skip in a pool keeps the short form.
    """
    places: dict[str, dict[str, list[str | None]]] = {}  # owner -> reason -> pools (None: account)
    for s in skipped:
        pools = places.setdefault(s["owner"], {}).setdefault(s["reason"], [])
        if s["pool"] not in pools:
            pools.append(s["pool"])
    parts = []
    for who, reasons in places.items():
        if len(reasons) == 1:
            reason, pools = next(iter(reasons.items()))
            short = len(pools) == 1 and pools[0] is not None
            parts.append(f"{who} ({reason})" if short else f"{who} ({reason}, {_where(pools)})")
        else:
            parts.append(f"{who} (" + ", ".join(f"{r} {_where(p)}" for r, p in reasons.items()) + ")")
    return ", ".join(parts)


def _where(pools: list[str | None]) -> str:
    """``as the account owner and in pools 'a' and 'b'``."""
    named = [p for p in pools if p is not None]
    where = ["as the account owner"] if None in pools else []
    if named:
        quoted = [repr(p) for p in named]
        listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]
        where.append(f"in pool{'s' if len(named) > 1 else ''} {listed}")
    return " and ".join(where)
