"""Named SQL queries, loaded once from every ``sql/*.sql`` file of this package.

Each query sits under a ``-- name: <name>`` header followed by a one-line description, in the
manner of procrastinate's ``queries.sql``. Files group queries by area (``queries.sql`` for
intake, ``routing.sql``, ...); a name is unique across all of them. Callers pass the connection,
so they own the transaction.
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


def _load_all() -> dict[str, str]:
    queries: dict[str, str] = {}
    files = sorted(
        (f for f in resources.files("leadroute.store").joinpath("sql").iterdir() if f.name.endswith(".sql")),
        key=lambda f: f.name,
    )
    for file in files:
        for name, sql in parse_queries(file.read_text(encoding="utf-8")).items():
            if name in queries:
                raise ValueError(f"query {name!r} is defined twice ({file.name})")
            queries[name] = sql
    return queries


QUERIES: Final = MappingProxyType(_load_all())
