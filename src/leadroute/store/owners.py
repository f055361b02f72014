"""Owners and pools: the rows routing draws from, and the owners-file import (YAML or CSV).

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
=================  ====================================================================
"""

from __future__ import annotations

import csv
import io
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import asyncpg
import msgspec
import yaml

from leadroute.errors import OwnersFileError, PoolError, UnknownOwners
from leadroute.models import ID_MAX_LENGTH, ID_PATTERN
from leadroute.routing.assign import MAX_FALLBACK_HOPS
from leadroute.routing.eligibility import normalize_absences, normalize_hours, valid_timezone
from leadroute.rules._yaml import (
    YamlDocument,
    missing_key,
    parse_yaml,
    syntax_error,
    unknown_key,
    validation_path,
)
from leadroute.store.db import Connection
from leadroute.store.queries import QUERIES

__all__ = [
    "CSV_COLUMNS",
    "MAX_CAPACITY",
    "POOLS_LOCK",
    "Capacity",
    "FallbackLoop",
    "Id",
    "OwnerIn",
    "OwnersFile",
    "PoolIn",
    "Strategy",
    "UnknownEscalation",
    "check_escalation",
    "check_fallbacks",
    "import_owners",
    "jsonb",
    "load_owners_file",
    "lock_pools",
    "owner_from_row",
    "put_owner",
    "put_pool",
    "save_pools",
]

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)]
"""Owner and pool ids: short, URL-safe, stable (they appear in rule files and history)."""
Skill = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Strategy = Literal["round_robin", "weighted", "least_loaded"]
MAX_CAPACITY = 1_000_000
"""The largest ``max_open`` / ``max_per_day`` (the columns are 32-bit integers)."""
POOLS_LOCK = 0x1EAD_0005
"""``pg_advisory_xact_lock`` key every pool save holds until it commits: saves apply one after the
other, so two concurrent saves (a -> b and b -> a) cannot each miss the other and close a loop."""
POOL_CHECKED_FIELDS = ("members", "escalate_to", "fallback")
"""Pool fields a save checks against the database (an import error points at them)."""
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
)


class _Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Owners files are edited by hand: an unknown key is a typo, so it is an error."""


class Capacity(_Strict):
    """How much an owner takes: open leads at once, and new leads per day (their timezone)."""

    max_open: Annotated[int, msgspec.Meta(ge=0, le=MAX_CAPACITY)] | None = None
    max_per_day: Annotated[int, msgspec.Meta(ge=0, le=MAX_CAPACITY)] | None = None


class OwnerIn(_Strict):
    """An owner (sales rep) as an admin or an owners file describes it; validated and normalized."""

    id: Id
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    email: Annotated[str, msgspec.Meta(max_length=320)] | None = None
    active: bool = True
    timezone: str = "UTC"
    working_hours: dict[str, Any] | None = None
    """``{"mon-fri": "09:00-18:00", "sat": "10:00-14:00"}``; absent: always available."""
    out_of_office: list[dict[str, Any]] = msgspec.field(default_factory=list)
    """``[{"from": "2026-12-24", "to": "2027-01-02"}]``: dates (whole days) or datetimes."""
    capacity: Capacity | None = None
    weight: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 1
    skills: list[Skill] = msgspec.field(default_factory=list)
    crm_user_id: Annotated[str, msgspec.Meta(max_length=255)] | None = None

    def __post_init__(self) -> None:
        # ValueError here becomes a msgspec.ValidationError naming the problem.
        valid_timezone(self.timezone)
        self.working_hours = normalize_hours(self.working_hours)
        self.out_of_office = list(normalize_absences(self.out_of_office))
        self.skills = sorted(set(self.skills))
        if self.capacity is not None and self.capacity == Capacity():
            self.capacity = None


class PoolIn(_Strict):
    """A pool of owners that routing rules send leads to."""

    id: Id
    members: list[Id] = msgspec.field(default_factory=list)
    strategy: Strategy = "round_robin"
    fallback: Id = "unassigned"
    """Another pool, or the name of a queue."""
    required_skill: Skill | None = None
    allow_off_hours: bool = False
    """Members may get leads outside their working hours (still not when out of office)."""
    sla_business_hours: bool = False
    """SLA timers of this pool's leads pause outside the owner's working hours."""
    escalate_to: Id | None = None
    """Where an SLA breach escalates: an owner id or a pool id."""


class _OwnersFileSpec(_Strict):
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
    owner |= {k: row[k] for k in ("email", "timezone", "crm_user_id") if row.get(k)}
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


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def jsonb(value: Any) -> Any:
    """A jsonb column's value: decoded already (pooled connections) or JSON text (plain ones)."""
    return msgspec.json.decode(value) if isinstance(value, str) else value


def owner_from_row(row: Any) -> dict[str, Any]:
    """An ``owners`` row as the API shows it (the same shape an owners file uses)."""
    capacity = None
    if row["max_open"] is not None or row["max_per_day"] is not None:
        capacity = {"max_open": row["max_open"], "max_per_day": row["max_per_day"]}
    return {
        "id": row["id"],
        "name": row["name"],
        "email": row["email"],
        "active": row["active"],
        "timezone": row["timezone"],
        "working_hours": jsonb(row["working_hours"]),
        "out_of_office": jsonb(row["out_of_office"]),
        "capacity": capacity,
        "weight": row["weight"],
        "skills": list(row["skills"]),
        "crm_user_id": row["crm_user_id"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


async def put_owner(conn: Connection, owner: OwnerIn) -> asyncpg.Record:
    """Create or replace one owner (every field); returns the row."""
    cap = owner.capacity or Capacity()
    row = await conn.fetchrow(
        QUERIES["routing_owner_put"],
        owner.id,
        owner.name,
        owner.email,
        owner.active,
        owner.timezone,
        None if owner.working_hours is None else _json(owner.working_hours),
        _json(owner.out_of_office),
        cap.max_open,
        cap.max_per_day,
        owner.weight,
        owner.skills,
        owner.crm_user_id,
    )
    assert row is not None
    return row


async def put_pool(conn: Connection, pool: PoolIn) -> None:
    """Create or update one pool and set its members exactly; every member must exist."""
    missing = [r["id"] for r in await conn.fetch(QUERIES["owners_missing"], pool.members)]
    if missing:
        raise UnknownOwners(pool.id, sorted(missing))
    await conn.execute(
        QUERIES["routing_pool_put"],
        pool.id,
        pool.strategy,
        pool.fallback,
        pool.required_skill,
        pool.allow_off_hours,
        pool.sla_business_hours,
        pool.escalate_to,
    )
    await conn.execute(QUERIES["pool_members_set"], pool.id, sorted(set(pool.members)))


class UnknownEscalation(PoolError):
    """A pool's ``escalate_to`` names neither an owner nor a pool."""

    kind = "unknown-escalation-target"
    title = "Unknown escalation target"


class FallbackLoop(PoolError):
    """A pool's fallback chain would come back to a pool already on it: no lead would reach a queue."""

    kind = "fallback-loop"
    title = "Pool fallback loops"

    def __init__(self, pool: str, chain: list[str]) -> None:
        shown = " -> ".join(chain)
        super().__init__(
            pool,
            "fallback",
            f"pool {pool!r}: fallback {chain[1]!r} makes the fallback chain loop ({shown}), so a lead "
            "nobody in these pools can take would never reach a queue; point one of them at a queue "
            "(such as unassigned) or at a pool outside the loop",
            errors=[{"field": "fallback", "message": f"the fallback chain loops: {shown}"}],
        )
        self.chain = chain


async def check_escalation(conn: Connection, pool: PoolIn) -> None:
    """``escalate_to`` must name an existing owner or pool."""
    if pool.escalate_to is None:
        return
    found = await conn.fetchval(QUERIES["routing_escalation_target_exists"], pool.escalate_to)
    if not found:
        raise UnknownEscalation(
            pool.id,
            "escalate_to",
            f"pool {pool.id!r}: escalate_to {pool.escalate_to!r} is neither an owner nor a pool",
            errors=[{"field": "escalate_to", "message": f"unknown owner or pool {pool.escalate_to!r}"}],
        )


async def lock_pools(conn: Connection) -> None:
    """Take the pools lock for the rest of the transaction (see :data:`POOLS_LOCK`)."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", POOLS_LOCK)


class FallbackTooLong(PoolError):
    """A fallback chain longer than routing follows: its last pools would never be tried."""

    kind = "fallback-too-long"
    title = "Pool fallback chain too long"

    def __init__(self, chain: list[str], saved: set[str]) -> None:
        shown = " -> ".join(chain)
        pool = next(p for p in chain if p in saved)
        super().__init__(
            pool,
            "fallback",
            f"pool {pool!r}: the fallback chain {shown} has {len(chain) - 2} hops; routing follows at "
            f"most {MAX_FALLBACK_HOPS} (after {chain[MAX_FALLBACK_HOPS]!r} a lead goes to the ruleset's "
            "queue), so shorten the chain or point a pool on it at a queue",
            errors=[{"field": "fallback", "message": f"more than {MAX_FALLBACK_HOPS} hops: {shown}"}],
        )
        self.chain = chain


async def check_fallbacks(conn: Connection, pool_ids: Sequence[str]) -> None:
    """No fallback chain starting at one of ``pool_ids`` may loop (as PostgreSQL holds them now).

    A fallback that names no pool is a queue and ends the chain. Raises :class:`FallbackLoop`
    for the first of ``pool_ids`` whose chain comes back to a pool already on it.
    """
    fallback = {r["id"]: r["fallback"] for r in await conn.fetch(QUERIES["routing_pool_fallbacks"])}
    for start in pool_ids:
        chain = [start]
        while (nxt := fallback.get(chain[-1])) is not None and nxt in fallback:
            if nxt in chain:
                raise FallbackLoop(start, [*chain, nxt])
            chain.append(nxt)
    # No loop is left, so every chain ends. One that passes through a saved pool (a save can
    # lengthen the chains of pools that fall back to it) must fit in the hops routing follows.
    saved = set(pool_ids)
    for start in fallback:
        chain = [start]
        while (nxt := fallback.get(chain[-1])) is not None and nxt in fallback:
            chain.append(nxt)
        if len(chain) > MAX_FALLBACK_HOPS + 1 and saved.intersection(chain):
            raise FallbackTooLong([*chain, fallback.get(chain[-1]) or "?"], saved)


async def save_pools(conn: Connection, pools: Sequence[PoolIn], *, created: Sequence[str] = ()) -> None:
    """Create or replace ``pools`` and check them: members exist, ``escalate_to`` names an owner or
    a pool, and no fallback chain loops. Every pool write (API and import) goes through here.

    Runs in the caller's transaction (or a transaction of its own), under :data:`POOLS_LOCK`, so
    the loop check sees every pool save committed before it and none can commit in between.
    ``created``: pools the caller created with the default settings (CSV imports), checked too.
    """
    async with conn.transaction():
        await lock_pools(conn)
        for pool in pools:
            await put_pool(conn, pool)
        for pool in pools:
            await check_escalation(conn, pool)
        await check_fallbacks(conn, [*(p.id for p in pools), *created])


async def import_owners(conn: Connection, data: OwnersFile) -> tuple[int, int]:
    """Load an owners file in one transaction; importing twice changes nothing.

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
    except PoolError as exc:
        if data.origin is None:
            raise
        raise OwnersFileError(f"{data.place(exc.pool, exc.field)}: {exc.detail}") from exc
    return len(data.owners), len(data.pools) + len(data.memberships)
