"""A lead's story, read from its event log: its state now, its history, and why it is where it is.

``GET /v1/leads/{id}`` (:func:`lead_story`) answers with the lead, its workflow state (owner or
queue, SLA timers, assignments) and its history: every event of its log in order.
``GET /v1/leads/{id}/explain`` (:func:`explain`) answers "why is this lead where it is *now*": the
current score and stage with the rules behind them (its latest decision), how routing placed it,
then every move after that in order (who, when, why), and a summary that ends with the current
owner or queue.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec

from leadroute.errors import NotFound
from leadroute.store.db import Connection
from leadroute.store.queries import QUERIES
from leadroute.structs import Struct
from leadroute.workflow.log import (
    MOVES,
    LeadAccepted,
    LeadClosed,
    LeadMerged,
    LeadOutcome,
    LeadReceived,
    LeadScored,
    LeadSlaBreached,
    LogEvent,
    Placement,
    lead_events,
)
from leadroute.workflow.summary import routing_summary

__all__ = ["Explanation", "LeadState", "LeadStory", "Move", "SlaTimer", "explain", "lead_story", "view"]


class SlaTimer(Struct):
    """An SLA timer: who must accept by when, and how it ended."""

    status: str
    owner: str
    started_at: datetime
    due_at: datetime
    minutes: int
    on_breach: str
    business_hours: bool
    breaches: int
    resolution: str | None
    resolved_at: datetime | None


class LeadState(Struct):
    """A lead's workflow state now: its owner or queue (with the reason) and its latest SLA timer."""

    lead_id: str
    status: str
    owner: str | None
    pool: str | None
    queue: str | None
    reason: str | None
    assigned_at: datetime | None
    accepted_at: datetime | None
    sla: SlaTimer | None


class AssignmentRecord(Struct):
    """One assignment of a lead (an owner, or a queue), from its start to its end."""

    owner: str | None
    pool: str | None
    status: str
    queue: str | None
    reason: str | None
    rule: str | None
    assigned_at: datetime
    accepted_at: datetime | None
    ended_at: datetime | None


class Workflow(LeadState):
    """The workflow part of a lead's story: its state now, and every assignment and SLA timer."""

    assignments: list[AssignmentRecord]
    timers: list[SlaTimer]


class LeadStory(Struct):
    """``GET /v1/leads/{id}``: the lead as normalized, where it is, and its whole event log."""

    id: str
    created_at: datetime
    stage: str
    score: float
    status: str
    owner: str | None
    pool: str | None
    lead: dict[str, Any]
    workflow: Workflow
    history: list[LogEvent]


class Move(Struct):
    """One step of a lead's workflow after routing placed it, said in a sentence."""

    seq: int
    at: datetime
    type: str
    actor: str
    text: str
    owner: str | None = None
    queue: str | None = None


class Explanation(Struct):
    """``GET /v1/leads/{id}/explain``: why the lead has its score and stage, and why it is where it is."""

    lead_id: str
    status: str
    owner: str | None
    pool: str | None
    queue: str | None
    reason: str | None
    score: float
    stage: str
    decided_at: datetime
    ruleset: dict[str, Any]
    scoring: list[dict[str, Any]]
    rule_errors: list[dict[str, Any]]
    groups: dict[str, Any]
    qualification: dict[str, Any]
    routing: dict[str, Any]
    assignment: dict[str, Any]
    """How routing placed the lead in its latest decision (``unchanged``: it did not run)."""
    moves: list[Move]
    """Every move since the lead was first placed, in order."""
    merges: list[Move]
    """Every lead event (or duplicate lead) of the same person merged into this lead, in order."""
    previous_lead_id: str | None
    """The person came back after the re-engagement window: their previous lead."""
    summary: str


def _timer(row: Any) -> SlaTimer | None:
    if row is None:
        return None
    return SlaTimer(
        status=row["status"],
        owner=row["owner_id"],
        started_at=row["started_at"],
        due_at=row["due_at"],
        minutes=row["minutes"],
        on_breach=row["on_breach"],
        business_hours=row["business_hours"],
        breaches=row["breaches"],
        resolution=row["resolution"],
        resolved_at=row["resolved_at"],
    )


async def view(conn: Connection, lead_id: uuid.UUID) -> LeadState:
    """The lead's workflow state now: state, owner or queue, and its latest SLA timer."""
    lead = await conn.fetchrow(QUERIES["lead_get"], lead_id)
    if lead is None:
        raise NotFound("lead", str(lead_id))
    current = await conn.fetchrow(QUERIES["workflow_current"], lead_id)
    timer = await conn.fetchrow(QUERIES["sla_lead_latest"], lead_id)
    return LeadState(
        lead_id=str(lead_id),
        status=lead["status"],
        owner=lead["owner_id"],
        pool=lead["pool_id"],
        queue=current["queue"] if current is not None else None,
        reason=current["reason"] if current is not None else None,
        assigned_at=current["created_at"] if current is not None else None,
        accepted_at=current["accepted_at"] if current is not None else None,
        sla=_timer(timer),
    )


async def lead_story(conn: Connection, lead_id: uuid.UUID) -> LeadStory:
    """The lead, its workflow state, every assignment and timer, and its event log in order."""
    lead = await conn.fetchrow(QUERIES["lead_get"], lead_id)
    if lead is None:
        raise NotFound("lead", str(lead_id))
    state = await view(conn, lead_id)
    assignments = [
        AssignmentRecord(
            owner=a["owner_id"],
            pool=a["pool_id"],
            status=a["status"],
            queue=a["queue"],
            reason=a["reason"],
            rule=a["rule"],
            assigned_at=a["created_at"],
            accepted_at=a["accepted_at"],
            ended_at=a["ended_at"],
        )
        for a in await conn.fetch(QUERIES["workflow_assignments"], lead_id)
    ]
    timers = [t for t in map(_timer, await conn.fetch(QUERIES["sla_lead_timers"], lead_id)) if t is not None]
    return LeadStory(
        id=str(lead["id"]),
        created_at=lead["created_at"],
        stage=lead["stage"],
        score=lead["score"],
        status=lead["status"],
        owner=lead["owner_id"],
        pool=lead["pool_id"],
        lead=lead["normalized"],
        workflow=Workflow(**msgspec.structs.asdict(state), assignments=assignments, timers=timers),
        history=await lead_events(conn, lead_id),
    )


async def explain(conn: Connection, lead_id: uuid.UUID) -> Explanation:
    """Why the lead is where it is now (see the module docstring)."""
    decision = await conn.fetchrow(QUERIES["lead_decision_latest"], lead_id)
    if decision is None:
        raise NotFound("lead", str(lead_id))
    state = await view(conn, lead_id)
    events = await lead_events(conn, lead_id)
    why = decision["explanation"]
    routed_by = await conn.fetchrow(QUERIES["lead_decision_routed"], lead_id)
    routing_why = routed_by["explanation"] if routed_by is not None else why
    start = _told_by_routing(events, routed_by["id"] if routed_by is not None else None)
    moves = [_move(e) for e in events[start:] if _is_move(e)]
    summary = (
        f"Scored {decision['score']:g} and qualified as {decision['stage']} "
        f"by rule {why['qualification']['rule']!r}. "
        + routing_summary(routing_why["routing"], routing_why["assignment"])
    )
    merges = [_merge(e) for e in events if isinstance(e.data, LeadMerged)]
    received = next((e.data for e in events if isinstance(e.data, LeadReceived)), None)
    previous = received.previous_lead_id if received is not None else None
    told = [m.text for m in moves] + [m.text for m in merges]
    if received is not None and previous is not None:
        told.append(
            f"A returning person: their previous lead is {previous} (matched on {received.matched_on});"
            " it had ended or gone quiet for longer than the re-engagement window, so this is a new lead."
        )
    if moves:
        told.append(_now(state))  # where it is now, always the last sentence once it has moved
    if told:
        summary += " " + " ".join(told)
    return Explanation(
        lead_id=str(lead_id),
        status=state.status,
        owner=state.owner,
        pool=state.pool,
        queue=state.queue,
        reason=state.reason,
        score=decision["score"],
        stage=decision["stage"],
        decided_at=decision["decided_at"],
        ruleset={"version": decision["ruleset_version"], "sha256": decision["ruleset_sha256"]},
        scoring=why["scoring"],
        rule_errors=why["rule_errors"],
        groups=why["groups"],
        qualification=why["qualification"],
        routing=why["routing"],
        assignment=why["assignment"],
        moves=moves,
        merges=merges,
        previous_lead_id=previous,
        summary=summary,
    )


def _told_by_routing(events: list[LogEvent], decision_id: int | None) -> int:
    """Where the moves to tell one by one start: after the placement that the decision which
    routed the lead made (the routing summary tells that one)."""
    scored = next(
        (
            i
            for i, e in enumerate(events)
            if isinstance(e.data, LeadScored) and e.data.decision_id == decision_id
        ),
        None,
    )
    if scored is None:
        return 0
    for i in range(scored + 1, len(events)):
        data = events[i].data
        if isinstance(data, Placement):
            return i + 1 if data.cause in {"received", "stage_rose"} else scored + 1
    return scored + 1


def _is_move(event: LogEvent) -> bool:
    return event.type in MOVES or event.type in {
        "lead.accepted",
        "lead.sla_breached",
        "lead.closed",
        "lead.outcome",
    }


_CAUSE = {
    "received": "routing",
    "stage_rose": "routing, as its stage rose,",
    "sla_breach": "the SLA breach",
    "reassign": "a reassignment",
    "escalation": "escalation",
    "queue_drain": "the queue drain",
}


def _move(event: LogEvent) -> Move:
    """One event said in a sentence: ``At 10:31 UTC, sl1 let the SLA run out (breach 1 of ...)``."""
    at = event.at.strftime("%Y-%m-%d %H:%M UTC")
    by = "" if event.actor == "system" else f" by {event.actor}"
    data = event.data
    owner: str | None = None
    queue: str | None = None
    if isinstance(data, LeadSlaBreached):
        text = (
            f"At {at} {data.owner} did not accept within {data.minutes} minutes (SLA breach {data.breach})."
        )
    elif isinstance(data, LeadAccepted):
        owner = data.owner
        text = f"At {at} {data.owner} accepted it after {data.after_minutes:g} minutes."
    elif isinstance(data, LeadClosed):
        text = f"At {at} it was closed{by}" + (f": {data.reason}." if data.reason else ".")
    elif isinstance(data, LeadOutcome):
        text = _outcome(data, by)
    else:
        assert isinstance(data, Placement)
        owner, queue = data.owner, data.queue
        how = _CAUSE.get(data.cause, data.cause)
        if data.owner is None:
            text = f"At {at} {how}{by} left it in queue {data.queue!r}: {data.reason}."
        else:
            verb = {"lead.escalated": "escalated it to", "lead.reassigned": "reassigned it to"}.get(
                event.type, "assigned it to"
            )
            where = f" in pool {data.pool!r}" if data.pool else ""
            text = f"At {at} {how}{by} {verb} {data.owner}{where}"
            if data.previous_owner:
                text += f" (from {data.previous_owner})"
            text += f": {data.reason}." if data.reason else "."
        if data.note:
            text = text[:-1] + f" ({data.note})."
    return Move(
        seq=event.seq, at=event.at, type=event.type, actor=event.actor, text=text, owner=owner, queue=queue
    )


def _merge(event: LogEvent) -> Move:
    """A merge said in a sentence: ``Merged on 2026-11-23 15:05 UTC from webinar (matched on
    email): filled city, changed title (was 'Engineer').``"""
    data = event.data
    assert isinstance(data, LeadMerged)
    at = event.at.strftime("%Y-%m-%d %H:%M UTC")
    if data.merged_from is not None:
        origin = f"duplicate lead {data.merged_from}"
    else:
        origin = data.source or "a lead event without a source"
    parts = []
    if data.filled:
        parts.append("filled " + ", ".join(data.filled))
    if data.changed:
        parts.append("changed " + ", ".join(f"{k} (was {c.old!r})" for k, c in data.changed.items()))
    what = "; ".join(parts) if parts else "nothing new"
    text = f"Merged on {at} from {origin} (matched on {data.matched_on}): {what}."
    return Move(seq=event.seq, at=event.at, type=event.type, actor=event.actor, text=text)


_OUTCOME_TEXT = {
    "converted": "it converted",
    "won": "the deal was won",
    "lost": "the deal was lost",
    "disqualified_by_sales": "sales rejected it",
}


def _outcome(data: LeadOutcome, by: str) -> str:
    """``At 2026-11-23 16:00 UTC the deal was won (12,000 USD), recorded by key:ab12: ...``."""
    text = f"At {data.at.strftime('%Y-%m-%d %H:%M UTC')} {_OUTCOME_TEXT[data.outcome]}"
    if data.amount is not None:
        text += f" ({data.amount:,.2f} {data.currency})".replace(".00 ", " ")
    text += f", recorded{by}" if by else ""
    return text + (f": {data.reason}." if data.reason else ".")


def _now(state: LeadState) -> str:
    """The last sentence: where the lead is now."""
    if state.status == "closed":
        return "Now closed" + (f" (last with {state.owner})." if state.owner else ".")
    if state.owner is None:
        return f"Now in queue {state.queue!r}: {state.reason}."
    return f"Now with {state.owner} ({state.status})."
