"""The relay's first half: read the lead's event log in sequence order and fan each event out to
one delivery per endpoint that wants it. Exactly once per (endpoint, event), with no event skipped.

Sequence numbers are taken before commit, so the log can show event N+2 before N+1 has committed
(or N+1 rolled back and never will). The relay keeps a cursor (every event up to it has been fanned
out) and moves it only through events it has seen, in order. A missing number in front of it is a
*gap*: the relay stops there and remembers the ``xmax`` of the snapshot that first showed it.
Every transaction that could still write a number below that point had started by then, so once
``pg_snapshot_xmin`` reaches that ``xmax`` (they have all ended), a number still missing never
comes: the cursor steps over it (see :mod:`leadroute.workflow.log`). Gaps of in-flight
transactions close in milliseconds; only a long-running transaction can hold one open.

Reading the page and the snapshot bounds in one ``REPEATABLE READ`` transaction matters: both
come from the same snapshot, so "missing in this snapshot" and "its xmin" agree. The cursor row is
locked ``FOR UPDATE SKIP LOCKED``, so one instance fans out at a time and the others go on to send;
``ON CONFLICT DO NOTHING`` on (endpoint, event) makes a repeated fan-out harmless.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, NamedTuple

import asyncpg

from leadroute.outbound._payload import EVENT_TYPES
from leadroute.store.db import Connection
from leadroute.store.queries import QUERIES
from leadroute.workflow.log import LogPage, events_after

__all__ = ["PAGE", "Cursor", "advance", "fan_out"]

PAGE: Final = 500
"""Events read per page; one pass reads pages until it reaches the end or a gap."""
_WANTED: Final = frozenset(EVENT_TYPES)


class Cursor(NamedTuple):
    """Where the relay is: every event up to ``last_seq`` is fanned out; numbers below
    ``gap_below`` that were missing were missing in a snapshot whose xmax was ``gap_xmax``."""

    last_seq: int
    gap_below: int | None = None
    gap_xmax: int | None = None


def advance(cursor: Cursor, page: LogPage) -> Cursor:
    """Move the cursor through ``page`` (events after ``cursor.last_seq``, in order): up to the
    first open gap. A pure function of the page and its snapshot bounds."""
    closed = cursor.gap_below is not None and cursor.gap_xmax is not None and page.xmin >= cursor.gap_xmax
    gone_below = cursor.gap_below if closed and cursor.gap_below is not None else 0
    last = cursor.last_seq
    gap_below, gap_xmax = cursor.gap_below, cursor.gap_xmax
    for event in page.events:
        if event.seq > last + 1 and event.seq > gone_below:
            # numbers last+1 .. seq-1 are missing; those below gone_below never come
            last = max(last, gone_below - 1)
            if event.seq > last + 1:
                if gap_below is None or closed or gap_below <= last + 1:  # none, or no longer of use
                    gap_below, gap_xmax = event.seq, page.xmax
                break
        last = event.seq
    return Cursor(last, gap_below, gap_xmax)


async def fan_out(conn: Connection, now: datetime, *, page_size: int = PAGE) -> int:
    """One pass: fan out every event the cursor can reach; returns the deliveries made (0 when
    another instance holds the cursor). Call with a connection outside any transaction."""
    await conn.execute(QUERIES["outbound_relay_ensure"])
    made = 0
    while True:
        try:
            moved, added = await _page(conn, now, page_size)
        except asyncpg.SerializationError:
            return made  # another instance moved the cursor since this snapshot: it is doing this
        made += added
        if not moved:
            return made


async def _page(conn: Connection, now: datetime, page_size: int) -> tuple[bool, int]:
    """One page in one snapshot: (the page was full and the cursor moved, deliveries made)."""
    async with conn.transaction(isolation="repeatable_read"):
        row = await conn.fetchrow(QUERIES["outbound_relay_lock"])
        if row is None:
            return False, 0
        cursor = Cursor(row["last_seq"], row["gap_below"], row["gap_xmax"])
        page = await events_after(conn, cursor.last_seq, page_size)
        moved = advance(cursor, page)
        events = [e for e in page.events if e.seq <= moved.last_seq and e.type in _WANTED]
        added = 0
        if events:
            status = await conn.execute(
                QUERIES["outbound_fan_out"],
                [e.seq for e in events],
                [e.lead_id for e in events],
                [e.type for e in events],
                now,
            )
            added = int(status.rsplit(" ", 1)[-1])
        if moved != cursor:
            await conn.execute(QUERIES["outbound_relay_save"], *moved)
    return len(page.events) == page_size and moved.last_seq > cursor.last_seq, added
