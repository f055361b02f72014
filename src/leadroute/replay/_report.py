"""What a rule change would change: pure accumulation over (before, after) evaluations.

Replay evaluates every stored lead twice, under the baseline (active) ruleset and under the
candidate, and feeds each pair to :class:`ReplayAccumulator`. Only small summaries are kept per
lead (its scores, and its id while an example slot is free), so memory grows with the number of
leads by two floats each, never with their content. ``report()`` then builds the
:class:`ReplayReport`: a stage transition matrix, routing changes (pool, and the whole target
chain), score distributions before and after, per-rule match counts, and example lead ids for
each kind of change. Lead ids are the only thing that identifies a lead in the report (no PII).
"""

from __future__ import annotations

import heapq
import math
import typing
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Literal

import msgspec

from leadroute.models import Stage
from leadroute.scoring import Evaluation, destination

__all__ = [
    "STAGES",
    "Bucket",
    "Outcome",
    "ReplayAccumulator",
    "ReplayReport",
    "ReplayWarning",
    "RuleCount",
    "RulesetInfo",
    "ScoreChange",
    "ScoreStats",
    "Transition",
    "outcome_of",
    "report_dict",
    "report_json",
    "score_stats",
]

STAGES: tuple[Stage, ...] = typing.get_args(Stage)
"""Stages in rank order, lowest first: the rows and columns of the transition matrix."""

BUCKET_WIDTH = 10.0
"""Score histogram buckets are this wide, aligned on multiples of it."""

SCORE_TOLERANCE = 1e-9
"""Score differences this small are float noise (points summed in another order), not changes."""

STAT_DIGITS = 6
"""Mean and percentiles are rounded to this many decimals (``71.8``, not ``71.80000000000001``)."""


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """The parts of one evaluation that replay compares."""

    stage: Stage
    score: float
    pool: str
    """The pool the first matching pool rule names, or ``queue:<fallback>`` when none matched."""
    targets: str
    """Every target routing would try, in order (``account_owner > enterprise-na``)."""
    matched: tuple[str, ...]
    """Ids of the scoring rules that matched."""
    errors: tuple[str, ...] = ()
    """Ids of rules that raised (counted as not matched)."""


def outcome_of(evaluation: Evaluation) -> Outcome:
    """Reduce an evaluation to what replay compares."""
    pool = destination(evaluation)
    chain = [t.pool if t.kind == "pool" and t.pool is not None else t.kind for t in evaluation.targets]
    if evaluation.pool is None:
        chain.append(pool)
    errors = [e.rule for e in evaluation.rule_errors]
    errors += [t.rule for t in evaluation.routes_tried if t.error is not None]
    return Outcome(
        stage=evaluation.stage,
        score=evaluation.score,
        pool=pool,
        targets=" > ".join(chain),
        matched=tuple(hit.rule for hit in evaluation.hits),
        errors=tuple(errors),
    )


class RulesetInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Which ruleset one side of the replay is, and where it came from."""

    version: int
    sha256: str
    source: str
    """``active``, ``stored version N``, or the file or upload it was read from."""


class Bucket(msgspec.Struct, frozen=True):
    """Scores in ``[low, high)``."""

    low: float
    high: float
    count: int


class ScoreStats(msgspec.Struct, frozen=True, kw_only=True):
    """A score distribution; every statistic is None when there are no scores."""

    count: int
    mean: float | None
    min: float | None
    max: float | None
    p50: float | None
    p90: float | None
    histogram: list[Bucket]


class Transition(msgspec.Struct, frozen=True):
    """``count`` leads would move from ``from_`` to ``to``."""

    from_: str = msgspec.field(name="from")
    to: str
    count: int


class ScoreChange(msgspec.Struct, frozen=True):
    """One lead's score before and after."""

    lead_id: str
    before: float
    after: float


class RuleCount(msgspec.Struct, frozen=True):
    """How many leads a scoring rule matches under each ruleset."""

    before: int
    after: int


class ReplayWarning(msgspec.Struct, frozen=True, kw_only=True):
    """Something about the candidate the report's numbers do not show; the replay still ran."""

    kind: Literal["unknown_pool"]
    pool: str
    """The pool the candidate's routing names that the database does not hold."""
    rules: list[str]
    """Ids of the candidate's routing rules that send leads to it."""
    message: str


class ReplayReport(msgspec.Struct, frozen=True, kw_only=True):
    """What the candidate ruleset would change on the replayed leads (JSON for scripts)."""

    baseline: RulesetInfo
    candidate: RulesetInfo
    warnings: list[ReplayWarning] = msgspec.field(default_factory=list)
    """Pools the candidate routes to that do not exist (uploading or activating it would fail)."""
    as_of: datetime
    """The "now" both rulesets were evaluated at (activity decay is measured to it)."""
    since: datetime | None
    limit: int | None
    leads: int
    """Leads evaluated under both rulesets."""
    skipped: int
    """Stored leads that could not be evaluated (their stored form no longer reads)."""
    changed: int
    """Leads whose stage, pool, targets or score would change."""
    stage_matrix: dict[str, dict[str, int]]
    """``stage_matrix[before][after]``: how many leads go from one stage to another (all stages)."""
    stage_changes: list[Transition]
    pool_changes: list[Transition]
    target_changes: list[Transition]
    scores_before: ScoreStats
    scores_after: ScoreStats
    score_changed: int
    baseline_drift: int
    """Leads whose stored stage differs from the baseline's re-evaluation: they were decided by
    another ruleset version, or their engagement has decayed since. Not caused by the candidate."""
    rules: dict[str, RuleCount]
    """Scoring rules whose match count differs between the rulesets (rules in only one count 0)."""
    rule_errors: dict[str, RuleCount]
    """Rules that raised on some lead under either ruleset, with how many leads."""
    examples: dict[str, list[str]]
    """Up to N lead ids per kind of change: ``stage lead -> mql``, ``pool inbound -> emea``, ..."""
    largest_score_changes: list[ScoreChange]


class ReplayAccumulator:
    """Collects (before, after) outcomes lead by lead; :meth:`report` summarizes them."""

    def __init__(self, *, examples: int = 5) -> None:
        self.examples_per_kind = max(examples, 0)
        self.leads = 0
        self.skipped = 0
        self.changed = 0
        self.score_changed = 0
        self.drift = 0
        self.before_scores = array("d")
        self.after_scores = array("d")
        self.stages: Counter[tuple[str, str]] = Counter()
        self.pools: Counter[tuple[str, str]] = Counter()
        self.targets: Counter[tuple[str, str]] = Counter()
        self.hits_before: Counter[str] = Counter()
        self.hits_after: Counter[str] = Counter()
        self.errors_before: Counter[str] = Counter()
        self.errors_after: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = {}
        self._largest: list[tuple[float, int, ScoreChange]] = []  # min-heap on |delta|

    def add(self, lead_id: str, before: Outcome, after: Outcome, *, stored_stage: str | None = None) -> None:
        """Count one lead evaluated under both rulesets.

        ``stored_stage`` is the stage the lead has in the database; when it differs from the
        baseline's re-evaluation the lead is counted in ``baseline_drift`` (see the report).
        """
        self.leads += 1
        if stored_stage is not None and stored_stage != before.stage:
            self.drift += 1
        self.before_scores.append(before.score)
        self.after_scores.append(after.score)
        self.stages[before.stage, after.stage] += 1
        self.hits_before.update(set(before.matched))  # activity rules can hit once per activity
        self.hits_after.update(set(after.matched))
        self.errors_before.update(set(before.errors))
        self.errors_after.update(set(after.errors))
        changed = False
        if before.stage != after.stage:
            self._example(f"stage {before.stage} -> {after.stage}", lead_id)
            changed = True
        if before.pool != after.pool:
            self.pools[before.pool, after.pool] += 1
            self._example(f"pool {before.pool} -> {after.pool}", lead_id)
            changed = True
        if before.targets != after.targets:
            self.targets[before.targets, after.targets] += 1
            self._example(f"targets {before.targets} -> {after.targets}", lead_id)
            changed = True
        delta = after.score - before.score
        if abs(delta) > SCORE_TOLERANCE:
            self.score_changed += 1
            self._example("score up" if delta > 0 else "score down", lead_id)
            self._track_largest(ScoreChange(lead_id, before.score, after.score), abs(delta))
            changed = True
        self.changed += changed

    def skip(self) -> None:
        """Count a stored lead that could not be evaluated."""
        self.skipped += 1

    def _example(self, kind: str, lead_id: str) -> None:
        if self.examples_per_kind == 0:
            return
        ids = self.examples.setdefault(kind, [])
        if len(ids) < self.examples_per_kind:
            ids.append(lead_id)

    def _track_largest(self, change: ScoreChange, size: float) -> None:
        if self.examples_per_kind == 0:
            return
        entry = (size, -self.leads, change)  # ties: the earlier lead stays
        if len(self._largest) < self.examples_per_kind:
            heapq.heappush(self._largest, entry)
        elif entry[:2] > self._largest[0][:2]:
            heapq.heapreplace(self._largest, entry)

    def report(
        self,
        *,
        baseline: RulesetInfo,
        candidate: RulesetInfo,
        as_of: datetime,
        since: datetime | None = None,
        limit: int | None = None,
        warnings: Sequence[ReplayWarning] = (),
    ) -> ReplayReport:
        """The summary of everything added so far."""
        low, high = _bounds(self.before_scores, self.after_scores)
        rule_ids = sorted(set(self.hits_before) | set(self.hits_after))
        error_ids = sorted(set(self.errors_before) | set(self.errors_after))
        largest = sorted(self._largest, key=lambda e: (-e[0], -e[1]))
        return ReplayReport(
            baseline=baseline,
            candidate=candidate,
            warnings=list(warnings),
            as_of=as_of,
            since=since,
            limit=limit,
            leads=self.leads,
            skipped=self.skipped,
            changed=self.changed,
            stage_matrix={a: {b: self.stages[a, b] for b in STAGES} for a in STAGES},
            stage_changes=_transitions((k, n) for k, n in self.stages.items() if k[0] != k[1]),
            pool_changes=_transitions(self.pools.items()),
            target_changes=_transitions(self.targets.items()),
            scores_before=score_stats(self.before_scores, low=low, high=high),
            scores_after=score_stats(self.after_scores, low=low, high=high),
            score_changed=self.score_changed,
            baseline_drift=self.drift,
            rules={
                r: RuleCount(self.hits_before[r], self.hits_after[r])
                for r in rule_ids
                if self.hits_before[r] != self.hits_after[r]
            },
            rule_errors={e: RuleCount(self.errors_before[e], self.errors_after[e]) for e in error_ids},
            examples=dict(sorted(self.examples.items())),
            largest_score_changes=[e[2] for e in largest],
        )


def _transitions(counts: Iterable[tuple[tuple[str, str], int]]) -> list[Transition]:
    """Most frequent first, then by name, so reports are stable."""
    ordered = sorted(counts, key=lambda item: (-item[1], item[0]))
    return [Transition(a, b, n) for (a, b), n in ordered]


def _bounds(*series: Sequence[float]) -> tuple[float, float]:
    """Histogram edges shared by every series: multiples of the bucket width around all values."""
    values = [v for s in series for v in (min(s, default=None), max(s, default=None)) if v is not None]
    if not values:
        return 0.0, 0.0
    low = math.floor(min(values) / BUCKET_WIDTH) * BUCKET_WIDTH
    high = (math.floor(max(values) / BUCKET_WIDTH) + 1) * BUCKET_WIDTH
    return low, high


def _quantile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default method)."""
    pos = (len(ordered) - 1) * q
    lower = math.floor(pos)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (pos - lower)


def score_stats(
    values: Sequence[float], *, low: float | None = None, high: float | None = None
) -> ScoreStats:
    """Count, mean, min, max, p50, p90 and a histogram with buckets of :data:`BUCKET_WIDTH`.

    ``low``/``high`` fix the histogram's range (so two distributions share buckets); by default
    it covers the values. Every bucket in the range is listed, empty ones too.
    """
    if not values:
        return ScoreStats(count=0, mean=None, min=None, max=None, p50=None, p90=None, histogram=[])
    ordered = sorted(values)
    if low is None or high is None:
        low, high = _bounds(ordered)
    counts: Counter[int] = Counter(math.floor((v - low) / BUCKET_WIDTH) for v in ordered)
    n_buckets = round((high - low) / BUCKET_WIDTH)
    histogram = [
        Bucket(low + i * BUCKET_WIDTH, low + (i + 1) * BUCKET_WIDTH, counts[i]) for i in range(n_buckets)
    ]
    return ScoreStats(
        count=len(ordered),
        mean=round(math.fsum(ordered) / len(ordered), STAT_DIGITS),
        min=ordered[0],
        max=ordered[-1],
        p50=round(_quantile(ordered, 0.5), STAT_DIGITS),
        p90=round(_quantile(ordered, 0.9), STAT_DIGITS),
        histogram=histogram,
    )


def report_json(report: ReplayReport) -> bytes:
    """The report as indented JSON (what ``--output`` writes and the endpoint returns)."""
    return msgspec.json.format(msgspec.json.encode(report), indent=2) + b"\n"


def report_dict(report: ReplayReport) -> dict[str, Any]:
    """The report as plain JSON-ready values."""
    result: dict[str, Any] = msgspec.to_builtins(report)
    return result
