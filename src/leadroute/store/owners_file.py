"""The owners file (YAML or CSV): read it, check it, and import it through the owners repository.

An owner's availability is validated and normalized on the way in (``OwnerIn.__post_init__``), so
what is stored is canonical and importing the same file twice writes the same values (and
``updated_at`` does not move): importing twice changes nothing.

CSV (one owner per row, header required; empty cell = default; list fields are ``;``-separated).
Every row has exactly one cell per column: a row with more cells (an unquoted comma in a value) or
fewer (a missing cell would shift the values after it) is an error naming ``file:line``.

=================  ====================================================================
``id``             required
``name``           required
``email``          optional
``active``         ``true``/``false`` (also yes/no, 1/0); default true
``timezone``       IANA name, default ``UTC``
``working_hours``  ``mon-fri=09:00-18:00;sat=10:00-14:00``; empty = always available
``out_of_office``  ``2026-12-24/2027-01-02;2027-02-01T09:00+01:00/2027-02-01T17:00+01:00``
``max_open``       integer; empty = unlimited
``max_per_day``    integer; empty = unlimited
``weight``         integer >= 1, default 1
``skills``         ``fr;enterprise``
``crm_user_id``    optional
``pools``          ``inbound;emea``: pools the owner is added to (created as round_robin
                   pools falling back to ``unassigned`` when they do not exist yet)
``slack_user_id``  optional: the rep's Slack member id (``U…``); Slack alerts mention them
=================  ====================================================================
"""

from __future__ import annotations

import csv
import io
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import yaml

from leadroute.errors import OwnersFileError, PoolError
from leadroute.rules._yaml import (
    YamlDocument,
    missing_key,
    parse_yaml,
    syntax_error,
    unknown_key,
    validation_path,
)
from leadroute.store.audit import audit
from leadroute.store.db import Connection
from leadroute.store.owners import (
    POOL_CHECKED_FIELDS,
    Capacity,
    Id,
    OwnerIn,
    PoolIn,
    Strategy,
    lock_pools,
    put_owner,
    save_pools,
)
from leadroute.store.queries import QUERIES
from leadroute.structs import Struct

__all__ = ["CSV_COLUMNS", "OwnersFile", "import_owners", "load_owners_file"]

CSV_COLUMNS = (
    "id",
    "name",
    "email",
    "active",
    "timezone",
    "working_hours",
    "out_of_office",
    "max_open",
    "max_per_day",
    "weight",
    "skills",
    "crm_user_id",
    "pools",
    "slack_user_id",
)


class _OwnersFileSpec(Struct, kw_only=True):
    """The YAML owners file: owners first, then pools naming them."""

    owners: list[OwnerIn] = msgspec.field(default_factory=list)
    pools: list[PoolIn] = msgspec.field(default_factory=list)
    memberships: dict[str, list[str]] = msgspec.field(default_factory=dict)


@dataclass(kw_only=True)
class OwnersFile:
    """An owners file, loaded: its owners and pools, and where each pool was written."""

    owners: list[OwnerIn] = field(default_factory=list)
    pools: list[PoolIn] = field(default_factory=list)
    memberships: dict[str, list[str]] = field(default_factory=dict)
    """CSV only: pool id → owners to add to it (pools created when missing)."""
    origin: Path | None = None
    """The file it was read from (None: built in code); import errors about a pool name it."""
    places: dict[tuple[str, str], str] = field(default_factory=dict)
    """``(pool id, field)`` → ``line:column`` (YAML) or ``(pool id, "")`` → ``line`` (CSV)."""

    def place(self, pool: str, field: str) -> str:
        """Where an error about ``field`` of ``pool`` points: ``file:line[:column]``."""
        spot = self.places.get((pool, field)) or self.places.get((pool, ""))
        return f"{self.origin}:{spot}" if spot else str(self.origin)


def load_owners_file(path: Path) -> OwnersFile:
    """Read a YAML or CSV (by suffix ``.csv``) owners file.

    Errors are :class:`OwnersFileError` naming ``file:line`` (CSV) or ``file:line:column`` and the
    owner or pool (YAML), like rule-file errors.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise OwnersFileError(f"{path}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise OwnersFileError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    if path.suffix.lower() == ".csv":
        return _load_csv(path, text)
    try:
        doc = parse_yaml(text)
    except yaml.YAMLError as exc:
        where, message = syntax_error(exc)
        raise OwnersFileError(f"{path}:{where.line}:{where.column}: {message}") from None
    for key, at in doc.duplicate_keys():  # YAML keeps the last silently; a typo'd copy is likelier
        raise OwnersFileError(f"{path}:{at.line}:{at.column}: key {key!r} is written twice; keep one")
    try:
        parsed = msgspec.convert(doc.data or {}, _OwnersFileSpec)
    except msgspec.ValidationError as exc:
        raise OwnersFileError(_yaml_problem(path, doc, str(exc))) from None
    if parsed.memberships:
        where = doc.locate([], key="memberships")
        raise OwnersFileError(
            f"{path}:{where.line}:{where.column}: 'memberships' is for CSV files; list members under pools"
        )
    ids = {"owners": [o.id for o in parsed.owners], "pools": [p.id for p in parsed.pools]}
    for section, listed in ids.items():
        first: dict[str, int] = {}
        for index, ident in enumerate(listed):
            if ident in first:
                at = doc.locate([section, index, "id"])
                was = doc.locate([section, first[ident]]).line
                raise OwnersFileError(
                    f"{path}:{at.line}:{at.column}: {_ENTRIES[section][0]} {ident!r} is listed twice "
                    f"(first on line {was}); keep one entry per id"
                )
            first[ident] = index
    places: dict[tuple[str, str], str] = {}
    for index, pool in enumerate(parsed.pools):
        for name in ("", *POOL_CHECKED_FIELDS):
            where = doc.locate(["pools", index, name] if name else ["pools", index])
            places.setdefault((pool.id, name), f"{where.line}:{where.column}")
    return OwnersFile(owners=parsed.owners, pools=parsed.pools, origin=path, places=places)


_ENTRIES: dict[str, tuple[str, type[msgspec.Struct]]] = {
    "owners": ("owner", OwnerIn),
    "pools": ("pool", PoolIn),
}
"""Top-level lists of an owners file: what an entry is called in errors, and its struct."""
_NESTED: dict[str, type[msgspec.Struct]] = {"capacity": Capacity}


def _yaml_problem(path: Path, doc: YamlDocument, text: str) -> str:
    """A validation error as ``file:line:column: owner 'ann': what is wrong`` (the rules loader's
    YAML locator finds the line; the entry is named by its id when it has one)."""
    message, at = validation_path(text)
    key = unknown_key(message)
    spot: list[str | int] = list(at)
    if key is not None:
        allowed = ", ".join(f.name for f in msgspec.structs.fields(_struct_at(at)) if f.name != "memberships")
        message = f"unknown key {key!r} (allowed: {allowed}); remove it or fix its spelling"
    elif (missing := missing_key(message)) is not None:
        message = f"missing required key {missing!r}; add it"
    elif message.startswith("Invalid enum value") and at and at[-1] == "strategy":
        message += f" (use one of {', '.join(typing.get_args(Strategy))})"
    else:
        # OwnerIn.__post_init__ problems arrive at the owner: point at the field they name
        named = next((f for f in ("working_hours", "out_of_office") if message.startswith(f"{f}:")), None)
        named = named or ("timezone" if message.startswith("unknown timezone") else None)
        if named is not None and len(at) == 2:
            spot.append(named)
    where = doc.locate(spot, key=key)
    label = ""
    if len(at) >= 2 and isinstance(at[0], str) and at[0] in _ENTRIES and isinstance(at[1], int):
        kind = _ENTRIES[at[0]][0]
        entries = doc.data.get(at[0]) if isinstance(doc.data, dict) else None
        entry = entries[at[1]] if isinstance(entries, list) and at[1] < len(entries) else None
        ident = entry.get("id") if isinstance(entry, dict) else None
        label = f"{kind} {ident!r}" if isinstance(ident, str) else f"{at[0]}[{at[1]}]"
        if len(at) > 2:
            label += ": " + ".".join(str(s) for s in at[2:])
    elif at:
        label = ".".join(str(s) for s in at)
    message = message.replace("`", "'")
    return f"{path}:{where.line}:{where.column}: " + (f"{label}: {message}" if label else message)


def _struct_at(at: list[str | int]) -> type[msgspec.Struct]:
    """The struct an owners-file path points into (for the keys it allows)."""
    if len(at) >= 2 and isinstance(at[0], str) and at[0] in _ENTRIES:
        nested = _NESTED.get(str(at[2])) if len(at) >= 3 else None
        return nested or _ENTRIES[at[0]][1]
    return _OwnersFileSpec


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in {"true", "yes", "1", "y"}:
        return True
    if value in {"false", "no", "0", "n"}:
        return False
    raise ValueError(f"{text!r} is not true or false")


def _items(text: str) -> list[str]:
    return [part.strip() for part in text.split(";") if part.strip()]


def _csv_owner(row: dict[str, str]) -> dict[str, Any]:
    owner: dict[str, Any] = {"id": row.get("id", ""), "name": row.get("name", "")}
    owner |= {k: row[k] for k in ("email", "timezone", "crm_user_id", "slack_user_id") if row.get(k)}
    if row.get("active"):
        owner["active"] = _bool(row["active"])
    if row.get("working_hours"):
        hours: dict[str, str] = {}
        for item in _items(row["working_hours"]):
            days, sep, span = item.partition("=")
            if not sep:
                raise ValueError(f"working_hours: {item!r} should look like mon-fri=09:00-18:00")
            hours[days.strip()] = (hours[days.strip()] + "," if days.strip() in hours else "") + span
        owner["working_hours"] = hours
    if row.get("out_of_office"):
        ranges = []
        for item in _items(row["out_of_office"]):
            start, sep, end = item.partition("/")
            if not sep:
                raise ValueError(f"out_of_office: {item!r} should look like 2026-12-24/2027-01-02")
            ranges.append({"from": start.strip(), "to": end.strip()})
        owner["out_of_office"] = ranges
    capacity = {k: int(row[k]) for k in ("max_open", "max_per_day") if row.get(k, "").strip()}
    if capacity:
        owner["capacity"] = capacity
    if row.get("weight"):
        owner["weight"] = int(row["weight"])
    if row.get("skills"):
        owner["skills"] = _items(row["skills"])
    return owner


def _load_csv(path: Path, text: str) -> OwnersFile:
    reader = csv.reader(io.StringIO(text))
    header = next(reader, [])
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise OwnersFileError(
            f"{path}:1: column(s) {', '.join(repeated)} appear twice in the header; keep one"
        )
    unknown = sorted(set(header) - set(CSV_COLUMNS))
    if unknown:
        known = ", ".join(CSV_COLUMNS)
        raise OwnersFileError(f"{path}: unknown column(s) {', '.join(unknown)} (known: {known})")
    owners: list[OwnerIn] = []
    memberships: dict[str, list[str]] = {}
    places: dict[tuple[str, str], str] = {}
    seen: dict[str, int] = {}  # owner id -> line
    end = reader.line_num  # the line the header ended on (a quoted cell may span lines)
    for cells_in in reader:
        line, end = end + 1, reader.line_num
        if not cells_in:  # a blank line
            continue
        if len(cells_in) != len(header):
            raise OwnersFileError(f"{path}:{line}: {_cell_count_problem(len(cells_in), len(header))}")
        cells = {k: v.strip() for k, v in zip(header, cells_in, strict=True)}
        try:
            owner = msgspec.convert(_csv_owner(cells), OwnerIn)
        except (ValueError, msgspec.ValidationError) as exc:
            raise OwnersFileError(f"{path}:{line}: {exc}") from None
        if owner.id in seen:
            raise OwnersFileError(
                f"{path}:{line}: owner {owner.id!r} is listed twice (first on line {seen[owner.id]}); "
                "keep one row per owner"
            )
        seen[owner.id] = line
        owners.append(owner)
        for pool in _items(cells.get("pools", "")):
            try:
                msgspec.convert(pool, Id)
            except msgspec.ValidationError as exc:
                raise OwnersFileError(f"{path}:{line}: pools: {pool!r} is not a pool id ({exc})") from None
            memberships.setdefault(pool, []).append(owner.id)
            places.setdefault((pool, ""), str(line))
    return OwnersFile(owners=owners, memberships=memberships, origin=path, places=places)


def _cell_count_problem(cells: int, columns: int) -> str:
    """A row whose cells do not line up with the header: say which way and what to do.

    Both are refused rather than guessed at: extra cells would be dropped, and a missing cell in
    the middle of a row shifts every value after it into the wrong column.
    """
    found = f"the row has {cells} cell{'s' if cells != 1 else ''} for {columns} columns"
    if cells > columns:
        return f'{found}; put a value that contains a comma in double quotes: "Smith, Jr."'
    return f"{found}; give every column a cell, leaving it empty (two commas in a row) for the default"


async def import_owners(conn: Connection, data: OwnersFile, *, actor: str = "system") -> tuple[int, int]:
    """Load an owners file in one transaction; importing twice changes nothing. The audit trail
    records ``actor`` importing the file, with the owners and pools it names.

    A pool that cannot be saved (unknown member or escalation target, a fallback loop) is an
    :class:`OwnersFileError` naming the file and where the pool was written, when it came from one.
    """
    try:
        async with conn.transaction():
            await lock_pools(conn)  # before the owners: one lock order for every writer
            for owner in data.owners:
                await put_owner(conn, owner)
            created = []
            for pool_id, members in data.memberships.items():
                if await conn.fetchval(QUERIES["routing_pool_ensure"], pool_id) is not None:
                    created.append(pool_id)
                await conn.execute(QUERIES["routing_pool_members_add"], pool_id, members)
            await save_pools(conn, data.pools, created=created)
            detail = {
                "owners": [o.id for o in data.owners],
                "pools": sorted({p.id for p in data.pools} | set(data.memberships)),
            }
            await audit(conn, actor, "owners.import", f"file:{data.origin or '-'}", detail)
    except PoolError as exc:
        if data.origin is None:
            raise
        raise OwnersFileError(f"{data.place(exc.pool, exc.field)}: {exc.detail}") from exc
    return len(data.owners), len(data.pools) + len(data.memberships)
