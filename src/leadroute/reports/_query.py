"""A report's options as the console and the JSON API take them (query strings), checked once.

``days`` (a whole number), or ``start`` and ``end`` (ISO dates or times, UTC when they have no
zone); for calibration also ``bands`` (increasing edges, comma-separated) and ``basis``
(``latest`` or ``intake``). An empty value is no value (an HTML form sends every field). A value
that cannot be used is an :class:`InvalidReportQuery` naming the field (a 400).
"""

from __future__ import annotations

from datetime import datetime

from leadroute.errors import ClientError
from leadroute.reports._calibration import DEFAULT_BANDS, Basis, parse_bands
from leadroute.reports._cli import WindowError, resolve_window
from leadroute.structs import FrozenStruct

__all__ = ["InvalidReportQuery", "ReportQuery", "report_query"]


class InvalidReportQuery(ClientError):
    status = 400
    kind = "invalid-report-query"
    title = "A report option is not valid"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", errors=[{"field": field, "message": message}])


class ReportQuery(FrozenStruct, frozen=True, kw_only=True):
    start: datetime
    end: datetime
    bands: tuple[float, ...] = DEFAULT_BANDS
    basis: Basis = "latest"


def report_query(
    *,
    now: datetime,
    default_days: int,
    days: str | None = None,
    start: str | None = None,
    end: str | None = None,
    bands: str | None = None,
    basis: str | None = None,
) -> ReportQuery:
    """The checked options (see the module docstring)."""
    try:
        count = int(days) if days else None
    except ValueError:
        raise InvalidReportQuery("days", "a whole number of days") from None
    try:
        since, until = resolve_window(
            now=now, days=count, start=start or None, end=end or None, default_days=default_days
        )
    except WindowError as exc:
        raise InvalidReportQuery(
            {"from": "start", "to": "end"}.get(exc.field, exc.field), exc.message
        ) from None
    try:
        edges = parse_bands(bands) if bands else DEFAULT_BANDS
    except ValueError as exc:
        raise InvalidReportQuery("bands", str(exc).removeprefix("bands: ")) from None
    if basis not in (None, "", "latest", "intake"):
        raise InvalidReportQuery("basis", "latest or intake")
    return ReportQuery(start=since, end=until, bands=edges, basis="intake" if basis == "intake" else "latest")
