"""One person, one lead: matching a lead event to the stored lead of the same person, and merging.

Intake (:func:`leadroute.workflow.intake.record_lead`) calls :func:`find_match` first in its
transaction. It takes a transaction-scoped advisory lock per identity value of the incoming person
(email, E.164 phone, name + company domain when ``LEADROUTE_MATCH_BY_NAME`` is on), sorted, and
reads the stored leads sharing any of those values, row-locked, in one round trip (the function
``leadroute_identity_match`` of migration 0012). So two requests for one person run one after the
other: the second sees the first one's lead and merges into it (50 concurrent posts of one person
make one lead with one owner, whose capacity is used once). Why advisory locks, not a unique index
on the identity values: leads from before matching existed hold duplicates (a unique index could
not be built over them), a person may legitimately have several leads (re-engagement), and email,
phone and name are three values that must serialize together; a lock per value does all three,
and costs one statement that also reads the candidates.

:func:`choose` (pure, :mod:`leadroute.intake.identity`) then decides: merge into a live lead, make a
new lead linked to a re-engaged person's previous one, or a plain new lead.

:func:`merge_lead` merges (the intake event, or a duplicate lead in ``leadroute leads dedupe``):
fields filled and changed (:func:`leadroute.intake.merge.merge_into`), a ``lead.merged`` event,
the row updated, and the lead rescored; when its score or stage changed it is requalified like
after an activity (:func:`leadroute.workflow.rescore.requalify`: a new ``lead.scored``, and routing
when an unowned lead's stage rose). A lead with an owner keeps it: never a second rep for one person.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

import msgspec

from leadroute.intake.identity import Candidate, Identity, Match, MatchedOn, choose, name_key
from leadroute.intake.merge import merge_into
from leadroute.models import Decision, NormalizedLead
from leadroute.routing import Assignment
from leadroute.runtime import ActiveRuleset
from leadroute.scoring import Evaluation, evaluate
from leadroute.store.queries import QUERIES
from leadroute.telemetry import span
from leadroute.workflow.log import FieldChange, LeadMerged
from leadroute.workflow.rescore import activities, requalify
from leadroute.workflow.runner import Change

__all__ = ["Found", "Merge", "candidate_of", "find_match", "found_among", "merge_decision", "merge_lead"]


class Found(msgspec.Struct, frozen=True, kw_only=True):
    """What :func:`find_match` decided, with the chosen lead's locked row."""

    match: Match
    row: dict[str, Any]


def candidate_of(row: Any) -> Candidate:
    """A stored lead as :func:`~leadroute.intake.identity.choose` sees it."""
    return Candidate(
        id=str(row["id"]),
        email=row["email"],
        phone=row["phone_e164"],
        name=row["name_key"],
        status=row["status"],
        owner_id=row["owner_id"],
        created_at=row["created_at"],
        last_seen_at=row["last_seen_at"],
    )


async def find_match(ch: Change, identity: Identity, window: timedelta | None) -> Found | None:
    """Lock ``identity``'s values and find the person's stored lead (see the module docstring)."""
    if not identity.values():
        return None
    with span("match"):
        rows = await ch.conn.fetch(
            QUERIES["identity_match"], identity.lock_keys(), identity.email, identity.phone, identity.name
        )
    return found_among(rows, identity, now=ch.now, window=window)


def found_among(
    rows: Sequence[Any], identity: Identity, *, now: datetime, window: timedelta | None
) -> Found | None:
    """What :func:`~leadroute.intake.identity.choose` decides over the person's stored leads
    ``rows`` (read and locked by ``leadroute_identity_match`` or ``leadroute_intake_begin``)."""
    if not rows:
        return None
    match = choose([candidate_of(r) for r in rows], identity, now=now, window=window)
    if match is None:
        return None
    row = next(dict(r) for r in rows if str(r["id"]) == match.lead.id)
    return Found(match=match, row=row)


class Merge(msgspec.Struct, frozen=True, kw_only=True):
    """A merge done: the lead's new evaluation, where routing placed it (None: it did not run),
    and the ``lead.merged`` event's sequence number."""

    lead: NormalizedLead
    """The lead after the merge."""
    evaluation: Evaluation
    placed: Assignment | None
    event_id: int
    changed: bool
    """Whether the score or stage changed (then a ``lead.scored`` was recorded)."""


async def merge_lead(
    ch: Change,
    *,
    row: dict[str, Any],
    incoming: NormalizedLead,
    active: ActiveRuleset,
    event: LeadMerged,
    occurred_at: datetime | None = None,
    seen_at: datetime | None = None,
) -> Merge:
    """Merge ``incoming`` into the locked lead ``row`` (see the module docstring).

    ``event``: the ``lead.merged`` payload without ``filled``/``changed`` (filled in here).
    ``seen_at``: when the person was heard from (default: now, a lead event just came in).
    """
    lead_id: uuid.UUID = row["id"]
    stored = msgspec.convert(row["normalized"], NormalizedLead)
    merged = merge_into(stored, incoming)
    lead = merged.lead
    evaluation = evaluate(
        active.ruleset, lead, activities=await activities(ch, lead_id, active.ruleset), now=ch.now
    )
    event_id = await ch.emit(
        lead_id,
        "lead.merged",
        msgspec.structs.replace(
            event,
            filled=merged.filled,
            changed={k: FieldChange(old=o, new=n) for k, (o, n) in merged.changed.items()},
        ),
        occurred_at=occurred_at,
        idempotency_key=event.idempotency_key,
    )
    await ch.conn.execute(
        QUERIES["lead_merge_update"],
        lead_id,
        msgspec.to_builtins(lead),
        lead.email,
        lead.company_domain,
        lead.phone_e164,
        name_key(lead.first_name, lead.last_name, lead.company_domain),
        seen_at or ch.now,
        ch.now,
    )
    changed = evaluation.score != row["score"] or evaluation.stage != row["stage"]
    placed = None
    if changed:
        done = await requalify(
            ch,
            row={**row, "company_domain": lead.company_domain},
            active=active,
            evaluation=evaluation,
            cause="merged",
            event_id=event_id,
        )
        placed = done.placed
    return Merge(lead=lead, evaluation=evaluation, placed=placed, event_id=event_id, changed=changed)


def merge_decision(
    row: dict[str, Any], done: Merge, matched_on: MatchedOn, active: ActiveRuleset
) -> Decision:
    """The intake answer of a merged lead event: the existing lead, ``merged: true``."""
    evaluation, placed = done.evaluation, done.placed
    routed = placed is not None and placed.owner is not None
    owner = placed.owner if routed and placed is not None else row["owner_id"]
    pool = placed.pool if routed and placed is not None else row["pool_id"]
    status: Literal["assigned", "unassigned", "pending"]
    if owner is not None:
        status = "assigned"
        reason = f"merged into the lead of the same person (matched on {matched_on}); it stays with {owner}"
    else:
        status = "pending" if row["status"] == "pending" else "unassigned"
        reason = f"merged into the lead of the same person (matched on {matched_on}); it has no owner yet"
    return Decision(
        lead_id=str(row["id"]),
        score=evaluation.score,
        groups={name: group.score for name, group in evaluation.groups.items()},
        stage=evaluation.stage,
        matched=list(evaluation.hits),
        pool=pool,
        owner=owner,
        status=status,
        reason=reason,
        routing_rule=placed.rule if routed and placed is not None else None,
        ruleset_version=active.ruleset.version,
        ruleset_sha256=active.ruleset.sha256,
        merged=True,
    )
