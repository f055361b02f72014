"""The calibration report (pure): do scores, stages and scoring rules predict what sales made of leads?

Input: one :class:`ScoredLead` per lead that arrived in the window (its score, stage, ruleset
version and matched scoring rules as decided, and its outcome, :func:`lead_outcome`), and the
scoring rules each ruleset version has. Every proportion comes with its Wilson 95 % interval.

- **by score band**: conversion and win rate per band of scores (``[edge_i, edge_i+1)``, plus one
  band below the first edge and one from the last);
- **by stage**: the same per stage, and the share rejected by sales among leads with an outcome;
- **rule lift**: for each scoring rule, conversion of the leads it matched against the leads it
  did not match *among leads scored by a ruleset version that has the rule* (a rule added last
  week is not compared with leads that never could match it); lift = matched rate / unmatched rate;
- **funnel per ruleset version**: leads, qualified (MQL or SQL), SQL, converted, won;
- **qualification accuracy**: of the MQL and SQL leads sales gave an outcome, the share it
  rejected (``disqualified_by_sales``); accuracy is one minus that;
- **revenue**: the amounts of the won deals (per currency), per band, stage and version, and per
  lead for each rule's matched and unmatched leads (which rules predict revenue, not only wins).

A lead with no outcome counts as not converted: pick a window whose leads had time to get one.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Final, Literal

from leadroute.reports._outcome import CONVERTED
from leadroute.reports._stats import Rate, rate
from leadroute.structs import FrozenStruct
from leadroute.workflow.log import OutcomeKind

__all__ = [
    "DEFAULT_BANDS",
    "BandRow",
    "Basis",
    "CalibrationReport",
    "FunnelRow",
    "RejectionRow",
    "Revenue",
    "RuleLift",
    "ScoredLead",
    "StageRow",
    "calibrate",
    "parse_bands",
    "revenue",
]

DEFAULT_BANDS: Final = (0.0, 20.0, 40.0, 60.0, 80.0)
"""Band edges: below 0, [0, 20), [20, 40), [40, 60), [60, 80), 80 and over."""
STAGES: Final = ("disqualified", "lead", "mql", "sql")
QUALIFIED: Final = frozenset({"mql", "sql"})

Basis = Literal["latest", "intake"]
"""Which decision stands for a lead: ``latest`` (the last one before its first outcome, or
before the window's end without one: what sales acted on) or ``intake`` (the first one)."""


class ScoredLead(FrozenStruct, frozen=True, kw_only=True):
    """One lead as the report sees it: the decision that stands for it, and its outcome."""

    lead_id: str
    score: float
    stage: str
    ruleset_version: int
    matched: frozenset[str]
    """The scoring rules that matched (lead-level and activity rules, each once)."""
    outcome: OutcomeKind | None
    amount: float | None = None
    """The won deal's amount (the latest ``won`` outcome's), None otherwise or when not given."""
    currency: str | None = None


Revenue = dict[str, float]
"""Currency → the sum of won amounts (deals won without an amount add nothing)."""


class BandRow(FrozenStruct, frozen=True, kw_only=True):
    label: str
    low: float | None
    """Inclusive; None: no lower bound."""
    high: float | None
    """Exclusive; None: no upper bound."""
    converted: Rate
    won: Rate
    revenue: Revenue


class StageRow(FrozenStruct, frozen=True, kw_only=True):
    stage: str
    converted: Rate
    won: Rate
    rejected: Rate
    """Rejected by sales, among this stage's leads with an outcome."""
    revenue: Revenue


class RuleLift(FrozenStruct, frozen=True, kw_only=True):
    rule: str
    matched: Rate
    """Conversion of the leads the rule matched."""
    unmatched: Rate
    """Conversion of the leads it did not match (scored by a version that has the rule)."""
    lift: float | None
    """``matched.rate / unmatched.rate``; None when either is unknown or the divisor is 0."""
    difference: float | None
    """``matched.rate - unmatched.rate`` (percentage points / 100)."""
    revenue_per_lead_matched: Revenue
    """Won revenue over the number of matched leads, per currency."""
    revenue_per_lead_unmatched: Revenue


class FunnelRow(FrozenStruct, frozen=True, kw_only=True):
    ruleset_version: int
    leads: int
    qualified: int
    """MQL or SQL."""
    sql: int
    converted: int
    won: int
    won_of_qualified: Rate
    won_of_unqualified: Rate
    """Won among the leads the rules did not qualify (lead, disqualified): what they missed."""
    revenue: Revenue


class RejectionRow(FrozenStruct, frozen=True, kw_only=True):
    stage: str
    """``mql``, ``sql`` or ``qualified`` (both)."""
    leads: int
    with_outcome: int
    rejected: Rate
    """Rejected by sales among ``with_outcome``."""
    accuracy: float | None
    """``1 - rejected.rate``."""


class CalibrationReport(FrozenStruct, frozen=True, kw_only=True):
    start: datetime
    end: datetime
    basis: Basis
    bands: tuple[float, ...]
    leads: int
    with_outcome: int
    converted: Rate
    won: Rate
    revenue: Revenue
    currency: str | None
    """The currency most won revenue is in (the charts show that one); None: no revenue."""
    by_band: list[BandRow]
    by_stage: list[StageRow]
    rules: list[RuleLift]
    funnel: list[FunnelRow]
    rejection: list[RejectionRow]


def parse_bands(text: str) -> tuple[float, ...]:
    """``"0,20,40"`` as increasing band edges; ValueError with a message otherwise."""
    try:
        edges = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"bands: {text!r} is not a comma-separated list of numbers") from None
    if not edges or not all(map(math.isfinite, edges)):
        raise ValueError("bands: give at least one finite edge, e.g. 0,20,40,60,80")
    if any(b <= a for a, b in itertools.pairwise(edges)):
        raise ValueError("bands: the edges must increase, e.g. 0,20,40,60,80")
    return edges


def _edges_label(low: float | None, high: float | None) -> str:
    if low is None:
        return f"< {high:g}"
    if high is None:
        return f">= {low:g}"
    return f"{low:g}-{high:g}"


def _band_bounds(edges: Sequence[float]) -> list[tuple[float | None, float | None]]:
    lows: list[float | None] = [None, *edges]
    highs: list[float | None] = [*edges, None]
    return list(zip(lows, highs, strict=True))


def _in_band(score: float, low: float | None, high: float | None) -> bool:
    return (low is None or score >= low) and (high is None or score < high)


def _converted(leads: Iterable[ScoredLead]) -> tuple[int, int, int]:
    """(leads, converted, won)."""
    n = c = w = 0
    for lead in leads:
        n += 1
        c += lead.outcome in CONVERTED
        w += lead.outcome == "won"
    return n, c, w


def revenue(leads: Iterable[ScoredLead], per: int | None = None) -> Revenue:
    """Won amounts per currency (divided by ``per`` leads when given and not 0), sorted by currency."""
    sums: dict[str, float] = defaultdict(float)
    for lead in leads:
        if lead.outcome == "won" and lead.amount is not None:
            sums[lead.currency or "USD"] += lead.amount
    return {c: (v / per if per else v) for c, v in sorted(sums.items())}


def calibrate(
    leads: Sequence[ScoredLead],
    *,
    start: datetime,
    end: datetime,
    basis: Basis = "latest",
    bands: Sequence[float] = DEFAULT_BANDS,
    rules_by_version: Mapping[int, frozenset[str]] | None = None,
) -> CalibrationReport:
    """The whole report from the window's leads (see the module docstring).

    ``rules_by_version``: the scoring rule ids of each ruleset version; a version missing from it
    is taken to have the rules its leads matched.
    """
    n, c, w = _converted(leads)
    total = revenue(leads)
    by_band = []
    for low, high in _band_bounds(bands):
        in_band = [lead for lead in leads if _in_band(lead.score, low, high)]
        bn, bc, bw = _converted(in_band)
        by_band.append(
            BandRow(
                label=_edges_label(low, high),
                low=low,
                high=high,
                converted=rate(bc, bn),
                won=rate(bw, bn),
                revenue=revenue(in_band),
            )
        )
    by_stage = []
    for stage in STAGES:
        of_stage = [lead for lead in leads if lead.stage == stage]
        sn, sc, sw = _converted(of_stage)
        judged = [lead for lead in of_stage if lead.outcome is not None]
        rejected = sum(lead.outcome == "disqualified_by_sales" for lead in judged)
        by_stage.append(
            StageRow(
                stage=stage,
                converted=rate(sc, sn),
                won=rate(sw, sn),
                rejected=rate(rejected, len(judged)),
                revenue=revenue(of_stage),
            )
        )
    return CalibrationReport(
        start=start,
        end=end,
        basis=basis,
        bands=tuple(bands),
        leads=n,
        with_outcome=sum(lead.outcome is not None for lead in leads),
        converted=rate(c, n),
        won=rate(w, n),
        revenue=total,
        currency=max(total, key=lambda k: total[k]) if total else None,
        by_band=by_band,
        by_stage=by_stage,
        rules=_rule_lifts(leads, rules_by_version or {}),
        funnel=_funnel(leads),
        rejection=_rejection(leads),
    )


def _rule_lifts(
    leads: Sequence[ScoredLead], rules_by_version: Mapping[int, frozenset[str]]
) -> list[RuleLift]:
    seen: dict[int, set[str]] = defaultdict(set)
    for lead in leads:
        seen[lead.ruleset_version] |= lead.matched
    universe = {v: rules_by_version.get(v, frozenset(rules)) for v, rules in seen.items()}
    rules = sorted(set().union(*universe.values())) if universe else []
    lifts = []
    for rule in rules:
        eligible = [lead for lead in leads if rule in universe[lead.ruleset_version]]
        hits = [lead for lead in eligible if rule in lead.matched]
        misses = [lead for lead in eligible if rule not in lead.matched]
        _, mc, _ = hit = _converted(hits)
        _, uc, _ = miss = _converted(misses)
        matched, unmatched = rate(mc, hit[0]), rate(uc, miss[0])
        lift = difference = None
        if matched.rate is not None and unmatched.rate is not None:
            difference = matched.rate - unmatched.rate
            lift = matched.rate / unmatched.rate if unmatched.rate > 0 else None
        lifts.append(
            RuleLift(
                rule=rule,
                matched=matched,
                unmatched=unmatched,
                lift=lift,
                difference=difference,
                revenue_per_lead_matched=revenue(hits, len(hits)),
                revenue_per_lead_unmatched=revenue(misses, len(misses)),
            )
        )
    return lifts


def _funnel(leads: Sequence[ScoredLead]) -> list[FunnelRow]:
    rows = []
    for version in sorted({lead.ruleset_version for lead in leads}):
        of = [lead for lead in leads if lead.ruleset_version == version]
        qualified = [lead for lead in of if lead.stage in QUALIFIED]
        unqualified = [lead for lead in of if lead.stage not in QUALIFIED]
        _, converted, won = _converted(of)
        rows.append(
            FunnelRow(
                ruleset_version=version,
                leads=len(of),
                qualified=len(qualified),
                sql=sum(lead.stage == "sql" for lead in of),
                converted=converted,
                won=won,
                won_of_qualified=rate(sum(lead.outcome == "won" for lead in qualified), len(qualified)),
                won_of_unqualified=rate(sum(lead.outcome == "won" for lead in unqualified), len(unqualified)),
                revenue=revenue(of),
            )
        )
    return rows


def _rejection(leads: Sequence[ScoredLead]) -> list[RejectionRow]:
    rows = []
    for label, stages in (("mql", {"mql"}), ("sql", {"sql"}), ("qualified", QUALIFIED)):
        of = [lead for lead in leads if lead.stage in stages]
        judged = [lead for lead in of if lead.outcome is not None]
        rejected = rate(sum(lead.outcome == "disqualified_by_sales" for lead in judged), len(judged))
        rows.append(
            RejectionRow(
                stage=label,
                leads=len(of),
                with_outcome=len(judged),
                rejected=rejected,
                accuracy=None if rejected.rate is None else 1 - rejected.rate,
            )
        )
    return rows
