"""Requalifying a stored lead: after an activity event, and as its engagement decays over time.

:func:`requalify` rescores a locked lead from its stored input and all its activities at the
clock's "now" (so engagement decays by each activity's age), records the decision and its
``lead.scored`` event, and routes the lead when its stage rose while it had no owner (it sat in a
queue because no routing rule took it at its old stage). A lead that has an owner keeps it: a
score change alone never takes a lead away from a rep. A closed lead is rescored, never reopened.

Decay: a lead whose score holds activity points of a group with a half-life is due again
(``leads.rescore_at``) every ``LEADROUTE_RESCORE_EVERY_HOURS`` while those points still count
(:func:`rescore_at`); the background pass (:func:`requalify_due`) requalifies it then and records
a ``lead.scored`` event only when the stage changed.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import msgspec

from leadroute.intake.events import declared_properties, typed_properties
from leadroute.models import Activity, NormalizedLead, stage_rank
from leadroute.routing import Assignment
from leadroute.rules import Ruleset
from leadroute.runtime import ActiveRuleset, Runtime
from leadroute.scoring import Evaluation, evaluate
from leadroute.store.queries import QUERIES
from leadroute.workflow.log import Cause
from leadroute.workflow.runner import Change, run
from leadroute.workflow.writer import current_of, explanation, place, record_decision

__all__ = ["DECAY_FLOOR", "Requalified", "activities", "requalify", "requalify_due", "rescore_at"]

DECAY_FLOOR = 0.5
"""Decaying points below this, summed, can no longer move a score visibly: decay stops checking."""


class Requalified(msgspec.Struct, frozen=True, kw_only=True):
    """The new evaluation of a lead, and where routing placed it (None: routing did not run)."""

    evaluation: Evaluation
    placed: Assignment | None


def rescore_at(ruleset: Ruleset, evaluation: Evaluation, now: datetime, every: timedelta) -> datetime | None:
    """When the lead should be requalified for decay: ``now + every`` while it holds activity points
    of a group with a half-life worth at least :data:`DECAY_FLOOR`, else None (never)."""
    decaying = sum(
        abs(hit.points)
        for hit in evaluation.hits
        if hit.activity is not None and ruleset.groups[hit.group].half_life_days is not None
    )
    return now + every if decaying >= DECAY_FLOOR else None


async def activities(ch: Change, lead_id: uuid.UUID, ruleset: Ruleset) -> list[Activity]:
    """A lead's stored activities, oldest first, their properties as ``ruleset``'s rules see them.

    A stored property whose value does not have the type ``ruleset`` declares for it (stored
    before types were checked at intake, or under a ruleset that declared another type) is seen
    as absent (:func:`leadroute.intake.events.typed_properties`): the rule that reads it does not
    match, every other rule scores as usual, and the stored event is left as it was.
    """
    declared = declared_properties(ruleset.fields)
    return [
        Activity(
            type=a["payload"]["activity"],
            occurred_at=a["occurred_at"],
            properties=typed_properties(a["payload"].get("properties") or {}, declared),
        )
        for a in await ch.conn.fetch(QUERIES["lead_activities"], lead_id)
    ]


async def requalify(
    ch: Change,
    *,
    row: Any,
    active: ActiveRuleset,
    evaluation: Evaluation,
    cause: Cause,
    event_id: int | None,
) -> Requalified:
    """Record ``evaluation`` of the locked lead ``row`` and route it if its stage rose while queued.

    ``event_id``: the event that caused it (None: time did, the decision points at the lead's
    ``lead.received``).
    """
    rt = ch.rt
    lead_id: uuid.UUID = row["id"]
    placed: Assignment | None = None
    breaches = 0
    rose = stage_rank(evaluation.stage) > stage_rank(row["stage"])
    if rose and row["owner_id"] is None and row["status"] != "closed":
        # a lead parked by its SLA is never routed back to an owner who let it run out, and its
        # breach count carries over: it cannot loop
        breached = await ch.conn.fetch(QUERIES["sla_breached_owners"], lead_id)
        latest = await ch.conn.fetchrow(QUERIES["sla_lead_latest"], lead_id)
        if latest is not None:
            breaches = latest["breaches"] + (1 if latest["status"] == "fired" else 0)
        placed = ch.claimed(
            await rt.routing.assign(
                ch.conn,
                lead_id=lead_id,
                company_domain=row["company_domain"],
                targets=evaluation.targets,
                fallback=evaluation.fallback,
                now=ch.now,
                exclude={r["owner_id"] for r in breached},
            )
        )
    if event_id is None:
        event_id = await ch.conn.fetchval(QUERIES["lead_received_event"], lead_id)
        assert event_id is not None
    await record_decision(
        ch,
        lead_id=lead_id,
        event_id=event_id,
        active=active,
        evaluation=evaluation,
        placed=placed,
        why=_explanation(evaluation, placed, row),
        cause=cause,
        previous=(row["score"], row["stage"]),
        kept=(row["pool_id"], row["owner_id"]),
    )
    next_at = (
        None
        if row["status"] == "closed"
        else rescore_at(active.ruleset, evaluation, ch.now, rt.settings.rescore_every)
    )
    await ch.conn.execute(QUERIES["lead_rescored"], lead_id, evaluation.score, evaluation.stage, next_at)
    if placed is not None and placed.owner is not None:
        current = await ch.conn.fetchrow(QUERIES["workflow_current"], lead_id)
        await place(
            ch,
            lead_id=lead_id,
            current=current_of(current),
            placed=placed,
            cause="stage_rose",
            breaches=breaches,
            ruleset_version=active.ruleset.version,
            reason=f"stage rose from {row['stage']} to {evaluation.stage}",
        )
    return Requalified(evaluation=evaluation, placed=placed)


def _explanation(evaluation: Evaluation, placed: Assignment | None, row: Any) -> dict[str, Any]:
    why = explanation(evaluation, placed)
    if placed is None:
        why["assignment"] = {
            "owner": row["owner_id"],
            "pool": row["pool_id"],
            "rule": None,
            "strategy": None,
            "pools_tried": [],
            "owners_skipped": [],
            "queue": None if row["owner_id"] is not None else row["pool_id"],
            "unchanged": True,
            "reason": (
                "the lead keeps its owner: a score change does not reassign"
                if row["owner_id"] is not None
                else "the lead is closed: events rescore it but never reopen it"
                if row["status"] == "closed"
                else "the stage did not rise, so the lead was not routed again"
            ),
        }
    return why


async def requalify_due(rt: Runtime, *, limit: int) -> int:
    """Requalify up to ``limit`` leads whose decay check is due, one transaction each; returns how
    many changed stage. Leads another transaction holds are skipped (``SKIP LOCKED``): safe in
    any number of instances at once."""
    changed = 0
    for _ in range(limit):

        async def step(ch: Change) -> bool | None:
            row = await ch.conn.fetchrow(QUERIES["lead_rescore_claim"], ch.now)
            if row is None:
                return None
            active = ch.rt.rules
            lead = msgspec.convert(row["normalized"], NormalizedLead)
            evaluation = evaluate(
                active.ruleset, lead, activities=await activities(ch, row["id"], active.ruleset), now=ch.now
            )
            if evaluation.stage == row["stage"]:
                next_at = rescore_at(active.ruleset, evaluation, ch.now, ch.rt.settings.rescore_every)
                await ch.conn.execute(QUERIES["lead_rescore_later"], row["id"], next_at)
                return False
            await requalify(ch, row=row, active=active, evaluation=evaluation, cause="decay", event_id=None)
            return True

        result = await run(rt, step, background=True)
        if result is None:
            break
        changed += int(result)
    return changed
