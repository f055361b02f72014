"""Who a lead is, and what a merge changes: the pure core of duplicate matching (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from leadroute.intake import normalize
from leadroute.intake.identity import (
    Candidate,
    Identity,
    choose,
    duplicate_groups,
    identity_of,
    lock_key,
    name_key,
    plan_group,
)
from leadroute.intake.merge import merge_into
from leadroute.models import LeadIn
from leadroute.rules import RulesetError, parse_ruleset

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
WINDOW = timedelta(days=90)


def cand(
    ident: str,
    *,
    email: str | None = None,
    phone: str | None = None,
    name: str | None = None,
    status: str = "assigned",
    owner: str | None = "ana",
    age_days: float = 1,
    seen_days: float = 1,
) -> Candidate:
    return Candidate(
        id=ident,
        email=email,
        phone=phone,
        name=name,
        status=status,
        owner_id=owner,
        created_at=NOW - timedelta(days=age_days),
        last_seen_at=NOW - timedelta(days=seen_days),
    )


class TestIdentity:
    """The values a lead is matched on come from its normalized fields."""

    def test_values_in_matching_order_and_name_only_when_asked(self) -> None:
        lead = normalize(
            LeadIn(
                email="Jo@Acme.example",
                phone="(415) 555-0100",
                country="US",
                first_name=" Jo ",
                last_name="SMITH",
            )
        )
        assert identity_of(lead, by_name=False) == Identity(
            email="jo@acme.example", phone="+14155550100", name=None
        )
        assert identity_of(lead, by_name=True).name == "jo smith|acme.example"

    def test_a_name_key_needs_both_names_and_a_domain(self) -> None:
        assert name_key("Jo", None, "acme.example") is None
        assert name_key("Jo", "Smith", None) is None
        assert name_key("Mary  Ann", "Smith", "acme.example") == "mary ann smith|acme.example"

    def test_lock_keys_are_stable_sorted_and_32_bit(self) -> None:
        identity = Identity(email="jo@acme.example", phone="+14155550100", name=None)
        keys = identity.lock_keys()
        assert (
            keys
            == sorted(keys)
            == sorted({lock_key("email", "jo@acme.example"), lock_key("phone", "+14155550100")})
        )
        assert all(-(2**31) <= k < 2**31 for k in keys)
        assert lock_key("email", "jo@acme.example") == lock_key("email", "jo@acme.example")


class TestChoose:
    """Which stored lead a new event belongs to."""

    identity = Identity(email="jo@acme.example", phone="+14155550100", name=None)

    def test_no_candidate_sharing_a_value_is_no_match(self) -> None:
        assert choose([cand("a", email="x@y.example")], self.identity, now=NOW, window=WINDOW) is None

    def test_email_before_phone_among_live_leads(self) -> None:
        by_phone = cand("a", phone="+14155550100", age_days=10)
        by_email = cand("b", email="jo@acme.example", age_days=1)
        match = choose([by_phone, by_email], self.identity, now=NOW, window=WINDOW)
        assert match is not None
        assert (match.lead.id, match.matched_on, match.reengaged) == ("b", "email", False)

    def test_with_an_owner_then_the_oldest(self) -> None:
        young_owned = cand("a", email="jo@acme.example", age_days=1)
        old_unowned = cand("b", email="jo@acme.example", owner=None, status="unassigned", age_days=5)
        old_owned = cand("c", email="jo@acme.example", age_days=3)
        match = choose([young_owned, old_unowned, old_owned], self.identity, now=NOW, window=WINDOW)
        assert match is not None
        assert match.lead.id == "c"

    def test_a_live_lead_wins_over_a_better_matching_stale_one(self) -> None:
        stale = cand("a", email="jo@acme.example", seen_days=120)
        live = cand("b", phone="+14155550100", seen_days=3)
        match = choose([stale, live], self.identity, now=NOW, window=WINDOW)
        assert match is not None
        assert (match.lead.id, match.matched_on, match.reengaged) == ("b", "phone", False)

    def test_past_the_window_or_closed_is_a_reengagement_with_the_most_recent_lead(self) -> None:
        older = cand("a", email="jo@acme.example", seen_days=300, age_days=400)
        closed = cand("b", email="jo@acme.example", status="closed", seen_days=5, age_days=10)
        match = choose([older, closed], self.identity, now=NOW, window=WINDOW)
        assert match is not None
        assert (match.lead.id, match.reengaged) == ("b", True)

    def test_the_window_edge(self) -> None:
        edge = cand("a", email="jo@acme.example", seen_days=90)
        after = cand("a", email="jo@acme.example", seen_days=90.001)
        assert choose([edge], self.identity, now=NOW, window=WINDOW).reengaged is False  # type: ignore[union-attr]
        assert choose([after], self.identity, now=NOW, window=WINDOW).reengaged is True  # type: ignore[union-attr]
        assert choose([after], self.identity, now=NOW, window=None).reengaged is False  # type: ignore[union-attr]


class TestMergeInto:
    """A merge fills empty fields, changes different ones (recording the old value), keeps the rest."""

    def test_fill_change_keep(self) -> None:
        stored = normalize(
            LeadIn(email="jo@gmail.com", title="Engineer", source="web_form", attributes={"plan": "free"})
        )
        new = normalize(
            LeadIn(
                email="jo@acme.example",
                title="VP",
                city="Berlin",
                source="webinar",
                attributes={"plan": "pro", "seats": 5},
            )
        )
        merged = merge_into(stored, new)
        assert merged.filled == {"company_domain": "acme.example", "city": "Berlin", "attributes.seats": 5}
        assert merged.changed == {
            "email": ("jo@gmail.com", "jo@acme.example"),
            "email_domain": ("gmail.com", "acme.example"),
            "title": ("Engineer", "VP"),
            "attributes.plan": ("free", "pro"),
        }
        assert merged.lead.source == "web_form"  # first touch
        assert merged.lead.is_free_email is False  # follows the email that won
        assert merged.lead.attributes == {"plan": "pro", "seats": 5}

    def test_an_event_without_an_email_leaves_the_email_and_its_flags(self) -> None:
        stored = normalize(LeadIn(email="jo@gmail.com", phone="+14155550100"))
        merged = merge_into(stored, normalize(LeadIn(phone="+14155550100", title="CTO", email=None)))
        assert merged.lead.email == "jo@gmail.com"
        assert merged.lead.is_free_email is True
        assert (merged.filled, merged.changed) == ({"title": "CTO"}, {})


class TestDuplicateGroups:
    """Old duplicates are grouped transitively, and each group planned."""

    def test_transitive_groups_oldest_first(self) -> None:
        a = cand("a", email="jo@acme.example", phone=None, age_days=9)
        b = cand("b", email="jo@acme.example", phone="+1", age_days=5)
        c = cand("c", email="c@x.example", phone="+1", age_days=3)
        d = cand("d", email="d@x.example", name="jo smith|acme.example", age_days=2)
        e = cand("e", email="e@x.example", name="jo smith|acme.example", age_days=1)
        assert [[x.id for x in g] for g in duplicate_groups([c, b, a, d, e], by_name=False)] == [
            ["a", "b", "c"]
        ]
        assert [[x.id for x in g] for g in duplicate_groups([c, b, a, d, e], by_name=True)] == [
            ["a", "b", "c"],
            ["d", "e"],
        ]

    def test_the_plan_keeps_the_owned_oldest_and_leaves_closed_and_stale_apart(self) -> None:
        unowned_oldest = cand("a", email="j@x", owner=None, status="unassigned", age_days=9)
        owned = cand("b", email="j@x", age_days=5)
        closed = cand("c", email="j@x", status="closed", age_days=20)
        stale = cand("d", email="j@x", seen_days=200, age_days=300)
        plan = plan_group([stale, closed, unowned_oldest, owned], now=NOW, window=WINDOW)
        assert plan.survivor is not None
        assert plan.survivor.id == "b"
        assert [c.id for c in plan.losers] == ["a"]
        assert {c.id for c in plan.kept} == {"c", "d"}
        assert plan.reason == "survives: open, has an owner (ana) and some others do not"

    def test_one_live_lead_is_nothing_to_merge(self) -> None:
        plan = plan_group(
            [cand("a", email="j@x", status="closed"), cand("b", email="j@x")], now=NOW, window=WINDOW
        )
        assert plan.survivor is None
        assert plan.losers == []


class TestReengagedSwitch:
    """``routing.reengaged`` in a rule file: ``route`` (the default) or ``previous_owner``."""

    RULES = """
version: 1
scoring:
  groups: {fit: {max: 100}}
qualification:
  - {id: rest, stage: lead}
routing:
  rules:
    - {id: everyone, when: 'true', pool: sales}
  fallback: unassigned
"""

    def test_default_explicit_and_switched(self) -> None:
        default = parse_ruleset(self.RULES, path=Path("r.yaml"))
        explicit = parse_ruleset(self.RULES + "  reengaged: route\n", path=Path("r.yaml"))
        switched = parse_ruleset(self.RULES + "  reengaged: previous_owner\n", path=Path("r.yaml"))
        assert default.reengage_previous_owner is False
        assert explicit.sha256 == default.sha256  # the default is the same content
        assert switched.reengage_previous_owner is True
        assert switched.sha256 != default.sha256

    def test_an_unknown_value_names_the_key(self) -> None:
        with pytest.raises(RulesetError) as caught:
            parse_ruleset(self.RULES + "  reengaged: nobody\n", path=Path("r.yaml"))
        (problem,) = caught.value.problems
        assert (problem.line, problem.column) == (11, 14)
        assert problem.message.startswith("'reengaged': Invalid enum value 'nobody'")
