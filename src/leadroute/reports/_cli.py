"""``leadroute report calibration`` and ``leadroute report distribution``: print the tables, and
with ``--svg DIR`` / ``--html FILE`` write the charts.

``cli.py`` declares the arguments (so ``--help`` stays fast) and calls :func:`report_command`;
the window is ``--days N`` back from ``--to`` (default now), or ``--from``/``--to``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta

from leadroute.config import Settings
from leadroute.reports._calibration import DEFAULT_BANDS, parse_bands
from leadroute.reports._charts import calibration_charts, dashboard_charts
from leadroute.reports._html import html_page
from leadroute.reports._source import read_calibration, read_dashboard
from leadroute.reports._text import format_calibration, format_dashboard

__all__ = ["WindowError", "parse_time", "report_command", "resolve_window"]


class WindowError(ValueError):
    """A report window that cannot be used; ``field`` is ``days``, ``from`` or ``to``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def parse_time(text: str, field: str = "from") -> datetime:
    """An ISO date or datetime; UTC when it has no offset. :class:`WindowError` otherwise."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise WindowError(field, "not an ISO date or time (2026-11-01 or 2026-11-01T09:00Z)") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def resolve_window(
    *, now: datetime, days: int | None, start: str | None, end: str | None, default_days: int
) -> tuple[datetime, datetime]:
    """``[start, end)``: ``days`` back from ``end`` (default ``now``), or ``start`` to ``end``.

    Raises :class:`WindowError` naming the option at fault.
    """
    if days is not None and start:
        raise WindowError("days", "give a number of days or a start (from), not both")
    until = parse_time(end, "to") if end else now
    if start:
        since = parse_time(start, "from")
    else:
        days = default_days if days is None else days
        if days < 1:
            raise WindowError("days", "must be at least 1")
        since = until - timedelta(days=days)
    if since >= until:
        raise WindowError("from", "the window is empty: from must be before to")
    return since, until


def report_command(
    settings: Settings,
    args: argparse.Namespace,
    *,
    servers: Callable[[Settings], AbstractContextManager[Settings]],
) -> int:
    """Read the report, print its tables, write the charts asked for; 2 for a bad option."""
    now = datetime.now(UTC)
    try:
        start, end = resolve_window(
            now=now, days=args.days, start=args.start, end=args.end, default_days=args.default_days
        )
        bands = parse_bands(args.bands) if args.report == "calibration" else DEFAULT_BANDS
        if args.svg is not None and args.svg.exists() and not args.svg.is_dir():
            raise ValueError(f"--svg {args.svg}: not a directory")
        if args.html is not None and not args.html.parent.is_dir():
            raise ValueError(f"--html {args.html}: no such directory {args.html.parent}")
    except WindowError as exc:
        print(f"leadroute: --{exc.field}: {exc.message}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"leadroute: {exc}", file=sys.stderr)
        return 2
    with servers(settings) as live:
        text, charts, title = asyncio.run(_read(live, args, start=start, end=end, now=now, bands=bands))
    print(text)
    if args.svg is not None:
        args.svg.mkdir(parents=True, exist_ok=True)
        for name, svg in charts.items():
            (args.svg / f"{name}.svg").write_text(svg + "\n", encoding="utf-8")
        print(f"\nwrote {len(charts)} chart(s) to {args.svg}")
    if args.html is not None:
        args.html.write_text(html_page(title, charts, text), encoding="utf-8")
        print(f"\nwrote {args.html}")
    return 0


async def _read(
    settings: Settings,
    args: argparse.Namespace,
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    bands: tuple[float, ...],
) -> tuple[str, dict[str, str], str]:
    from leadroute.store.db import connect
    from leadroute.store.migrate import migrate

    assert settings.database_url is not None  # servers() set it
    conn = await connect(settings.database_url)
    try:
        await migrate(conn)
        if args.report == "calibration":
            report = await read_calibration(conn, start=start, end=end, basis=args.basis, bands=bands)
            return format_calibration(report), calibration_charts(report), "leadroute: calibration"
        dash = await read_dashboard(conn, start=start, end=end, now=now)
        return format_dashboard(dash), dashboard_charts(dash), "leadroute: distribution and SLA"
    finally:
        await conn.close()
