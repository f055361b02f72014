"""Who a lead is: the identity values duplicates are matched on, and which stored lead a new event
belongs to. Pure: the store reads the candidates (:mod:`leadroute.workflow.merge`), this decides.

A person is matched by normalized email, then by E.164 phone, then, when
``LEADROUTE_MATCH_BY_NAME`` is on, by normalized name + company domain (:func:`name_key`).

Of the stored leads that share a value with the new event (the *candidates*), :func:`choose`
picks one, deterministically:

1. a *live* lead (not closed, and heard from within the re-engagement window) before any other;
2. among live ones: matched on email before phone before name; then the one with an owner; then
   the oldest (the one a rep has worked longest); then the smallest id;
3. no live lead: the most recently seen one is the *previous* lead of a re-engaged person (a new
   lead is made and linked to it), or there is no match at all.

The same order picks the surviving lead of a group of old duplicates (``leadroute leads
dedupe``) and the lead an activity posted by email attaches to (:func:`survivor`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

import msgspec

from leadroute.models import NormalizedLead

__all__ = [
    "Candidate",
    "GroupPlan",
    "Identity",
    "Match",
    "MatchedOn",
    "choose",
    "duplicate_groups",
    "identity_of",
    "lock_key",
    "name_key",
    "plan_group",
    "survivor",
]

MatchedOn = Literal["email", "phone", "name"]
_RANK: dict[str, int] = {"email": 0, "phone": 1, "name": 2}


def _words(value: str | None) -> str | None:
    if value is None:
        return None
    words = " ".join(value.lower().split())
    return words or None


def name_key(first: str | None, last: str | None, company_domain: str | None) -> str | None:
    """``"first last|company.example"``, lower-cased, inner whitespace collapsed; None unless both
    names and a company domain are known (a name alone names too many people).

    The migration that added ``leads.name_key`` computed it the same way for older leads.
    """
    first, last = _words(first), _words(last)
    if first is None or last is None or company_domain is None:
        return None
    return f"{first} {last}|{company_domain}"


class Identity(msgspec.Struct, frozen=True, kw_only=True):
    """The values a lead is matched on (None: the lead has none, or name matching is off)."""

    email: str | None
    phone: str | None
    name: str | None

    def values(self) -> list[tuple[MatchedOn, str]]:
        """Each present value with its kind, in matching order."""
        pairs: list[tuple[MatchedOn, str | None]] = [
            ("email", self.email),
            ("phone", self.phone),
            ("name", self.name),
        ]
        return [(kind, value) for kind, value in pairs if value is not None]

    def lock_keys(self) -> list[int]:
        """The advisory lock keys of the values, sorted (every transaction takes them in one order)."""
        return sorted({lock_key(kind, value) for kind, value in self.values()})


def identity_of(lead: NormalizedLead, *, by_name: bool) -> Identity:
    """The identity of a normalized lead; the name only when ``by_name``."""
    return Identity(
        email=lead.email,
        phone=lead.phone_e164,
        name=name_key(lead.first_name, lead.last_name, lead.company_domain) if by_name else None,
    )


def lock_key(kind: str, value: str) -> int:
    """A stable signed 32-bit key for one identity value (the second half of a two-key advisory
    lock). A collision only makes two unrelated people's requests wait for each other."""
    digest = hashlib.blake2b(f"{kind}:{value}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


class Candidate(msgspec.Struct, frozen=True, kw_only=True):
    """A stored lead sharing an identity value with the new event."""

    id: str
    email: str | None
    phone: str | None
    name: str | None
    status: str
    owner_id: str | None
    created_at: datetime
    last_seen_at: datetime

    def matched_on(self, identity: Identity) -> MatchedOn | None:
        """The first value (email, phone, name) this lead shares with ``identity``."""
        for kind, value in identity.values():
            if getattr(self, kind) == value:
                return kind
        return None


class Match(msgspec.Struct, frozen=True, kw_only=True):
    """The lead a new event belongs to (``reengaged`` False: merge into it), or the previous lead
    of a person who came back after the window (``reengaged`` True: a new lead, linked to it)."""

    lead: Candidate
    matched_on: MatchedOn
    reengaged: bool


def _live(c: Candidate, now: datetime, window: timedelta | None) -> bool:
    return c.status != "closed" and (window is None or now - c.last_seen_at <= window)


def survivor(candidates: Sequence[Candidate], identity: Identity | None = None) -> Candidate:
    """The one of several leads of one person that the others merge into (see the module docstring);
    ``identity`` None: what matched plays no part (``leads dedupe``)."""
    return min(
        candidates,
        key=lambda c: (
            c.status == "closed",
            _RANK[(c.matched_on(identity) if identity is not None else None) or "email"],
            c.owner_id is None,
            c.created_at,
            c.id,
        ),
    )


def choose(
    candidates: Sequence[Candidate], identity: Identity, *, now: datetime, window: timedelta | None
) -> Match | None:
    """The lead the new event with ``identity`` belongs to (see the module docstring).

    ``window``: how long after a person was last seen they are still the same lead (None: forever;
    a closed lead is always past it).
    """
    matching = [c for c in candidates if c.matched_on(identity) is not None]
    live = [c for c in matching if _live(c, now, window)]
    if live:
        best = survivor(live, identity)
        kind = best.matched_on(identity)
        assert kind is not None
        return Match(lead=best, matched_on=kind, reengaged=False)
    if not matching:
        return None
    previous = max(matching, key=lambda c: (c.last_seen_at, c.created_at, c.id))
    kind = previous.matched_on(identity)
    assert kind is not None
    return Match(lead=previous, matched_on=kind, reengaged=True)


def duplicate_groups(candidates: Sequence[Candidate], *, by_name: bool) -> list[list[Candidate]]:
    """The leads that are one person, grouped: two leads sharing an email, a phone or (``by_name``)
    a name key are in one group, and so, transitively, is every lead sharing one with either.
    Groups of two or more, each oldest first, the groups in the order of their oldest lead."""
    parent = list(range(len(candidates)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    seen: dict[tuple[str, str], int] = {}
    kinds = ("email", "phone", "name") if by_name else ("email", "phone")
    for i, c in enumerate(candidates):
        for kind in kinds:
            value = getattr(c, kind)
            if value is None:
                continue
            j = seen.setdefault((kind, value), i)
            parent[root(i)] = root(j)
    members: dict[int, list[Candidate]] = {}
    for i, c in enumerate(candidates):
        members.setdefault(root(i), []).append(c)
    return sorted(
        (sorted(g, key=lambda c: (c.created_at, c.id)) for g in members.values() if len(g) > 1),
        key=lambda g: (g[0].created_at, g[0].id),
    )


class GroupPlan(msgspec.Struct, frozen=True, kw_only=True):
    """What ``leads dedupe`` does with one group: merge ``losers`` into ``survivor`` (why: ``reason``);
    ``kept`` are leads of the person left apart (closed, or older than the re-engagement window:
    a returning person's earlier leads, which intake would not merge into either)."""

    survivor: Candidate | None
    losers: list[Candidate]
    kept: list[Candidate]
    reason: str


def plan_group(group: Sequence[Candidate], *, now: datetime, window: timedelta | None) -> GroupPlan:
    """The plan for one group of duplicates (see :class:`GroupPlan`)."""
    live = [c for c in group if _live(c, now, window)]
    kept = [c for c in group if c not in live]
    if len(live) < 2:
        return GroupPlan(
            survivor=None,
            losers=[],
            kept=list(group),
            reason="nothing to merge: at most one lead is open and seen within the re-engagement window",
        )
    best = survivor(live)
    losers = [c for c in live if c.id != best.id]
    why = ["open"]
    if best.owner_id is not None:
        why.append(f"has an owner ({best.owner_id})")
        if any(c.owner_id is None for c in losers):
            why[-1] += " and some others do not"
    if all(c.created_at >= best.created_at for c in losers):
        why.append("the oldest")
    return GroupPlan(survivor=best, losers=losers, kept=kept, reason="survives: " + ", ".join(why))
