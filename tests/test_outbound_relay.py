"""The relay's read of the log: in sequence order, never past an event that may still commit,
and past a number that never will (a rolled-back transaction) once every older transaction ended."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

from conftest import FakeClock
from leadroute.config import Settings
from leadroute.outbound._fanout import Cursor, advance
from leadroute.workflow.log import LeadClosed, LogEvent, LogPage
from outbound_support import create_endpoint, receiver, relay_pass
from sla_support import instance, sla_rules
from support import connection, lead, owner, pool, post_one

AT = datetime(2026, 1, 1, tzinfo=UTC)


def page(seqs: list[int], xmin: int, xmax: int) -> LogPage:
    events = [
        LogEvent(
            seq=s,
            lead_id=uuid.uuid4(),
            type="lead.closed",
            at=AT,
            actor="system",
            version=1,
            data=LeadClosed(),
        )
        for s in seqs
    ]
    return LogPage(events=events, xmin=xmin, xmax=xmax)


class TestAdvance:
    """The cursor moves through contiguous numbers and stops at a gap until its snapshot is past."""

    def test_contiguous_events_move_the_cursor(self) -> None:
        assert advance(Cursor(10), page([11, 12, 13], 100, 105)) == Cursor(13)

    def test_a_gap_stops_the_cursor_and_is_remembered_with_the_snapshot(self) -> None:
        assert advance(Cursor(10), page([11, 13], 100, 105)) == Cursor(11, 13, 105)

    def test_a_gap_that_fills_is_passed_in_order(self) -> None:
        assert advance(Cursor(11, 13, 105), page([12, 13], 101, 106)) == Cursor(13, 13, 105)

    def test_an_open_gap_holds_while_older_transactions_may_still_commit(self) -> None:
        assert advance(Cursor(11, 13, 105), page([13], 104, 107)) == Cursor(11, 13, 105)

    def test_a_gap_whose_transactions_all_ended_is_stepped_over(self) -> None:
        assert advance(Cursor(11, 13, 105), page([13, 14], 105, 108)) == Cursor(14, 13, 105)

    def test_stepping_over_stops_at_a_newer_gap(self) -> None:
        assert advance(Cursor(11, 13, 105), page([16], 105, 110)) == Cursor(12, 16, 110)


class TestGapsInTheLog:
    """Against PostgreSQL: an uncommitted event holds back the ones after it; a rolled-back one
    does not hold them back for long."""

    async def test_uncommitted_then_committed_then_rolled_back(
        self, settings: Settings, clean: None, clock: FakeClock
    ) -> None:
        with receiver() as got:
            async with instance(settings, sla_rules(), clock, webhook_allow_private=True) as client:
                await owner(client, "ann")
                await pool(client, "sales", ["ann"])
                lead_id = (await post_one(client, lead(1)))["lead_id"]
                await create_endpoint(client, got.url, ["lead.closed"])
                async with connection(settings) as slow, connection(settings) as other:
                    held = slow.transaction()
                    await held.start()
                    first = await slow.fetchval(
                        "INSERT INTO lead_events (lead_id, kind, payload) VALUES ($1, 'lead.closed', $2)"
                        " RETURNING id",
                        uuid.UUID(lead_id),
                        {"reason": "first"},
                    )
                    await other.execute(
                        "INSERT INTO lead_events (lead_id, kind, payload) VALUES ($1, 'lead.closed', $2)",
                        uuid.UUID(lead_id),
                        {"reason": "second"},
                    )
                    await relay_pass(client)
                    assert got.requests == []  # the second waits for the first
                    await held.commit()
                    await relay_pass(client)
                    assert [r.json()["data"]["event"]["reason"] for r in got.wait_for(2)] == [
                        "first",
                        "second",
                    ]

                    rolled = slow.transaction()
                    await rolled.start()
                    gone = await slow.fetchval(
                        "INSERT INTO lead_events (lead_id, kind, payload) VALUES ($1, 'lead.closed', $2)"
                        " RETURNING id",
                        uuid.UUID(lead_id),
                        {"reason": "never"},
                    )
                    assert gone > first
                    await other.execute(
                        "INSERT INTO lead_events (lead_id, kind, payload) VALUES ($1, 'lead.closed', $2)",
                        uuid.UUID(lead_id),
                        {"reason": "third"},
                    )
                    await relay_pass(client)
                    assert len(got.requests) == 2
                    await rolled.rollback()
                    # the gap closes once every transaction older than the pass that first saw it
                    # has ended: anything else running on the server (other databases included)
                    # can hold that back for a while, so pass until it has
                    deadline = time.monotonic() + 30
                    while len(got.requests) < 3 and time.monotonic() < deadline:
                        await relay_pass(client)
                        await asyncio.sleep(0.2)
                    assert [r.json()["data"]["event"]["reason"] for r in got.wait_for(3)][-1] == "third"
