"""Lead files to lead bodies: CSV with a header row, or JSON Lines; each row with its line number.

CSV columns are matched to lead fields by name, forgiving case, spaces and punctuation
(``First Name`` is ``first_name``, ``E-mail`` is not ``email`` but ``e_mail``); any other column
becomes an attribute under that normalized name (``Lead Score`` → ``attributes.lead_score``).
Empty cells are left out, so an empty ``employees`` cell is "unknown", not an error. Every value
is sent as text: the service converts numbers (``employees``, ``annual_revenue``) and dates.

A JSONL line is one lead object as ``POST /v1/leads`` takes it, sent as it is; blank lines are
skipped.

A row without an ``event_id`` gets one derived from the file's name and the row's content
(:func:`derived_key`), so importing the same file again, whole or after an interruption, finds
each row's key used before and creates nothing twice; the same row in a file of another name is
another lead event.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec

from leadroute.errors import CommandError
from leadroute.models import LeadIn

__all__ = ["Format", "Row", "count_rows", "derived_key", "detect_format", "read_rows"]

Format = Literal["csv", "jsonl"]

_FIELDS = frozenset(f.name for f in msgspec.structs.fields(LeadIn)) - {"attributes"}
_canonical = msgspec.json.Encoder(order="sorted").encode
_decode = msgspec.json.Decoder().decode


@dataclass(frozen=True, slots=True)
class Row:
    """One lead of the file: its first line, and its body or why it cannot be sent."""

    line: int
    lead: Any = None
    error: str | None = None


def detect_format(path: Path, given: str | None) -> Format:
    """``given``, or the format the file's extension names (.csv; .jsonl, .ndjson)."""
    name = given or {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}.get(path.suffix.lower())
    if name == "csv":
        return "csv"
    if name == "jsonl":
        return "jsonl"
    raise CommandError(f"{path}: cannot tell the format from the extension; pass --format csv or jsonl")


def derived_key(file_name: str, lead: dict[str, Any]) -> str:
    """The ``event_id`` of a row that has none: stable for the same file name and row content."""
    digest = hashlib.sha256(file_name.encode() + b"\n" + _canonical(lead)).hexdigest()
    return f"import-{digest[:40]}"


def _slug(header: str) -> str:
    slug = re.sub(r"[^0-9a-z]+", "_", header.strip().lower()).strip("_")
    return f"_{slug}" if slug[:1].isdigit() else slug


def read_rows(path: Path, fmt: Format) -> Iterator[Row]:
    """Each lead of the file, in order, with an ``event_id`` (its own or :func:`derived_key`)."""
    rows = _csv_rows(path) if fmt == "csv" else _jsonl_rows(path)
    for row in rows:
        lead = row.lead
        if isinstance(lead, dict) and lead.get("event_id") in (None, ""):
            lead["event_id"] = derived_key(path.name, {k: v for k, v in lead.items() if k != "event_id"})
        yield row


def count_rows(path: Path, fmt: Format) -> int:
    """How many rows :func:`read_rows` will give (for the progress bar)."""
    with path.open(newline="", encoding="utf-8-sig") as f:
        if fmt == "jsonl":
            return sum(1 for line in f if line.strip())
        return max(sum(1 for values in csv.reader(f) if values) - 1, 0)


def _csv_rows(path: Path) -> Iterator[Row]:
    with path.open(newline="", encoding="utf-8-sig") as f:  # a BOM, as spreadsheets write it
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            return
        names = [_slug(h) for h in header]
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise CommandError(f"{path}: columns {', '.join(dupes)} appear twice (after normalizing names)")
        if "" in names:
            raise CommandError(f"{path}: column {names.index('') + 1} of the header has no name")
        line = reader.line_num + 1
        for values in reader:
            first, line = line, reader.line_num + 1
            if not values:
                continue
            if len(values) > len(names):
                yield Row(first, error=f"{len(values)} values for {len(names)} columns")
                continue
            lead: dict[str, Any] = {}
            attributes: dict[str, str] = {}
            for name, value in zip(names, values, strict=False):
                if value == "":
                    continue
                if name in _FIELDS:
                    lead[name] = value
                else:
                    attributes[name] = value
            if attributes:
                lead["attributes"] = attributes
            yield Row(first, lead)


def _jsonl_rows(path: Path) -> Iterator[Row]:
    with path.open(encoding="utf-8-sig") as f:
        for number, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                yield Row(number, _decode(text))
            except msgspec.DecodeError as exc:
                yield Row(number, error=f"body: not valid JSON: {exc}")
