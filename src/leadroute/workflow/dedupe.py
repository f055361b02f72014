"""``leadroute leads dedupe``: find the duplicates made before intake matched people, and merge them.

:func:`find_duplicates` groups the stored leads that share an email, a phone or (with
``LEADROUTE_MATCH_BY_NAME``) a name key, transitively, and plans each group
(:func:`leadroute.intake.identity.plan_group`): its open leads seen within the re-engagement window
merge into one survivor (open, with an owner, the oldest, the smallest id: the lead intake would
merge into); its closed or older leads are a returning person's history and stay apart.

:func:`apply` merges each group in one transaction of the workflow runner, under the same
identity locks intake takes (so a lead event of that person arriving meanwhile waits, then merges
into the survivor): each duplicate's activities are copied to the survivor, its fields merged
(:func:`leadroute.workflow.merge.merge_lead`: a ``lead.merged`` event with ``merged_from``, the
survivor rescored and requalified), then it is closed (``lead.closed``, its SLA timer stopped, its
owner's slot freed after the commit through the runner, so the Redis counts stay right) and
marked ``merged_into`` the survivor (never matched again; an activity posted to its email
attaches to the survivor).
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from leadroute.intake.identity import (
    Candidate,
    GroupPlan,
    duplicate_groups,
    lock_key,
    plan_group,
)
from leadroute.models import NormalizedLead
from leadroute.runtime import Runtime
from leadroute.store.queries import QUERIES
from leadroute.workflow.actions import close_lead
from leadroute.workflow.log import ActivityRecorded, LeadMerged
from leadroute.workflow.merge import candidate_of, merge_lead
from leadroute.workflow.runner import Change, run

__all__ = ["Applied", "apply", "find_duplicates"]


async def find_duplicates(rt: Runtime) -> list[GroupPlan]:
    """Every group of duplicates with its plan, the groups in the order of their oldest lead."""
    async with rt.db.acquire() as conn:
        rows = await conn.fetch(QUERIES["dedupe_candidates"], rt.settings.match_by_name)
    groups = duplicate_groups([candidate_of(r) for r in rows], by_name=rt.settings.match_by_name)
    now, window = rt.clock(), rt.settings.reengage_after
    return [plan_group(g, now=now, window=window) for g in groups]


class Applied(msgspec.Struct, frozen=True, kw_only=True):
    """One group merged: the survivor and the leads merged into it (fewer than planned when some
    changed in between: a lead closed or merged meanwhile is left as it is)."""

    survivor: str
    merged: list[str]


def _matched_on(loser: Candidate, survivor: Candidate, group: list[Candidate]) -> str:
    """The first value (email, phone, name) the duplicate shares with the survivor, else with any
    lead of its group (a group is joined transitively)."""
    for other in (survivor, *group):
        if other.id == loser.id:
            continue
        for kind in ("email", "phone", "name"):
            if getattr(loser, kind) is not None and getattr(loser, kind) == getattr(other, kind):
                return kind
    return "email"


async def apply(rt: Runtime, plan: GroupPlan, *, actor: str = "system") -> Applied | None:
    """Merge one planned group (see the module docstring); None when nothing was left to merge.
    ``actor``: who merges (the command's ``cli:<user>@<host>``)."""
    if plan.survivor is None or not plan.losers:
        return None
    planned = [plan.survivor, *plan.losers]
    keys = sorted(
        {lock_key(kind, v) for c in planned for kind in ("email", "phone", "name") if (v := getattr(c, kind))}
    )

    async def step(ch: Change) -> Applied | None:
        await ch.conn.execute(QUERIES["identity_lock"], keys)
        rows = {
            str(r["id"]): dict(r)
            for r in await ch.conn.fetch(QUERIES["dedupe_lock_leads"], [uuid.UUID(c.id) for c in planned])
        }
        survivor = rows.get(plan.survivor.id if plan.survivor else "")
        if survivor is None or survivor["status"] == "closed":
            return None  # changed since the plan: the next run plans it again
        merged: list[str] = []
        for loser in plan.losers:
            row = rows.get(loser.id)
            if row is None or row["status"] == "closed":
                continue
            survivor = await _absorb(ch, survivor=survivor, row=row, loser=loser, plan=plan, planned=planned)
            merged.append(loser.id)
        return Applied(survivor=str(survivor["id"]), merged=merged) if merged else None

    return await run(rt, step, actor=actor)


async def _absorb(
    ch: Change,
    *,
    survivor: dict[str, Any],
    row: dict[str, Any],
    loser: Candidate,
    plan: GroupPlan,
    planned: list[Candidate],
) -> dict[str, Any]:
    """Merge the duplicate ``row`` into ``survivor`` and close it; the survivor's row after."""
    survivor_id: uuid.UUID = survivor["id"]
    for activity in await ch.conn.fetch(QUERIES["lead_activities"], row["id"]):
        await ch.emit(
            survivor_id,
            "activity.recorded",
            msgspec.convert(activity["payload"], ActivityRecorded),
            occurred_at=activity["occurred_at"],
        )
    assert plan.survivor is not None
    incoming = msgspec.convert(row["normalized"], NormalizedLead)
    done = await merge_lead(
        ch,
        row=survivor,
        incoming=incoming,
        active=ch.rt.rules,
        event=LeadMerged(
            matched_on=_matched_on(loser, plan.survivor, planned),
            source=incoming.source,
            merged_from=str(row["id"]),
        ),
        seen_at=row["last_seen_at"],
    )
    await close_lead(ch, row["id"], f"merged into {survivor_id} (a duplicate of the same person)")
    await ch.conn.execute(QUERIES["lead_mark_merged"], row["id"], survivor_id, ch.now)
    placed = done.placed
    after = {
        **survivor,
        "normalized": msgspec.to_builtins(done.lead),
        "company_domain": done.lead.company_domain,
        "email": done.lead.email,
        "phone_e164": done.lead.phone_e164,
        "score": done.evaluation.score,
        "stage": done.evaluation.stage,
    }
    if placed is not None and placed.owner is not None:
        after |= {"owner_id": placed.owner, "pool_id": placed.pool, "status": "assigned"}
    return after
