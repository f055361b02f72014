"""The dashboard and the calibration report: the figures of ``leadroute report``, as pages.

Both read through :mod:`leadroute.reports` (the same functions as the CLI) and draw its SVG
charts inline, followed by the tables (each chart's numbers, readable without the picture).
The window is ``days`` back from now, or ``start`` to ``end`` (ISO dates or times, UTC when
they have no zone), from a GET form: a page's address is its report.
"""

from __future__ import annotations

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.response import Template
from markupsafe import Markup

from leadroute.console._pages import page
from leadroute.console._session import Viewer
from leadroute.reports import (
    DEFAULT_BANDS,
    calibration_charts,
    dashboard_charts,
    read_calibration,
    read_dashboard,
    report_query,
)
from leadroute.runtime import Runtime

__all__ = ["ReportPages"]

Rt = NamedDependency[Runtime]
Who = NamedDependency[Viewer]
BANDS = ",".join(f"{edge:g}" for edge in DEFAULT_BANDS)


def _charts(charts: dict[str, str]) -> dict[str, Markup]:
    """The charts as markup: every text in them was escaped when they were drawn."""
    return {name: Markup(svg) for name, svg in charts.items()}  # noqa: S704  (built by reports._svg)


class ReportPages(Controller):
    path = "/"
    include_in_schema = False

    @get("/dashboard")
    async def dashboard(
        self,
        rt: Rt,
        viewer: Who,
        days: FromQuery[str | None] = None,
        start: FromQuery[str | None] = None,
        end: FromQuery[str | None] = None,
    ) -> Template:
        """Leads per hour, each rep's actual and expected share, response times, SLA, queues,
        delivery failures (default: the last 7 days)."""
        now = rt.clock()
        q = report_query(now=now, default_days=7, days=days, start=start, end=end)
        async with rt.db.acquire() as conn:
            report = await read_dashboard(conn, start=q.start, end=q.end, now=now)
        return page(
            "reports/dashboard.html",
            viewer,
            report=report,
            charts=_charts(dashboard_charts(report)),
            query={"days": days or "", "start": start or "", "end": end or ""},
        )

    @get("/calibration")
    async def calibration(
        self,
        *,
        rt: Rt,
        viewer: Who,
        days: FromQuery[str | None] = None,
        start: FromQuery[str | None] = None,
        end: FromQuery[str | None] = None,
        bands: FromQuery[str | None] = None,
        basis: FromQuery[str | None] = None,
    ) -> Template:
        """Conversion by score band and stage, rule lift, the funnel per ruleset version, and the
        qualified leads sales rejected (default: the last 30 days)."""
        q = report_query(
            now=rt.clock(), default_days=30, days=days, start=start, end=end, bands=bands, basis=basis
        )
        async with rt.db.acquire() as conn:
            report = await read_calibration(conn, start=q.start, end=q.end, basis=q.basis, bands=q.bands)
        return page(
            "reports/calibration.html",
            viewer,
            report=report,
            charts=_charts(calibration_charts(report)),
            query={
                "days": days or "",
                "start": start or "",
                "end": end or "",
                "bands": bands or BANDS,
                "basis": q.basis,
            },
        )
