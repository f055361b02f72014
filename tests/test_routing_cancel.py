"""A request cancelled while its routing claim is in flight leaves Redis equal to PostgreSQL.

The claim is a Lua script: Redis may have run it (a slot taken) when the caller is cancelled (its
client went away, a shutdown) before the answer is read. Nothing records that claim, so the
rollback cannot give it back; the script's answer must be waited for and the slot freed.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import msgspec

from leadroute.config import Settings
from leadroute.runtime import Runtime
from leadroute.workflow.actions import close
from leadroute.workflow.intake import IntakeResult, prepare_lead, record_lead
from leadroute.workflow.runner import Change, run
from sla_support import assert_routing_consistent, in_app, open_counts
from support import POOL_RULES, authed, lead, open_per_owner, owner, pool, post_one


async def submit_lead(rt: Runtime, body: bytes, key: str | None) -> IntakeResult:
    """Intake through :func:`run` itself, in a transaction of its own: what these tests cancel is
    the runner's step. (Intake's group commit, ``run_grouped``, shields its callers' cancellation
    altogether: tests/test_group_commit.py.)"""
    prepared = prepare_lead(rt, body, key)

    async def step(ch: Change) -> IntakeResult:
        return await record_lead(ch, rt, prepared)

    return await run(rt, step, actor="api")


ANSWER_DELAY = 0.3
"""Seconds the claim script's answer takes after Redis ran it (the window a cancel falls in)."""


async def _cancel_mid_claim(rt: Runtime, body: bytes, point: str) -> None:
    """Submit ``body`` and cancel it at ``point``: ``claim`` (Redis ran the claim script, its
    answer is on the way) or ``account`` (claimed, recording the account owner)."""
    state = rt.routing.state
    reached = asyncio.Event()
    real_script = state._scripts["round_robin"]
    real_account = state.set_account_owner

    async def slow_answer(*, keys: Any, args: Any) -> Any:
        raw = await real_script(keys=keys, args=args)  # Redis claimed the slot here
        reached.set()
        await asyncio.sleep(ANSWER_DELAY)
        return raw

    async def slow_account(domain: str, owner_id: str) -> None:
        reached.set()
        await asyncio.sleep(ANSWER_DELAY)
        await real_account(domain, owner_id)

    if point == "claim":
        state._scripts["round_robin"] = slow_answer  # type: ignore[assignment]
    else:
        state.set_account_owner = slow_account  # type: ignore[method-assign, assignment]
    try:
        task = asyncio.ensure_future(submit_lead(rt, body, None))
        await reached.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert task.cancelled()
        await asyncio.sleep(ANSWER_DELAY * 3)  # the script answers; its slot is given back
    finally:
        state._scripts["round_robin"] = real_script
        state.set_account_owner = real_account  # type: ignore[method-assign]


class TestCancelledClaim:
    async def test_cancel_while_the_claim_script_answers(self, make_app: Any, settings: Settings) -> None:
        async with authed(make_app(POOL_RULES)) as client:
            await owner(client, "ann", capacity={"max_open": 1})
            await pool(client, "sales", ["ann"])
            await in_app(client, _cancel_mid_claim, msgspec.json.encode(lead(1)), "claim")
            # nothing was stored, and Redis agrees: ann's one slot is free
            assert await open_per_owner(settings) == {}
            assert await open_counts(client) == {}
            await assert_routing_consistent(client)
            assert (await post_one(client, lead(2)))["owner"] == "ann"
            await assert_routing_consistent(client)

    async def test_cancel_while_the_account_owner_is_recorded(
        self, make_app: Any, settings: Settings
    ) -> None:
        async with authed(make_app(POOL_RULES)) as client:
            await owner(client, "ann", capacity={"max_open": 1})
            await pool(client, "sales", ["ann"])
            await in_app(client, _cancel_mid_claim, msgspec.json.encode(lead(1, "acme.example")), "account")
            assert await open_per_owner(settings) == {}
            assert await open_counts(client) == {}
            await assert_routing_consistent(client)
            assert (await post_one(client, lead(2)))["owner"] == "ann"

    async def test_many_cancelled_at_random_points(self, make_app: Any, settings: Settings) -> None:
        """Concurrent intakes, each cancelled after a different delay (before, during or after
        its claim, its writes or its COMMIT): whatever committed is counted in Redis once, and
        whatever rolled back is not counted at all. A step cancelled while its COMMIT was on the
        way waits for its outcome: committed, it keeps its claim (and still raises the cancel)."""
        async with authed(make_app(POOL_RULES)) as client:
            for ident in ("ann", "ben", "cy"):
                await owner(client, ident, capacity={"max_open": 50})
            await pool(client, "sales", ["ann", "ben", "cy"])

            async def storm(rt: Runtime) -> int:
                tasks = [
                    asyncio.ensure_future(submit_lead(rt, msgspec.json.encode(lead(n)), None))
                    for n in range(40)
                ]
                for n, task in enumerate(tasks):
                    await asyncio.sleep(0.002 * (n % 7))
                    task.cancel()
                done = await asyncio.gather(*tasks, return_exceptions=True)
                await asyncio.sleep(0.5)
                return sum(1 for d in done if not isinstance(d, BaseException))

            answered = await in_app(client, storm)
            stored = await open_per_owner(settings)
            assert 0 < answered <= sum(stored.values()) < 40
            await assert_routing_consistent(client)

    async def test_cancel_while_a_committed_close_frees_the_slot(
        self, make_app: Any, settings: Settings
    ) -> None:
        """The close committed; the cancel lands while its owner's slot is being freed in Redis
        (a shutdown cancelling the scheduler or a request): the slot is still freed."""
        async with authed(make_app(POOL_RULES)) as client:
            await owner(client, "ann", capacity={"max_open": 1})
            await pool(client, "sales", ["ann"])
            lead_id = (await post_one(client, lead(1)))["lead_id"]
            assert await open_counts(client) == {"ann": 1}

            async def cancel_mid_release(rt: Runtime) -> None:
                router = rt.routing
                real = router.release
                reached = asyncio.Event()

                async def slow_release(releases: Any) -> None:
                    reached.set()
                    await asyncio.sleep(ANSWER_DELAY)
                    await real(releases)

                router.release = slow_release  # type: ignore[method-assign]
                try:
                    task = asyncio.ensure_future(close(rt, uuid.UUID(lead_id), "won"))
                    await reached.wait()
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                    assert task.cancelled()  # the caller still learns it was cancelled
                finally:
                    router.release = real  # type: ignore[method-assign]

            await in_app(client, cancel_mid_release)
            assert (await client.get(f"/v1/leads/{lead_id}")).json()["status"] == "closed"
            assert await open_counts(client) == {}
            await assert_routing_consistent(client)
            assert (await post_one(client, lead(2)))["owner"] == "ann"
