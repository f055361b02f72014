"""The dashboard and the calibration report: the figures of ``leadroute report``, as pages.

Both read through :mod:`leadroute.reports` (the same functions as the CLI) and draw its SVG
charts inline, followed by the tables (each chart's numbers, readable without the picture).
The window is ``days`` back from now, or ``start`` to ``end`` (ISO dates or times, UTC when
they have no zone), from a GET form: a page's address is its report.
"""

from __future__ import annotations

from datetime import datetime

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.response import Template
from markupsafe import Markup

from leadroute.console._pages import page
from leadroute.console._session import Viewer
from leadroute.errors import ClientError
from leadroute.reports import (
    DEFAULT_BANDS,
    Basis,
    WindowError,
    calibration_charts,
    dashboard_charts,
    parse_bands,
    read_calibration,
    read_dashboard,
    resolve_window,
)
from leadroute.runtime import Runtime

__all__ = ["ReportPages"]

Rt = NamedDependency[Runtime]
Who = NamedDependency[Viewer]
BANDS = ",".join(f"{edge:g}" for edge in DEFAULT_BANDS)


class BadReportField(ClientError):
    status = 400
    kind = "bad-request"
    title = "A report field is not valid"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", errors=[{"field": field, "message": message}])


def _window(
    now: datetime, days: str | None, start: str | None, end: str | None, default: int
) -> tuple[datetime, datetime]:
    """The form's window (an empty field is no value: the form sends every field)."""
    try:
        count = int(days) if days else None
    except ValueError:
        raise BadReportField("days", "a whole number of days") from None
    try:
        return resolve_window(now=now, days=count, start=start or None, end=end or None, default_days=default)
    except WindowError as exc:
        raise BadReportField({"from": "start", "to": "end"}.get(exc.field, exc.field), exc.message) from None


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
        since, until = _window(now, days, start, end, 7)
        async with rt.db.acquire() as conn:
            report = await read_dashboard(conn, start=since, end=until, now=now)
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
        since, until = _window(rt.clock(), days, start, end, 30)
        try:
            edges = parse_bands(bands) if bands else DEFAULT_BANDS
        except ValueError as exc:
            raise BadReportField("bands", str(exc).removeprefix("bands: ")) from None
        if basis not in (None, "", "latest", "intake"):
            raise BadReportField("basis", "latest or intake")
        chosen: Basis = "intake" if basis == "intake" else "latest"
        async with rt.db.acquire() as conn:
            report = await read_calibration(conn, start=since, end=until, basis=chosen, bands=edges)
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
                "basis": chosen,
            },
        )
