"""Named SQL queries, loaded once from ``sql/queries.sql``.

Each query sits under a ``-- name: <name>`` header followed by a one-line description, in the
manner of procrastinate's ``queries.sql``. Callers pass the connection, so they own the
transaction.
"""

from __future__ import annotations

import re
from importlib import resources
from types import MappingProxyType
from typing import Final

__all__ = ["QUERIES", "parse_queries"]

_HEADER = re.compile(r"^-- name: (\w+)\n", re.MULTILINE)


def parse_queries(text: str) -> dict[str, str]:
    """Split a queries file into ``{name: sql}``; comment lines inside a query are dropped."""
    parts = _HEADER.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        sql = "\n".join(line for line in body.splitlines() if not line.lstrip().startswith("--")).strip()
        queries[name] = sql.rstrip(";")
    return queries


QUERIES: Final = MappingProxyType(
    parse_queries(resources.files("leadroute.store").joinpath("sql/queries.sql").read_text(encoding="utf-8"))
)
