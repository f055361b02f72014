"""The replay report as text for a terminal: what ``leadroute rules replay`` prints."""

from __future__ import annotations

from leadroute.replay._report import STAGES, ReplayReport, RulesetInfo, ScoreStats, Transition

__all__ = ["format_report"]


def _ruleset(label: str, info: RulesetInfo) -> str:
    return f"  {label:<10} version {info.version} (sha256 {info.sha256[:12]}) from {info.source}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}".rstrip("0").rstrip(".")


def _transitions(title: str, rows: list[Transition]) -> list[str]:
    if not rows:
        return [f"{title}: none"]
    width = max(len(f"{t.from_} -> {t.to}") for t in rows)
    return [f"{title}:"] + [f"  {f'{t.from_} -> {t.to}':<{width}}  {t.count:>8,}" for t in rows]


def _matrix(report: ReplayReport) -> list[str]:
    width = max(len(s) for s in STAGES) + 2
    head = "  " + "before \\ after".ljust(width + 2) + "".join(s.rjust(width) for s in STAGES)
    rows = [
        "  "
        + before.ljust(width + 2)
        + "".join(f"{report.stage_matrix[before][after]:>{width},}" for after in STAGES)
        for before in STAGES
    ]
    return ["Stage transitions (rows: before, columns: after):", head, *rows]


def _scores(before: ScoreStats, after: ScoreStats) -> list[str]:
    lines = ["Scores:", f"  {'':<14}{'before':>10}{'after':>10}"]
    lines.append(f"  {'count':<14}{before.count:>10,}{after.count:>10,}")
    for name in ("mean", "p50", "p90", "min", "max"):
        lines.append(f"  {name:<14}{_num(getattr(before, name)):>10}{_num(getattr(after, name)):>10}")
    if before.histogram:
        lines.append("  histogram:")
        for b, a in zip(before.histogram, after.histogram, strict=True):
            lines.append(f"  {f'[{b.low:g}, {b.high:g})':<14}{b.count:>10,}{a.count:>10,}")
    return lines


def format_report(report: ReplayReport) -> str:
    """A readable summary: identities, the transition matrix, routing and score changes, examples."""
    share = f" ({report.changed / report.leads:.1%})" if report.leads else ""
    lines = [
        f"Replayed {report.leads:,} leads ({report.skipped:,} skipped), evaluated as of "
        f"{report.as_of.isoformat()}"
        + (f", created since {report.since.isoformat()}" if report.since else ""),
        _ruleset("baseline", report.baseline),
        _ruleset("candidate", report.candidate),
        f"  changed    {report.changed:,} leads{share}; score changed for {report.score_changed:,}",
        *(
            [
                f"  note       {report.baseline_drift:,} leads' stored stage differs from the baseline's"
                " re-evaluation (decided by another version, or engagement decayed since)"
            ]
            if report.baseline_drift
            else []
        ),
        *(f"  warning    {w.message}" for w in report.warnings),
        "",
        *_matrix(report),
        "",
        *_transitions("Pool changes", report.pool_changes),
        *(
            []  # without account-owner rules the target chain is the pool: say it once
            if report.target_changes == report.pool_changes
            else _transitions("Routing target changes", report.target_changes)
        ),
        "",
        *_scores(report.scores_before, report.scores_after),
    ]
    if report.rules:
        width = max(len(r) for r in report.rules)
        lines += ["", "Scoring rules matching a different number of leads:"]
        lines += [f"  {r:<{width}}  {c.before:>8,} -> {c.after:,}" for r, c in report.rules.items()]
    if report.rule_errors:
        width = max(len(r) for r in report.rule_errors)
        lines += ["", "Rules that raised (counted as not matched), leads before -> after:"]
        lines += [f"  {r:<{width}}  {c.before:>8,} -> {c.after:,}" for r, c in report.rule_errors.items()]
    if report.examples:
        lines += ["", "Examples (lead ids):"]
        lines += [f"  {kind}: {', '.join(ids)}" for kind, ids in report.examples.items()]
    if report.largest_score_changes:
        lines += ["", "Largest score changes:"]
        lines += [f"  {c.lead_id}  {c.before:g} -> {c.after:g}" for c in report.largest_score_changes]
    return "\n".join(lines)
