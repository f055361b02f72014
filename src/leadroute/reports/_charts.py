"""The reports' figures as SVG charts: :func:`calibration_charts` and :func:`dashboard_charts`.

Each returns ``{name: svg}`` in reading order; the names are file names (``--svg DIR`` writes
``NAME.svg``) and element ids (the HTML page and the console embed several on one page).
"""

from __future__ import annotations

from leadroute.reports._calibration import CalibrationReport
from leadroute.reports._dashboard import DashboardReport
from leadroute.reports._stats import Rate
from leadroute.reports._svg import Bar, Series, bar_chart, grouped_bar_chart, line_chart, percent

__all__ = ["calibration_charts", "dashboard_charts"]


def _rate_bar(label: str, r: Rate) -> Bar:
    return Bar(label=label, value=r.rate, low=r.low, high=r.high, note=f"n={r.n}")


def _window(report: CalibrationReport | DashboardReport) -> str:
    return f"leads that arrived from {report.start:%Y-%m-%d %H:%M} to {report.end:%Y-%m-%d %H:%M} UTC"


def calibration_charts(report: CalibrationReport) -> dict[str, str]:
    """Conversion by score band and by stage (with 95 % intervals), won revenue per lead by band,
    rule lift and each rule's revenue per lead, the funnel per ruleset version, and the share of
    qualified leads sales rejected. Revenue charts show the report's main currency."""
    window = _window(report)
    charts = {
        "conversion-by-band": bar_chart(
            "Conversion by score band",
            f"Share of {window} that converted, per score band, with Wilson 95% intervals; n is the "
            f"number of leads in the band. Overall: {report.converted.successes} of {report.leads}.",
            [_rate_bar(b.label, b.converted) for b in report.by_band],
            fmt=percent,
            top=1.0,
            ident="conversion-by-band",
        ),
        "conversion-by-stage": bar_chart(
            "Conversion by stage",
            f"Share of {window} that converted, per stage, with Wilson 95% intervals.",
            [_rate_bar(s.stage, s.converted) for s in report.by_stage],
            fmt=percent,
            top=1.0,
            ident="conversion-by-stage",
        ),
    }
    if report.currency is not None:
        cur = report.currency
        charts["revenue-by-band"] = bar_chart(
            f"Won revenue per lead by score band ({cur})",
            f"Won deals' amounts in {cur} over the number of {window} in each score band: what a lead "
            "of that band has been worth.",
            [
                Bar(
                    label=b.label,
                    value=b.revenue.get(cur, 0.0) / b.converted.n if b.converted.n else None,
                    note=f"n={b.converted.n}",
                )
                for b in report.by_band
            ],
            ident="revenue-by-band",
        )
    if report.rules:
        charts["rule-lift"] = grouped_bar_chart(
            "Conversion with and without each scoring rule",
            f"For each scoring rule, the conversion of the {window} it matched and of those it did not "
            "match (among leads scored by a ruleset that has the rule).",
            [r.rule for r in report.rules],
            [
                Series(name="matched", values=tuple(r.matched.rate for r in report.rules)),
                Series(name="not matched", values=tuple(r.unmatched.rate for r in report.rules)),
            ],
            fmt=percent,
            ident="rule-lift",
        )
        if report.currency is not None:
            cur = report.currency
            charts["rule-revenue"] = grouped_bar_chart(
                f"Won revenue per lead with and without each scoring rule ({cur})",
                f"For each scoring rule, won revenue in {cur} per lead among the {window} it matched and "
                "among those it did not match.",
                [r.rule for r in report.rules],
                [
                    Series(
                        name="matched",
                        values=tuple(
                            r.revenue_per_lead_matched.get(cur, 0.0) if r.matched.n else None
                            for r in report.rules
                        ),
                    ),
                    Series(
                        name="not matched",
                        values=tuple(
                            r.revenue_per_lead_unmatched.get(cur, 0.0) if r.unmatched.n else None
                            for r in report.rules
                        ),
                    ),
                ],
                ident="rule-revenue",
            )
    if report.funnel:
        charts["funnel"] = grouped_bar_chart(
            "Funnel per ruleset version",
            f"Counts of {window} per ruleset version: all leads, qualified (MQL or SQL), SQL, "
            "converted and won.",
            [f"version {f.ruleset_version}" for f in report.funnel],
            [
                Series(name="leads", values=tuple(float(f.leads) for f in report.funnel)),
                Series(name="MQL or SQL", values=tuple(float(f.qualified) for f in report.funnel)),
                Series(name="SQL", values=tuple(float(f.sql) for f in report.funnel)),
                Series(name="converted", values=tuple(float(f.converted) for f in report.funnel)),
                Series(name="won", values=tuple(float(f.won) for f in report.funnel)),
            ],
            ident="funnel",
        )
    charts["rejected-by-sales"] = bar_chart(
        "Qualified leads rejected by sales",
        f"Of the MQL and SQL {window} that sales gave an outcome, the share it rejected "
        "(disqualified_by_sales), with Wilson 95% intervals; n is the leads with an outcome.",
        [_rate_bar(r.stage, r.rejected) for r in report.rejection],
        fmt=percent,
        top=1.0,
        ident="rejected-by-sales",
    )
    return charts


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else seconds / 60


def dashboard_charts(report: DashboardReport) -> dict[str, str]:
    """Leads per hour by stage, actual against expected share per pool, time to assign and to
    accept, SLA breaches per owner, queue depth now, webhook delivery failures."""
    window = f"from {report.start:%Y-%m-%d %H:%M} to {report.end:%Y-%m-%d %H:%M} UTC"
    stages = list(report.per_hour[0].counts) if report.per_hour else []
    charts = {
        "leads-per-hour": line_chart(
            "Leads per hour by stage",
            f"Leads that arrived each hour {window}, one line per stage given at intake; "
            f"{report.leads} in all.",
            [row.hour for row in report.per_hour],
            [Series(name=s, values=tuple(float(row.counts[s]) for row in report.per_hour)) for s in stages],
            ident="leads-per-hour",
        )
    }
    for pool in sorted({row.pool for row in report.shares}):
        rows = [row for row in report.shares if row.pool == pool]
        charts[f"share-{pool}"] = grouped_bar_chart(
            f"Pool {pool}: actual and expected share",
            f"Share of pool {pool}'s {rows[0].actual.n} placements {window} each rep got, against the "
            "share expected from the pool's strategy, weights and who was available at each placement.",
            [row.owner for row in rows],
            [
                Series(name="actual", values=tuple(row.actual.rate for row in rows)),
                Series(name="expected", values=tuple(row.expected_share for row in rows)),
            ],
            fmt=percent,
            ident=f"share-{pool}",
        )
    charts["response-times"] = grouped_bar_chart(
        "Time to assign and to accept (minutes)",
        f"Median (p50) and 90th percentile (p90) minutes {window}: from arrival to the first owner "
        f"({report.time_to_assign.count} leads) and from assignment to acceptance "
        f"({report.time_to_accept.count} acceptances).",
        ["to assign", "to accept"],
        [
            Series(
                name="p50",
                values=(_minutes(report.time_to_assign.p50), _minutes(report.time_to_accept.p50)),
            ),
            Series(
                name="p90",
                values=(_minutes(report.time_to_assign.p90), _minutes(report.time_to_accept.p90)),
            ),
        ],
        ident="response-times",
    )
    charts["sla-breaches"] = bar_chart(
        "SLA breaches per owner",
        f"{report.breaches} SLA breaches {window}, per owner who did not accept in time.",
        [Bar(label=owner, value=float(n)) for owner, n in report.breaches_by_owner.items()],
        ident="sla-breaches",
    )
    charts["queue-depth"] = bar_chart(
        "Queue depth now",
        f"Leads without an owner at {report.now:%Y-%m-%d %H:%M} UTC, per queue.",
        [
            Bar(label=q.queue + (f" ({q.pool})" if q.pool else ""), value=float(q.leads))
            for q in report.queues
        ],
        ident="queue-depth",
    )
    charts["delivery-failures"] = grouped_bar_chart(
        "Webhook and CRM delivery failures",
        f"Per outbound endpoint {window}: failed attempts, deliveries given up (dead), and deliveries "
        "being retried now.",
        [d.endpoint for d in report.deliveries],
        [
            Series(name="failed attempts", values=tuple(float(d.failed) for d in report.deliveries)),
            Series(name="dead", values=tuple(float(d.dead) for d in report.deliveries)),
            Series(name="retrying now", values=tuple(float(d.retrying) for d in report.deliveries)),
        ],
        ident="delivery-failures",
    )
    return charts
