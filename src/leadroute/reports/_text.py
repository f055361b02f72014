"""The reports as text tables for a terminal: what ``leadroute report`` prints."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from leadroute.reports._calibration import CalibrationReport
from leadroute.reports._dashboard import DashboardReport, Durations
from leadroute.reports._stats import Rate

__all__ = ["format_calibration", "format_dashboard", "money", "table"]


def table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns aligned (the first to the left, the others to the right), a rule under the head."""
    widths = [max(len(str(c)) for c in col) for col in zip(head, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        first, *rest = cells
        return "  " + "  ".join(
            [first.ljust(widths[0]), *(c.rjust(w) for c, w in zip(rest, widths[1:], strict=True))]
        )

    return [line(head), "  " + "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def interval(r: Rate) -> str:
    return "-" if r.low is None or r.high is None else f"{r.low * 100:.1f}-{r.high * 100:.1f}%"


def money(revenue: Mapping[str, float]) -> str:
    """``12,000 USD; 300 EUR``, or ``-`` for none."""
    return "; ".join(f"{v:,.0f} {c}" for c, v in revenue.items()) or "-"


def _rate_cells(r: Rate) -> list[str]:
    return [str(r.successes), pct(r.rate), interval(r)]


def format_calibration(report: CalibrationReport) -> str:
    """Every table of the calibration report, with the window and its totals first."""
    lines = [
        f"Calibration of {report.leads:,} leads that arrived {report.start:%Y-%m-%d %H:%M} to "
        f"{report.end:%Y-%m-%d %H:%M} UTC ({report.basis} decision; {report.with_outcome:,} with an outcome)",
        f"  converted {report.converted.successes:,} ({pct(report.converted.rate)}, "
        f"95% {interval(report.converted)}), won {report.won.successes:,} ({pct(report.won.rate)}), "
        f"won revenue {money(report.revenue)}",
        "",
        "Conversion by score band:",
        *table(
            ["band", "leads", "converted", "rate", "95% CI", "won", "win rate", "won revenue"],
            [
                [
                    b.label,
                    str(b.converted.n),
                    *_rate_cells(b.converted),
                    str(b.won.successes),
                    pct(b.won.rate),
                    money(b.revenue),
                ]
                for b in report.by_band
            ],
        ),
        "",
        "Conversion by stage:",
        *table(
            ["stage", "leads", "converted", "rate", "95% CI", "won", "rejected by sales", "won revenue"],
            [
                [
                    s.stage,
                    str(s.converted.n),
                    *_rate_cells(s.converted),
                    str(s.won.successes),
                    f"{s.rejected.successes} of {s.rejected.n}",
                    money(s.revenue),
                ]
                for s in report.by_stage
            ],
        ),
        "",
    ]
    if report.rules:
        lines += [
            "Scoring rule lift (conversion when the rule matched vs not):",
            *table(
                [
                    "rule",
                    "matched",
                    "rate",
                    "95% CI",
                    "not matched",
                    "rate",
                    "95% CI",
                    "lift",
                    "revenue/lead",
                    "vs",
                ],
                [
                    [
                        r.rule,
                        str(r.matched.n),
                        pct(r.matched.rate),
                        interval(r.matched),
                        str(r.unmatched.n),
                        pct(r.unmatched.rate),
                        interval(r.unmatched),
                        "-" if r.lift is None else f"{r.lift:.2f}x",
                        money(r.revenue_per_lead_matched),
                        money(r.revenue_per_lead_unmatched),
                    ]
                    for r in report.rules
                ],
            ),
            "",
        ]
    if report.funnel:
        lines += [
            "Funnel per ruleset version:",
            *table(
                [
                    "version",
                    "leads",
                    "MQL or SQL",
                    "SQL",
                    "converted",
                    "won",
                    "won of qualified",
                    "won of others",
                    "won revenue",
                ],
                [
                    [
                        str(f.ruleset_version),
                        str(f.leads),
                        str(f.qualified),
                        str(f.sql),
                        str(f.converted),
                        str(f.won),
                        pct(f.won_of_qualified.rate),
                        pct(f.won_of_unqualified.rate),
                        money(f.revenue),
                    ]
                    for f in report.funnel
                ],
            ),
            "",
        ]
    lines += [
        "Qualified leads rejected by sales (the accuracy of qualification):",
        *table(
            ["stage", "leads", "with outcome", "rejected", "rate", "95% CI", "accuracy"],
            [
                [r.stage, str(r.leads), str(r.with_outcome), *_rate_cells(r.rejected), pct(r.accuracy)]
                for r in report.rejection
            ],
        ),
    ]
    return "\n".join(lines)


def _minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f}"


def _durations(name: str, d: Durations) -> list[str]:
    return [name, str(d.count), _minutes(d.p50), _minutes(d.p90)]


def format_dashboard(report: DashboardReport) -> str:
    """The dashboard's figures as tables (hours without leads are left out)."""
    busy = [row for row in report.per_hour if any(row.counts.values())]
    stages = list(report.per_hour[0].counts) if report.per_hour else []
    lines = [
        f"{report.leads:,} leads arrived {report.start:%Y-%m-%d %H:%M} to {report.end:%Y-%m-%d %H:%M} UTC",
        "",
        "Leads per hour by stage (hours with leads):",
        *table(
            ["hour (UTC)", *stages],
            [[f"{r.hour:%Y-%m-%d %H:00}", *(str(r.counts[s]) for s in stages)] for r in busy],
        ),
        "",
        "Share per rep per pool (actual vs expected from strategy, weights and availability):",
        *table(
            ["pool / owner", "leads", "actual", "95% CI", "expected", "expected leads", "fair"],
            [
                [
                    f"{s.pool} / {s.owner}",
                    str(s.actual.successes),
                    pct(s.actual.rate),
                    interval(s.actual),
                    pct(s.expected_share),
                    f"{s.expected_leads:.1f}",
                    "-" if s.within is None else ("yes" if s.within else "NO"),
                ]
                for s in report.shares
            ],
        ),
        "",
        "Response times (minutes):",
        *table(
            ["", "count", "p50", "p90"],
            [_durations("to assign", report.time_to_assign), _durations("to accept", report.time_to_accept)],
        ),
        f"  {report.not_assigned:,} lead(s) of the window never had an owner",
        "",
        f"SLA breaches: {report.breaches:,}"
        + (
            " (" + ", ".join(f"{o} {n}" for o, n in report.breaches_by_owner.items()) + ")"
            if report.breaches
            else ""
        ),
        "",
        f"Queue depth at {report.now:%Y-%m-%d %H:%M} UTC:",
        *table(
            ["queue", "waiting for pool", "leads", "oldest since"],
            [[q.queue, q.pool or "-", str(q.leads), f"{q.oldest:%Y-%m-%d %H:%M}"] for q in report.queues],
        ),
        "",
        "Outbound deliveries:",
        *table(
            ["endpoint", "kind", "attempts", "failed", "dead", "retrying now"],
            [
                [d.endpoint, d.kind, str(d.attempts), str(d.failed), str(d.dead), str(d.retrying)]
                for d in report.deliveries
            ],
        ),
    ]
    return "\n".join(lines)
