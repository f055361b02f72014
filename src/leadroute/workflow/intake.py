"""A lead event in, a decision out: parse, normalize, score, qualify, route, record.

The pure steps run first, outside any transaction. Then one step of the runner claims the
idempotency key, picks the owner (Redis, atomically), and writes the lead, its
``lead.received``, ``lead.scored`` and placement events, its decision, its assignment and SLA
timer, the domain's account owner and the response stored with the key (so a retry gets the same
answer) in one statement (:func:`leadroute.workflow.writer.record_new_lead`). Four round trips to
PostgreSQL in all: BEGIN; one statement that claims the keys, locks and reads the person's stored
leads and takes the routing lock (``leadroute_intake_begin``, migration 0017); the write; COMMIT.
And one to Redis: the claim script (which itself finds a lost state: :meth:`Router.ready`).

The match (:mod:`leadroute.workflow.merge`) comes first: a lead event of a person who has a live
lead is merged into it instead (answered 200, ``merged: true``, the lead keeps its owner); one who
comes back after the re-engagement window is a new lead linked to their previous one (routed to
its owner first when the rule file says ``routing.reengaged: previous_owner``).

When Redis (the routing state) cannot be reached, the lead is still recorded and scored, and
answered with status ``pending`` (HTTP 202): the queue drain routes pending leads, in arrival
order and exactly once, as soon as Redis answers again.

Concurrent retries of one key: the second ``INSERT ... ON CONFLICT DO NOTHING`` on the key waits
for the first transaction, then finds the row and reads the stored response. If the first rolled
back, the second claims the key and does the work itself. Either way exactly one lead exists.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any, Literal

import msgspec

from leadroute.errors import IdempotencyConflict
from leadroute.intake import FieldPolicy, read_lead
from leadroute.intake.identity import identity_of, name_key
from leadroute.models import Decision, FieldWarning, LeadIn, NormalizedLead
from leadroute.routing import Assignment
from leadroute.routing.rebuild import ROUTING_LOCK
from leadroute.runtime import ActiveRuleset, Runtime
from leadroute.scoring import Evaluation, evaluate
from leadroute.store.db import Connection
from leadroute.store.queries import QUERIES
from leadroute.telemetry import METRICS, span
from leadroute.workflow.log import LeadMerged, LeadReceived
from leadroute.workflow.merge import Found, found_among, merge_decision, merge_lead
from leadroute.workflow.rescore import rescore_at
from leadroute.workflow.runner import Change, run_grouped
from leadroute.workflow.writer import REDIS_DOWN, NewLead, pending_placement, record_new_lead

__all__ = [
    "HEADER",
    "IntakeResult",
    "Prepared",
    "Replayed",
    "RequestKeys",
    "fingerprint",
    "prepare_lead",
    "record_lead",
    "replayed",
    "submit_lead",
]

SCOPE = "lead"
_canonical = msgspec.json.Encoder(order="sorted").encode
_any_json = msgspec.json.Decoder().decode


class IntakeResult(msgspec.Struct, frozen=True):
    """The decision, and whether this request created it (False: a retry's stored answer)."""

    decision: Decision
    created: bool

    @property
    def status(self) -> int:
        """The HTTP status of this answer: 201 a new lead, 202 stored but waiting for Redis
        (``pending``), 200 a retry's stored answer or a merge into the person's lead."""
        if not self.created or self.decision.merged:
            return 200
        return 202 if self.decision.status == "pending" else 201


class Replayed(msgspec.Struct, frozen=True):
    """A retry's stored answer (one of its keys was used before, with the same body)."""

    response: dict[str, Any]


HEADER = "Idempotency-Key"


class RequestKeys(msgspec.Struct, frozen=True):
    """The idempotency keys one request is known by, in one namespace per scope.

    A request may carry the ``Idempotency-Key`` header, an ``event_id`` in its body, or both. The
    header wins: it is the request's key (in the log, in ``lead.received``) and, when both are
    known from earlier requests, its stored answer is the one given. But both are claimed, in one
    statement, and the answer is stored under both, so a retry that sends the same ``event_id``
    with or without the header (or with another header) is the same request.
    """

    header: str | None = None
    event_id: str | None = None

    @property
    def primary(self) -> str | None:
        """The key the request is recorded under: the header's, else the ``event_id``."""
        return self.header if self.header is not None else self.event_id

    def named(self) -> list[tuple[str, str]]:
        """``(field, key)`` pairs, the header first; one pair when both hold the same key."""
        pairs = [(HEADER, self.header), ("event_id", self.event_id)]
        seen: set[str] = set()
        result = []
        for field, key in pairs:
            if key is not None and key not in seen:
                seen.add(key)
                result.append((field, key))
        return result

    def all(self) -> list[str]:
        """Every key, the header's first."""
        return [key for _, key in self.named()]


def fingerprint(body: bytes) -> str:
    """sha256 of the body's canonical JSON, so a retry that reorders keys is still the same request."""
    return hashlib.sha256(_canonical(_any_json(body))).hexdigest()


async def replayed(
    conn: Connection, scope: str, keys: RequestKeys | str | None, body_print: str
) -> Replayed | None:
    """Claim every key of this request in ``scope``; when one was used before, its stored answer.

    The first key already taken, in :meth:`RequestKeys.named` order (the header first), decides:
    its body must be this one (else :class:`IdempotencyConflict` naming ``Idempotency-Key`` or
    ``event_id``) and its answer is returned; keys this request claimed are given the same answer,
    so each of them replays it from now on. None: every key is new (or there is none), claimed
    in this transaction; the caller stores the answer under :meth:`RequestKeys.all`.
    """
    if isinstance(keys, str):
        keys = RequestKeys(header=keys)
    named = keys.named() if keys is not None else []
    if not named:
        return None
    wanted = [key for _, key in named]
    claimed = {
        row["key"] for row in await conn.fetch(QUERIES["idempotency_claim"], scope, wanted, body_print)
    }
    return await _stored_answer(conn, scope, named, claimed, body_print)


async def _stored_answer(
    conn: Connection, scope: str, named: list[tuple[str, str]], claimed: set[str], body_print: str
) -> Replayed | None:
    """After the claim of ``named`` (``claimed``: the keys it took), the stored answer when one of
    them was taken before (see :func:`replayed`); None when every key was claimed now."""
    wanted = [key for _, key in named]
    if len(claimed) == len(wanted):
        return None
    # the claim conflicted on these, so their rows exist and are committed
    rows = {r["key"]: r for r in await conn.fetch(QUERIES["idempotency_get"], scope, wanted)}
    field, key = next((field, key) for field, key in named if key not in claimed)
    first = rows[key]
    if first["fingerprint"] != body_print:
        raise IdempotencyConflict(key, field)
    if claimed:
        await conn.execute(
            QUERIES["idempotency_complete"], scope, sorted(claimed), first["lead_id"], first["response"]
        )
    return Replayed(first["response"])


class Prepared(msgspec.Struct, frozen=True, kw_only=True):
    """A lead event after the pure steps (parse, normalize, score): what a transaction writes."""

    body: bytes
    lead_in: LeadIn
    lead: NormalizedLead
    keys: RequestKeys
    """Every idempotency key of the request (header and ``event_id``): claimed together."""
    body_print: str
    active: ActiveRuleset
    evaluation: Evaluation
    warnings: list[FieldWarning] = msgspec.field(default_factory=list)
    """Fields accepted with a problem: in the answer and in ``lead.received``."""

    @property
    def key(self) -> str | None:
        """The key the lead is recorded under (:attr:`RequestKeys.primary`)."""
        return self.keys.primary


def prepare_lead(rt: Runtime, body: bytes, idempotency_key: str | None) -> Prepared:
    """The pure steps, outside any transaction; raises InvalidLead."""
    settings = rt.settings
    policy = FieldPolicy(
        phone=settings.invalid_phone, website=settings.invalid_website, country=settings.invalid_country
    )
    with span("normalize"):
        read = read_lead(body, policy)
    lead_in, lead = read.lead_in, read.lead
    keys = RequestKeys(header=idempotency_key, event_id=lead_in.event_id)
    active = rt.rules  # one reference: the whole request sees one ruleset
    with span("score"):
        evaluation = evaluate(active.ruleset, lead)
    return Prepared(
        body=body,
        lead_in=lead_in,
        lead=lead,
        keys=keys,
        body_print=fingerprint(body) if keys.primary else "",
        active=active,
        evaluation=evaluation,
        warnings=read.warnings,
    )


async def record_lead(ch: Change, rt: Runtime, p: Prepared) -> IntakeResult:
    """Write one prepared lead inside the transaction of ``ch``: the key, the owner, the records.

    A retry of a committed key returns its stored answer (``created=False``); raises
    IdempotencyConflict when the key was used with another body.
    """
    lead, evaluation, active = p.lead, p.evaluation, p.active
    # The routing state is checked before the transaction takes the routing lock (a rebuild of a
    # lost state takes it exclusively): a cheap check, with I/O only after Redis lost its state.
    # In a shared transaction (group commit, a batch) only before the first lead took the lock.
    routable = True
    if not ch.holds(ROUTING_LOCK):
        try:
            await rt.routing.ready()
        except REDIS_DOWN:
            routable = False
    begun = await _begin(ch, rt, p)
    if isinstance(begun, Replayed):
        return IntakeResult(msgspec.convert(begun.response, Decision), created=False)
    found = begun.found
    if found is not None and not found.match.reengaged:
        return await _merge(ch, p, found)
    previous = found.match if found is not None else None
    previous_owner = (
        previous.lead.owner_id if previous is not None and active.ruleset.reengage_previous_owner else None
    )
    lead_id = uuid.uuid4()
    placed = (
        await _route(ch, rt, p, lead_id, previous_owner=previous_owner, version=begun.version)
        if routable
        else None
    )
    status: Literal["assigned", "unassigned", "pending"]
    if placed is None:
        # Redis cannot be reached: take the lead anyway, routed by the queue drain once it is back
        placed, status = pending_placement(), "pending"
    else:
        status = placed.status
    ruleset = active.ruleset
    decision = Decision(
        lead_id=str(lead_id),
        score=evaluation.score,
        groups={name: group.score for name, group in evaluation.groups.items()},
        stage=evaluation.stage,
        matched=list(evaluation.hits),
        pool=placed.pool,
        owner=placed.owner,
        status=status,
        reason=placed.reason,
        routing_rule=placed.rule if placed.rule is not None else evaluation.routing_rule,
        ruleset_version=ruleset.version,
        ruleset_sha256=ruleset.sha256,
        warnings=p.warnings,
    )
    await record_new_lead(
        ch,
        lead=NewLead(
            id=lead_id,
            email=lead.email,
            company_domain=lead.company_domain,
            phone_e164=lead.phone_e164,
            name_key=name_key(lead.first_name, lead.last_name, lead.company_domain),
            normalized=msgspec.to_builtins(lead),
            rescore_at=rescore_at(active.ruleset, evaluation, ch.now, rt.settings.rescore_every),
            received=LeadReceived(
                body=_any_json(p.body),
                idempotency_key=p.key,
                warnings=p.warnings,
                previous_lead_id=previous.lead.id if previous is not None else None,
                matched_on=previous.matched_on if previous is not None else None,
            ),
            occurred_at=p.lead_in.occurred_at,
            idempotency_key=p.key,
        ),
        active=active,
        evaluation=evaluation,
        placed=placed,
        pending=status == "pending",
        answer=msgspec.to_builtins(decision) if p.key is not None else None,
        answer_keys=p.keys.all(),
    )
    ch.after_commit(METRICS.leads.labels(decision.stage, status).inc)
    return IntakeResult(decision, created=True)


async def _route(
    ch: Change, rt: Runtime, p: Prepared, lead_id: uuid.UUID, *, previous_owner: str | None, version: int
) -> Assignment | None:
    """Claim an owner for the new lead (the transaction holds the routing lock at ``version``);
    None when Redis cannot be reached."""
    try:
        with span("route"):
            return ch.claimed(
                await rt.routing.assign(
                    ch.conn,
                    lead_id=lead_id,
                    company_domain=p.lead.company_domain,
                    targets=p.evaluation.targets,
                    fallback=p.evaluation.fallback,
                    now=ch.now,
                    previous_owner=previous_owner,
                    version=version,
                )
            )
    except REDIS_DOWN:
        return None


class _Begun(msgspec.Struct, frozen=True):
    """A new lead's transaction after its first statement: the person's stored lead, if any
    (locked), and the routing configuration's version (the routing lock is held shared)."""

    found: Found | None
    version: int


async def _begin(ch: Change, rt: Runtime, p: Prepared) -> _Begun | Replayed:
    """The first statement of a new lead's transaction (``leadroute_intake_begin``, migration
    0017): claim the request's keys, lock the person's identity values and read their stored
    leads, take the routing lock shared and read the configuration's version, in one round trip.
    A retry (a key taken before) gets its stored answer instead."""
    identity = identity_of(p.lead, by_name=rt.settings.match_by_name)
    named = p.keys.named()
    rows = await ch.conn.fetch(
        QUERIES["intake_begin"],
        SCOPE,
        [key for _, key in named],
        p.body_print,
        identity.lock_keys(),
        identity.email,
        identity.phone,
        identity.name,
        ROUTING_LOCK,
    )
    head = next(row for row in rows if row["kind"] == "head")
    if head["config_version"] is None:  # a key was taken before: no lock, no match
        stored = await _stored_answer(ch.conn, SCOPE, named, set(head["claimed"]), p.body_print)
        assert stored is not None
        return stored
    ch.took(ROUTING_LOCK)
    leads = [row for row in rows if row["kind"] == "lead"]
    found = found_among(leads, identity, now=ch.now, window=rt.settings.reengage_after)
    return _Begun(found=found, version=head["config_version"])


async def _merge(ch: Change, p: Prepared, found: Found) -> IntakeResult:
    """Merge the lead event into the person's live lead; the answer is stored with the key."""
    with span("merge"):
        done = await merge_lead(
            ch,
            row=found.row,
            incoming=p.lead,
            active=p.active,
            event=LeadMerged(
                matched_on=found.match.matched_on,
                source=p.lead.source,
                body=_any_json(p.body),
                idempotency_key=p.key,
            ),
            occurred_at=p.lead_in.occurred_at,
        )
    decision = msgspec.structs.replace(
        merge_decision(found.row, done, found.match.matched_on, p.active), warnings=p.warnings
    )
    answer_keys = p.keys.all()
    if answer_keys:
        await ch.conn.execute(
            QUERIES["idempotency_complete"],
            SCOPE,
            answer_keys,
            found.row["id"],
            msgspec.to_builtins(decision),
        )
    ch.after_commit(METRICS.merges.labels(found.match.matched_on).inc)
    return IntakeResult(decision, created=True)


async def submit_lead(
    rt: Runtime, body: bytes, idempotency_key: str | None, *, actor: str = "api"
) -> IntakeResult:
    """Run one lead event through the workflow; raises InvalidLead or IdempotencyConflict."""
    prepared = prepare_lead(rt, body, idempotency_key)

    async def step(ch: Change) -> IntakeResult:
        return await record_lead(ch, rt, prepared)

    with span("intake"):
        return await run_grouped(rt, step, actor=actor)
