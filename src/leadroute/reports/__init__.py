"""Reports on the lead log: calibration (do scores predict outcomes?) and the distribution and SLA
dashboard (who got what, how fast, what is stuck), as data, text tables and SVG charts.

The package keeps the computation pure and the SQL at its edge:

- :mod:`._outcome`, :mod:`._stats`: what a lead's outcomes add up to; Wilson intervals, percentiles;
- :mod:`._calibration`, :mod:`._dashboard`: the reports from plain rows (no I/O);
- :mod:`._source`: the only reader of PostgreSQL (queries in ``store/sql/reports.sql``);
- :mod:`._svg`, :mod:`._charts`: charts as SVG text; :mod:`._text`, :mod:`._html`: tables, a page;
- :mod:`._query`: the options of the console's pages and the JSON API, checked;
- :mod:`._cli`: ``leadroute report calibration`` and ``leadroute report distribution``.

What each figure means and how it is computed: ``docs/reports.md``.
"""

from leadroute.reports._calibration import (
    DEFAULT_BANDS,
    BandRow,
    Basis,
    CalibrationReport,
    FunnelRow,
    RejectionRow,
    RuleLift,
    ScoredLead,
    StageRow,
    calibrate,
    parse_bands,
)
from leadroute.reports._charts import calibration_charts, dashboard_charts
from leadroute.reports._cli import WindowError, parse_time, resolve_window
from leadroute.reports._dashboard import (
    Arrival,
    Breach,
    DashboardReport,
    DeliveryFailures,
    Durations,
    HourRow,
    Pick,
    PoolInfo,
    QueueDepth,
    ShareRow,
    dashboard,
    expected_shares,
)
from leadroute.reports._html import html_page
from leadroute.reports._outcome import CONVERTED, lead_outcome
from leadroute.reports._query import InvalidReportQuery, ReportQuery, report_query
from leadroute.reports._source import read_calibration, read_dashboard
from leadroute.reports._stats import Z95, Rate, percentile, rate
from leadroute.reports._svg import Bar, Series, bar_chart, grouped_bar_chart, line_chart
from leadroute.reports._text import format_calibration, format_dashboard

__all__ = [
    "CONVERTED",
    "DEFAULT_BANDS",
    "Z95",
    "Arrival",
    "BandRow",
    "Bar",
    "Basis",
    "Breach",
    "CalibrationReport",
    "DashboardReport",
    "DeliveryFailures",
    "Durations",
    "FunnelRow",
    "HourRow",
    "InvalidReportQuery",
    "Pick",
    "PoolInfo",
    "QueueDepth",
    "Rate",
    "RejectionRow",
    "ReportQuery",
    "RuleLift",
    "ScoredLead",
    "Series",
    "ShareRow",
    "StageRow",
    "WindowError",
    "bar_chart",
    "calibrate",
    "calibration_charts",
    "dashboard",
    "dashboard_charts",
    "expected_shares",
    "format_calibration",
    "format_dashboard",
    "grouped_bar_chart",
    "html_page",
    "lead_outcome",
    "line_chart",
    "parse_bands",
    "parse_time",
    "percentile",
    "rate",
    "read_calibration",
    "read_dashboard",
    "report_query",
    "resolve_window",
]
