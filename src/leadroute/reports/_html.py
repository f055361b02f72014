"""A report as one self-contained HTML page: its charts inline, then its tables as text.

No script, no stylesheet or font from elsewhere: the file opens offline and can be mailed.
"""

from __future__ import annotations

from collections.abc import Mapping
from xml.sax.saxutils import escape

__all__ = ["html_page"]

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem;color:#111}"
    "figure{margin:1.5rem 0}svg{max-width:100%;height:auto}pre{background:#f6f6f6;padding:1rem;overflow:auto}"
)


def html_page(title: str, charts: Mapping[str, str], text: str) -> str:
    """``charts`` (``{name: svg}``) in order, each in a ``<figure>``, and ``text`` under them."""
    figures = "\n".join(f'<figure id="{escape(name)}">\n{svg}\n</figure>' for name, svg in charts.items())
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{_STYLE}</style></head>\n<body>\n<h1>{escape(title)}</h1>\n{figures}\n"
        f"<h2>Tables</h2>\n<pre>{escape(text)}</pre>\n</body></html>\n"
    )
