"""Charts as SVG text (pure functions, no JavaScript, no library): bars with interval whiskers,
grouped bars, lines over time.

Each chart is a self-contained ``<svg>`` that reads without colour or a mouse: ``role="img"``
with a ``<title>`` and a ``<desc>`` (``aria-labelledby``), every bar or point labelled with its
value in text, a legend in words, and Okabe-Ito colours (told apart by colour-blind readers).
Hand-written because three chart shapes are ~200 lines, while a plotting library would bring
numpy-sized dependencies or JavaScript into the service image.

``ident`` makes the element ids unique when several charts share one page.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Final
from xml.sax.saxutils import escape

from leadroute.structs import FrozenStruct

__all__ = ["PALETTE", "Bar", "Series", "bar_chart", "grouped_bar_chart", "line_chart", "percent"]

PALETTE: Final = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
"""Okabe & Ito's colour-blind-safe palette."""

WIDTH: Final = 720
HEIGHT: Final = 360
MARGIN_LEFT: Final = 64
MARGIN_RIGHT: Final = 16
MARGIN_TOP: Final = 40
MARGIN_BOTTOM: Final = 72
MAX_MARKERS: Final = 168
"""A line chart marks each point (with its value as a tooltip) up to a week of hours; past that
the markers would blur into the line, and the tables carry the numbers."""
FONT: Final = 'font-family="system-ui, sans-serif" font-size="12"'

Format = Callable[[float], str]


class Bar(FrozenStruct, frozen=True, kw_only=True):
    """One bar: its label, value, and optionally an interval drawn as a whisker."""

    label: str
    value: float | None
    low: float | None = None
    high: float | None = None
    note: str = ""
    """Shown under the label (e.g. ``n=42``)."""


class Series(FrozenStruct, frozen=True, kw_only=True):
    name: str
    values: tuple[float | None, ...]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "chart"


def _number(value: float) -> str:
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def percent(value: float) -> str:
    return f"{value * 100:.1f}%"


def _nice_max(value: float) -> float:
    """A round axis top at or above ``value`` (1, 2, 4 or 8 times a power of ten): its quarters,
    where the gridlines are, are round too (25 would put them at 6.25 and 18.75)."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 4.0, 8.0, 10.0):
        if value <= step * power:
            return step * power
    return 10.0 * power


def _open(title: str, desc: str, ident: str) -> list[str]:
    ident = _slug(ident or title)
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" aria-labelledby="{ident}-title {ident}-desc" {FONT}>',
        f'<title id="{ident}-title">{escape(title)}</title>',
        f'<desc id="{ident}-desc">{escape(desc)}</desc>',
        f'<text x="{WIDTH / 2}" y="20" text-anchor="middle" font-size="15" font-weight="bold">'
        f"{escape(title)}</text>",
    ]


def _y_axis(top: float, fmt: Format) -> list[str]:
    """Gridlines and labels at 0, 1/4 ... of ``top``."""
    plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    parts = []
    for i in range(5):
        value = top * i / 4
        y = MARGIN_TOP + plot_h - plot_h * i / 4
        parts.append(
            f'<line x1="{MARGIN_LEFT}" x2="{WIDTH - MARGIN_RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#ccc" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{MARGIN_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(fmt(value))}</text>'
        )
    return parts


def _text(x: float, y: float, content: str, anchor: str = "middle", extra: str = "") -> str:
    """A text label (``content`` escaped here)."""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{escape(content)}</text>'


def _y(value: float, top: float) -> float:
    plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    return MARGIN_TOP + plot_h - plot_h * min(max(value, 0.0), top) / top


def _legend(names: Sequence[str]) -> list[str]:
    parts = []
    x = MARGIN_LEFT
    y = HEIGHT - 14
    for i, name in enumerate(names):
        colour = PALETTE[i % len(PALETTE)]
        parts.append(f'<rect x="{x}" y="{y - 10}" width="12" height="12" fill="{colour}"/>')
        parts.append(f'<text x="{x + 16}" y="{y}">{escape(name)}</text>')
        x += 24 + 7 * len(name)
    return parts


def bar_chart(
    title: str,
    desc: str,
    bars: Sequence[Bar],
    *,
    fmt: Format = _number,
    top: float | None = None,
    ident: str = "",
) -> str:
    """Vertical bars with their values written above, and whiskers for ``low``..``high``."""
    values = [v for b in bars for v in (b.value, b.high) if v is not None]
    top = top or _nice_max(max(values, default=0.0))
    parts = _open(title, desc, ident) + _y_axis(top, fmt)
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    slot = plot_w / max(len(bars), 1)
    width = slot * 0.6
    base = _y(0, top)
    for i, bar in enumerate(bars):
        x = MARGIN_LEFT + slot * i + (slot - width) / 2
        centre = x + width / 2
        label = f"{bar.label}: " + ("no data" if bar.value is None else fmt(bar.value))
        if bar.low is not None and bar.high is not None:
            label += f" (95% interval {fmt(bar.low)} to {fmt(bar.high)})"
        parts.append(f"<g><title>{escape(label)}</title>")
        if bar.value is not None:
            y = _y(bar.value, top)
            box = f'x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{base - y:.1f}"'
            parts.append(f'<rect {box} fill="{PALETTE[0]}"/>')
            text_y = y
            if bar.low is not None and bar.high is not None:
                lo, hi = _y(bar.low, top), _y(bar.high, top)
                whisker = (
                    f"M{centre - 6:.1f},{hi:.1f}H{centre + 6:.1f}M{centre:.1f},{hi:.1f}V{lo:.1f}"
                    f"M{centre - 6:.1f},{lo:.1f}H{centre + 6:.1f}"
                )
                parts.append(f'<path d="{whisker}" stroke="#000" stroke-width="1.5" fill="none"/>')
                text_y = min(y, hi)
            parts.append(_text(centre + 9, text_y - 4, fmt(bar.value), "start"))
        else:
            parts.append(_text(centre, base - 4, "no data"))
        parts.append(_text(centre, base + 16, bar.label))
        if bar.note:
            parts.append(_text(centre, base + 30, bar.note, extra=' fill="#555"'))
        parts.append("</g>")
    parts.append("</svg>")
    return "\n".join(parts)


def grouped_bar_chart(
    title: str,
    desc: str,
    groups: Sequence[str],
    series: Sequence[Series],
    *,
    fmt: Format = _number,
    top: float | None = None,
    ident: str = "",
) -> str:
    """One cluster of bars per group, one bar per series (a legend names the series)."""
    values = [v for s in series for v in s.values if v is not None]
    top = top or _nice_max(max(values, default=0.0))
    parts = _open(title, desc, ident) + _y_axis(top, fmt)
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    slot = plot_w / max(len(groups), 1)
    width = slot * 0.8 / max(len(series), 1)
    base = _y(0, top)
    for g, group in enumerate(groups):
        left = MARGIN_LEFT + slot * g + slot * 0.1
        for s, one in enumerate(series):
            value = one.values[g]
            x = left + width * s
            shown = "no data" if value is None else fmt(value)
            parts.append(f"<g><title>{escape(f'{group}, {one.name}: {shown}')}</title>")
            if value is not None:
                y = _y(value, top)
                parts.append(
                    f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(width - 2, 1):.1f}" height="{base - y:.1f}" '
                    f'fill="{PALETTE[s % len(PALETTE)]}"/>'
                )
                parts.append(
                    f'<text x="{x + width / 2:.1f}" y="{y - 4:.1f}" text-anchor="middle" font-size="10">'
                    f"{escape(shown)}</text>"
                )
            parts.append("</g>")
        parts.append(_text(left + slot * 0.4, base + 16, group))
    parts += _legend([s.name for s in series])
    parts.append("</svg>")
    return "\n".join(parts)


def line_chart(
    title: str,
    desc: str,
    times: Sequence[datetime],
    series: Sequence[Series],
    *,
    fmt: Format = _number,
    ident: str = "",
) -> str:
    """One line per series over ``times`` (evenly spaced), with the first and last times written,
    each series' total in the legend, and each point's value in its tooltip (up to
    :data:`MAX_MARKERS` points)."""
    values = [v for s in series for v in s.values if v is not None]
    top = _nice_max(max(values, default=0.0))
    parts = _open(title, desc, ident) + _y_axis(top, fmt)
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    step = plot_w / max(len(times) - 1, 1)
    base = _y(0, top)
    for s, one in enumerate(series):
        colour = PALETTE[s % len(PALETTE)]
        points = [
            (MARGIN_LEFT + step * i, _y(v, top), times[i], v)
            for i, v in enumerate(one.values)
            if v is not None
        ]
        if points:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in points)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y, at, v in points if len(times) <= MAX_MARKERS else ():
            tip = f"{one.name} at {at:%Y-%m-%d %H:%M}: {fmt(v)}"
            dot = f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}">'
            parts.append(f"{dot}<title>{escape(tip)}</title></circle>")
    if times:
        parts.append(
            f'<text x="{MARGIN_LEFT}" y="{base + 16:.1f}">{escape(f"{times[0]:%Y-%m-%d %H:%M}")}</text>'
        )
        parts.append(
            f'<text x="{WIDTH - MARGIN_RIGHT}" y="{base + 16:.1f}" text-anchor="end">'
            f"{escape(f'{times[-1]:%Y-%m-%d %H:%M} UTC')}</text>"
        )
    totals = [f"{s.name} ({_number(sum(v for v in s.values if v is not None))})" for s in series]
    parts += _legend(totals)
    parts.append("</svg>")
    return "\n".join(parts)
