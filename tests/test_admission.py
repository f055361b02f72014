"""Admission control: Retry-After of an overloaded worker follows its load (the estimate alone,
with a fake clock; the 503 itself is tested over HTTP in test_workflow_log.TestAdmission), and
the work of a client that left before its transaction started is dropped; while SLA timers are
late, fewer requests are admitted."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from litestar.exceptions import InternalServerException

from conftest import FakeClock
from leadroute.api.admission import BEHIND_LIMIT, RETRY_AFTER_CAP, WINDOW, AdmissionControl, InFlight
from leadroute.api.problems import problem_for
from leadroute.config import Settings
from leadroute.workflow.scheduler import background_pass
from process_support import Served
from sla_support import in_app, instance, iso, runtime, sla_rules
from support import AUTH, POOL_RULES, connection, count, lead, owner, pool, post_one


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def serve(gate: InFlight, clock: Clock, *, seconds: float, finished: int, refused: int) -> list[int]:
    """``finished`` requests answered and ``refused`` refused, spread over ``seconds``; the
    Retry-After of each refusal."""
    answers = []
    steps = finished + refused
    for i in range(steps):
        clock.now += seconds / steps
        if i < finished:
            gate.count += 1
            gate.finished()
        else:
            answers.append(gate.retry_after())
    return answers


class TestRetryAfter:
    def test_a_quiet_worker_says_one_second(self) -> None:
        clock = Clock()
        gate = InFlight(1, clock)
        gate.count = 1
        clock.now += 0.2
        assert gate.retry_after() == 1

    def test_it_grows_with_what_is_in_flight_and_refused_against_throughput(self) -> None:
        clock = Clock()
        gate = InFlight(256, clock)
        gate.count = 256
        # a whole window at 150 answers/s and 400 refusals/s
        serve(gate, clock, seconds=WINDOW, finished=300, refused=800)
        clock.now += 0.01
        # (256 in flight + ~400 refused per second) / 150 per second = 4.4 -> 5 s
        assert gate.retry_after() == 5

    def test_more_refusals_ask_for_longer(self) -> None:
        answers = []
        for refused in (50, 2000):
            clock = Clock()
            gate = InFlight(64, clock)
            gate.count = 64
            serve(gate, clock, seconds=WINDOW, finished=200, refused=refused)
            clock.now += 0.01
            answers.append(gate.retry_after())
        assert answers[0] < answers[1]

    def test_a_stuck_worker_is_capped(self) -> None:
        clock = Clock()
        gate = InFlight(256, clock)
        gate.count = 256
        serve(gate, clock, seconds=WINDOW, finished=0, refused=500)
        clock.now += 0.01
        assert gate.retry_after() == RETRY_AFTER_CAP

    def test_the_estimate_recovers_when_load_falls(self) -> None:
        clock = Clock()
        gate = InFlight(256, clock)
        gate.count = 256
        serve(gate, clock, seconds=WINDOW, finished=100, refused=2000)
        clock.now += 0.01
        assert gate.retry_after() > 10
        # still full now and then, but answering 300/s and refusing a few
        serve(gate, clock, seconds=WINDOW, finished=600, refused=2)
        serve(gate, clock, seconds=WINDOW, finished=600, refused=2)
        clock.now += 0.01
        assert gate.retry_after() == 1


class TestClientGone:
    """Work for a client that closed its connection while waiting is dropped before it starts."""

    async def test_a_lead_whose_client_left_while_waiting_for_a_connection_is_not_written(
        self, settings: Settings, clean: None, tmp_path: Path
    ) -> None:
        rules = tmp_path / "rules.yaml"
        rules.write_text(POOL_RULES)
        served = Served(
            tmp_path / "serve.log",
            settings,
            rules_path=str(rules),
            db_pool_min="1",
            db_pool_max="1",
            db_acquire_timeout="20",
            sla_poll_seconds="0",
        )
        try:
            served.wait_ready()
            host, port = served.base.removeprefix("http://").split(":")
            async with httpx.AsyncClient(base_url=served.base, timeout=30, headers=AUTH) as http:
                lead_id = (await http.post("/v1/leads", json=lead(1))).json()["lead_id"]
                async with connection(settings) as conn, conn.transaction():
                    await conn.execute("SELECT 1 FROM leads WHERE id = $1 FOR UPDATE", uuid.UUID(lead_id))
                    body = {"lead_id": lead_id, "type": "page_view", "occurred_at": iso(datetime.now(UTC))}
                    held = asyncio.create_task(http.post("/v1/events", json=body))  # holds the one connection
                    await asyncio.sleep(0.5)
                    # a client posts lead 2, waits a moment for its answer, and leaves
                    payload = json.dumps(lead(2)).encode()
                    head = (
                        f"POST /v1/leads HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                        f"Authorization: {AUTH['Authorization']}\r\nContent-Length: {len(payload)}\r\n\r\n"
                    )
                    _, writer = await asyncio.open_connection(host, int(port))
                    writer.write(head.encode() + payload)
                    await writer.drain()
                    await asyncio.sleep(0.5)
                    writer.close()
                    await writer.wait_closed()
                    await asyncio.sleep(0.5)
                assert (await held).status_code == 201  # the lock is gone: the event, then lead 2's turn
                await asyncio.sleep(1.0)
                email = lead(2)["email"]
                assert await count(settings, "SELECT count(*) FROM leads WHERE email = $1", email) == 0
                # a client that waits is served
                assert (await http.post("/v1/leads", json=lead(3))).status_code == 201
        finally:
            served.stop()


class TestTimersFirst:
    """While due SLA timers are late, a worker admits fewer new leads, until they caught up."""

    def test_the_bound_tightens_for_new_leads_while_behind(self) -> None:
        gate = InFlight(256)
        assert gate.limit(new_work=True) == gate.limit() == 256
        gate.backlog.behind = True
        assert gate.limit(new_work=True) == BEHIND_LIMIT
        assert gate.limit() == 256  # accept, close, events: they finish work
        gate.backlog.behind = False
        assert gate.limit(new_work=True) == 256

    async def test_the_scheduler_says_when_timers_are_late_and_when_they_caught_up(
        self, settings: Settings, clean: None, clock: FakeClock
    ) -> None:
        async with instance(settings, sla_rules(30), clock, sla_poll_seconds=0) as client:
            await owner(client, "ann")
            await owner(client, "ben")
            await pool(client, "sales", ["ann", "ben"])
            await post_one(client, lead(1))
            rt = runtime(client)
            await in_app(client, background_pass)
            assert not rt.backlog.behind
            clock.advance(minutes=31)  # due a minute ago: later than a poll and BEHIND_AFTER
            await in_app(client, background_pass)  # sees the late timer, then fires it
            assert rt.backlog.behind
            assert 55 <= rt.backlog.lag_seconds <= 65
            await in_app(client, background_pass)
            assert not rt.backlog.behind

    def test_a_body_cut_off_by_the_client_is_a_499_not_a_logged_500(self) -> None:
        problem = problem_for(InternalServerException("client disconnected prematurely"))
        assert (problem.status, problem.type.rsplit("/", 1)[-1]) == (499, "client-closed-request")
        assert problem_for(InternalServerException("something else")).status == 500

    async def test_while_behind_new_leads_are_refused_and_actions_admitted(self) -> None:
        gate = InFlight(256)
        gate.count = BEHIND_LIMIT  # this many requests already in flight
        gate.backlog.behind = True
        served: list[str] = []

        async def app(scope: Any, receive: Any, send: Any) -> None:
            served.append(scope["path"])

        middleware = AdmissionControl(app, gate=gate)
        sent: list[Any] = []

        async def send(message: Any) -> None:
            sent.append(message)

        async def receive() -> Any:
            return {"type": "http.request", "body": b"{}", "more_body": False}

        def post(path: str) -> Any:  # the fields the middleware reads of an HTTP scope
            return {"type": "http", "method": "POST", "path": path}

        for path in ("/v1/leads", "/v1/assignments/x/accept", "/v1/events"):
            await middleware(post(path), receive, send)
        assert served == ["/v1/assignments/x/accept", "/v1/events"]
        assert sent[0]["status"] == 503
        assert any(name == b"retry-after" for name, _ in sent[0]["headers"])
        gate.backlog.behind = False
        await middleware(post("/v1/leads"), receive, send)
        assert served[-1] == "/v1/leads"
