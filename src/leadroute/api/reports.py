"""Reports as JSON: what ``leadroute report`` prints and the console draws, for other tools."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromQuery, QueryParameter

from leadroute.api.problems import problem_responses
from leadroute.reports import (
    CalibrationReport,
    DashboardReport,
    read_calibration,
    read_dashboard,
    report_query,
)
from leadroute.runtime import Runtime

__all__ = ["ReportController"]

Days = Annotated[str | None, QueryParameter(description="the last N days (a whole number)")]
Start = Annotated[str | None, QueryParameter(description="from this ISO date or time (UTC if naive)")]
End = Annotated[str | None, QueryParameter(description="up to this ISO date or time (default: now)")]


class ReportController(Controller):
    path = "/v1/reports"
    tags = ["reports"]  # noqa: RUF012  (Litestar reads it as a class attribute)

    @get(
        "/calibration",
        summary="Conversion by score band and stage, rule lift, funnel",
        responses=problem_responses(400),
    )
    async def calibration(
        self,
        *,
        rt: NamedDependency[Runtime],
        days: FromQuery[Days] = None,
        start: FromQuery[Start] = None,
        end: FromQuery[End] = None,
        bands: FromQuery[
            Annotated[str | None, QueryParameter(description="score band edges: 0,20,40")]
        ] = None,
        basis: FromQuery[
            Annotated[str | None, QueryParameter(description="latest (default) or intake")]
        ] = None,
    ) -> CalibrationReport:
        """The calibration report of the leads that arrived in the window (default: 30 days):
        every proportion with its Wilson 95 % interval (docs/reports.md)."""
        q = report_query(
            now=rt.clock(), default_days=30, days=days, start=start, end=end, bands=bands, basis=basis
        )
        async with rt.db.acquire() as conn:
            return await read_calibration(conn, start=q.start, end=q.end, basis=q.basis, bands=q.bands)

    @get(
        "/distribution",
        summary="Leads per hour, shares per rep, response times, SLA, queues",
        responses=problem_responses(400),
    )
    async def distribution(
        self,
        *,
        rt: NamedDependency[Runtime],
        days: FromQuery[Days] = None,
        start: FromQuery[Start] = None,
        end: FromQuery[End] = None,
    ) -> DashboardReport:
        """The dashboard over the window (default: 7 days); the queue depth is now."""
        now = rt.clock()
        q = report_query(now=now, default_days=7, days=days, start=start, end=end)
        async with rt.db.acquire() as conn:
            return await read_dashboard(conn, start=q.start, end=q.end, now=now)
