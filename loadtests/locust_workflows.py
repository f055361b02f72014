"""Locust scenario: each user is one lead's workflow at a time, from the form post to its close.

One workflow, with a pause of the configured pace before each step (default 5-30 s, drawn
uniformly; ``LEADROUTE_LOADTEST_PACE=1-5`` for CI):

1. ``POST /v1/leads`` (201, 202 when routing waits for Redis, 200 with ``merged: true`` when the
   generator repeated a person's email or phone: the workflow ends there); 5 % of clients retry at once
   with the same Idempotency-Key and must get 200 with the same lead.
2. 0-4 activity events, ``POST /v1/events`` (page views of /pricing, /pricing/teams, the blog,
   careers; webinar attendance; email clicks), each with its own Idempotency-Key.
3. If the lead has an owner, one of: **accept** by that owner (60 %), **reassign** to the pool's
   next owner (20 %), or nothing until the SLA timer must have fired (20 %), checked with
   ``GET /v1/leads/{id}``. An accept that comes after a breach already moved the lead is
   answered 409 ``not-current-owner``; the user then reads who owns it now and that owner
   accepts (both counted under their own names, not as failures).
4. ``POST /v1/assignments/{id}/close``.

Then the user starts the next workflow after one more pause, so ``-u N`` keeps N leads in
flight.

**Connections.** The users of one Locust process share one bounded pool of keep-alive
connections (``LEADROUTE_LOADTEST_CONNECTIONS``, default 64), as a load balancer or an API
gateway in front of the service would: 10,000 workflows in flight do not open 10,000 TCP
connections, and a request waits for a free connection (counted in Locust's own latency, not the
service's). **Overload.** A ``503`` with ``Retry-After`` (admission control) is retried after
``max(Retry-After, 1 s x 2^(tries-1))``, capped at :data:`BACKOFF_CAP`, times a random factor in
[1, 2) (jitter), and reported under ``<name> [503]``; refused clients thus come back spread out
and ever more slowly instead of every second. A connection that drops before the answer is sent again, as a
client would, when that is safe (a write with its idempotency key, a read, accept or close),
reported under ``<name> [dropped, resent]``; the reconciliation then proves nothing was written
twice. Everything the service accepted is recorded
(:mod:`loadtests.records`) for the reconciliation in :mod:`loadtests.workflows`.

Settings (environment, read when the first user starts): ``LEADROUTE_LOADTEST_PACE`` (``LO-HI``
seconds), ``LEADROUTE_LOADTEST_SLA_SECONDS`` (60) and ``LEADROUTE_LOADTEST_POLL_SECONDS`` (2,
the service's ``LEADROUTE_SLA_POLL_SECONDS``), ``LEADROUTE_LOADTEST_RECORDS`` (a directory; unset:
nothing recorded), ``LEADROUTE_LOADTEST_KEY`` (sent as ``Authorization: Bearer``),
``LEADROUTE_LOADTEST_SEED``, ``LEADROUTE_LOADTEST_CONNECTIONS`` (keep-alive connections per
Locust process).
"""

from __future__ import annotations

import os
import random
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from geventhttpclient.client import HTTPClientPool
from locust import task  # patches time.sleep to yield to other users (gevent)
from locust.contrib.fasthttp import FastHttpUser

from loadtests.identity import ProcessIdentity, process_identity
from loadtests.leads import make_lead
from loadtests.records import Recorder

__all__ = ["LeadWorkflow", "Pace", "Settings"]

RETRY_SHARE = 0.05
"""Share of leads whose client retries the post with the same Idempotency-Key."""
PATHS = (("accept", 0.6), ("reassign", 0.2), ("breach", 0.2))
"""What happens to an owned lead after its activity: the share of each path."""
MAX_OVERLOAD_RETRIES = 30
BACKOFF_CAP = 60.0
"""Longest wait, in seconds, before retrying a refused (503) request (before jitter)."""
CONNECTIONS = 64
LATE_BREACH_SECONDS = 300.0
"""How late past the SLA and two polls a user still waits to see the breach before failing."""
"""Keep-alive connections per Locust process (``LEADROUTE_LOADTEST_CONNECTIONS``)."""

_PAGES = ("/pricing", "/pricing/teams", "/blog/lead-routing-101", "/careers", "/docs/api", "/")
_CLOSE_REASONS = ("won", "lost: no budget", "lost: competitor", "no response", "duplicate")


class Pace(NamedTuple):
    """Seconds between two steps of a workflow, drawn uniformly from ``[low, high]``."""

    low: float
    high: float

    @classmethod
    def parse(cls, text: str) -> Pace:
        low, _, high = text.partition("-")
        pace = cls(float(low), float(high or low))
        if not 0 <= pace.low <= pace.high:
            raise ValueError(f"pace {text!r}: expected LOW-HIGH seconds with 0 <= LOW <= HIGH")
        return pace


class Settings(NamedTuple):
    pace: Pace
    sla_seconds: float
    poll_seconds: float
    records: Path | None
    key: str | None

    @classmethod
    def from_env(cls, environ: dict[str, str] | os._Environ[str]) -> Settings:
        records = environ.get("LEADROUTE_LOADTEST_RECORDS")
        return cls(
            pace=Pace.parse(environ.get("LEADROUTE_LOADTEST_PACE", "5-30")),
            sla_seconds=float(environ.get("LEADROUTE_LOADTEST_SLA_SECONDS", "60")),
            poll_seconds=float(environ.get("LEADROUTE_LOADTEST_POLL_SECONDS", "2")),
            records=Path(records) if records else None,
            key=environ.get("LEADROUTE_LOADTEST_KEY") or None,
        )


class _Process(NamedTuple):
    identity: ProcessIdentity
    settings: Settings
    recorder: Recorder | None
    connections: HTTPClientPool


_PROCESS: _Process | None = None


def _process(environment: Any) -> _Process:
    """This process's identity, settings and record file (made after the fork, on first use)."""
    global _PROCESS  # noqa: PLW0603  (one per process)
    identity = process_identity(environment)
    if _PROCESS is None or _PROCESS.identity is not identity:
        settings = Settings.from_env(os.environ)
        recorder = None
        if settings.records is not None:
            recorder = Recorder(settings.records, seed=identity.seed, worker=identity.worker)
        size = int(os.environ.get("LEADROUTE_LOADTEST_CONNECTIONS") or CONNECTIONS)
        pool = HTTPClientPool(
            concurrency=size,
            connection_timeout=LeadWorkflow.connection_timeout,
            network_timeout=LeadWorkflow.network_timeout,
        )
        _PROCESS = _Process(identity, settings, recorder, pool)
    return _PROCESS


def backoff(tries: int, retry_after: float, jitter: float) -> float:
    """Seconds before the ``tries``-th retry (1, 2, ...) of a refused request: at least what
    ``Retry-After`` asked, doubling from 1 s with each refusal, capped at :data:`BACKOFF_CAP`,
    times ``jitter`` (drawn from [1, 2))."""
    return max(retry_after, min(BACKOFF_CAP, 2.0 ** (tries - 1))) * jitter


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _problem(body: Any) -> str:
    """The last segment of a problem's ``type`` (``not-current-owner``), or ``""``."""
    if isinstance(body, dict):
        return str(body.get("type") or "").rsplit("/", 1)[-1]
    return ""


def _failure(status: int, answer: Any, error: Any) -> str:
    """A failure's kind: ``HTTP 500 internal`` or, without an answer, the exception's type."""
    if not status:
        return f"{type(error).__name__}: {error}"
    detail = _problem(answer)
    return f"HTTP {status} {detail}".rstrip()


class LeadWorkflow(FastHttpUser):
    """One lead's life at a time, looping: post, activity, accept/reassign/breach, close."""

    def __init__(self, environment: Any) -> None:
        # every user of this process sends through the one bounded pool (made after the fork)
        self.client_pool = _process(environment).connections
        super().__init__(environment)

    def wait_time(self) -> float:
        return self._pause_seconds()

    def on_start(self) -> None:
        process = _process(self.environment)
        self._settings = process.settings
        self._recorder = process.recorder
        self._seed = process.identity.seed
        self._number = next(process.identity.users)
        self._rng = random.Random(f"{self._seed}:{self._number}")  # not `random`: shared after fork
        self._workflows = 0
        self._headers = {"Authorization": f"Bearer {self._settings.key}"} if self._settings.key else {}
        time.sleep(self._rng.uniform(0, self._settings.pace.high))  # users do not all start at once

    def _pause_seconds(self) -> float:
        pace = self._settings.pace
        return self._rng.uniform(pace.low, pace.high)

    def _pause(self) -> None:
        """Wait for the next step (sent on whichever pooled connection is free then)."""
        time.sleep(self._pause_seconds())

    def _record(self, kind: str, **fields: Any) -> None:
        if self._recorder is not None:
            self._recorder.write(kind, **fields)

    @task
    def workflow(self) -> None:
        """One lead, from the form post to its close."""
        posted = self._post_lead()
        if posted is None:
            return
        lead_id, owner, posted_at = posted
        for n in range(self._rng.randint(0, 4)):
            self._pause()
            event = self._activity(lead_id, f"{lead_id}-activity-{n}")
            answer = self._call(
                "POST", "/v1/events", "/v1/events", body=event, key=event["event_id"], expect=(201,)
            )
            if answer is not None:
                self._record("event", key=event["event_id"], lead=lead_id)
                owner = answer.get("owner", owner)
        self._pause()
        if owner is not None:
            self._act(lead_id, str(owner), posted_at)
            self._pause()
        body = {"reason": self._rng.choice(_CLOSE_REASONS)}
        path, name = f"/v1/assignments/{lead_id}/close", "/v1/assignments/{id}/close"
        state = self._call("POST", path, name, body=body)
        if state is not None:
            if state.get("status") != "closed":
                self._fail(name, f"close answered status {state.get('status')}")
            self._record("action", lead=lead_id, action="close", status=state.get("status"))

    def _post_lead(self) -> tuple[str, str | None, float] | None:
        """Post the next lead (and retry it now and then); its id, owner and when it was posted."""
        lead = make_lead(self._seed, self._number * 10_000_000 + self._workflows)
        self._workflows += 1
        key = str(lead["event_id"])
        self._record("sent", key=key)
        posted_at = time.monotonic()
        decision = self._call("POST", "/v1/leads", "/v1/leads", body=lead, key=key, expect=(200, 201, 202))
        if decision is None:
            return None
        lead_id, owner = str(decision["lead_id"]), decision.get("owner")
        self._record("lead", key=key, lead=lead_id, status=decision.get("status"), owner=owner)
        if decision.get("merged"):
            # the generator repeats common emails and phones: this "person" was posted before, and the
            # lead event was merged into their lead (200, docs/intake.md), which the earlier workflow
            # works; this one ends here. Its key is stored with that lead, as the reconcile checks.
            return None
        if self._rng.random() < RETRY_SHARE:
            again = self._call("POST", "/v1/leads", "/v1/leads [retry]", body=lead, key=key, expect=(200,))
            if again is not None and again.get("lead_id") != lead_id:
                self._fail("/v1/leads [retry]", "retry answered another lead")
            elif again is not None:
                self._record("retry", key=key, lead=lead_id)
        return lead_id, owner, posted_at

    def _act(self, lead_id: str, owner: str, posted_at: float) -> None:
        """What the owner does: accept, reassign, or nothing until the SLA breach."""
        path = self._rng.choices([p for p, _ in PATHS], [w for _, w in PATHS])[0]
        if path == "accept":
            self._accept(lead_id, owner)
        elif path == "reassign":
            state = self._call(
                "POST",
                f"/v1/assignments/{lead_id}/reassign",
                "/v1/assignments/{id}/reassign",
                body={"reason": "load test: wrong territory"},
            )
            if state is not None:
                self._record("action", lead=lead_id, action="reassign", status=state.get("status"))
        else:
            self._await_breach(lead_id, posted_at)

    def _activity(self, lead_id: str, event_id: str) -> dict[str, Any]:
        kind = self._rng.choice(("page_view", "page_view", "page_view", "webinar_attended", "email_click"))
        properties: dict[str, Any] = {}
        if kind == "page_view":
            properties = {"url": "https://leadroute.example" + self._rng.choice(_PAGES)}
            if self._rng.random() < 0.5:
                properties["referrer"] = self._rng.choice(("google", "linkedin", "newsletter", "direct"))
        elif kind == "webinar_attended":
            properties = {"minutes": self._rng.choice((5, 25, 45, 60)), "webinar": "routing-at-scale"}
        else:
            properties = {"campaign": self._rng.choice(("nurture-3", "launch", "webinar-invite"))}
        return {
            "event_id": event_id,
            "lead_id": lead_id,
            "type": kind,
            "occurred_at": _now(),
            "properties": properties,
        }

    def _accept(self, lead_id: str, owner: str) -> None:
        path, name = f"/v1/assignments/{lead_id}/accept", "/v1/assignments/{id}/accept"
        state = self._call("POST", path, name, body={"owner_id": owner}, expect=(200, 409))
        if state is None:
            return
        if state.get("lead_id") == lead_id:  # 200: accepted (a 409 is a problem, without lead_id)
            self._record("action", lead=lead_id, action="accept", status=state.get("status"))
            return
        # 409: an SLA breach moved the lead before its owner got to it; who has it now?
        story = self._call("GET", f"/v1/leads/{lead_id}", "/v1/leads/{id}")
        if story is None:
            return
        now_owner = story.get("owner")
        breached = any(t.get("status") == "fired" for t in story.get("workflow", {}).get("timers", []))
        if now_owner == owner or not breached:
            self._fail(name, f"409 {_problem(state)} for the current owner, without a breach")
            return
        self._record("conflict", lead=lead_id, what=_problem(state))
        if now_owner is not None and story.get("status") not in ("closed", "unassigned"):
            late = self._call("POST", path, name + " [new owner]", body={"owner_id": now_owner})
            if late is not None:
                self._record("action", lead=lead_id, action="accept", status=late.get("status"))

    def _await_breach(self, lead_id: str, posted_at: float) -> None:
        """Nobody accepts: wait past the SLA and the scheduler's poll, then the breach must show."""
        s = self._settings
        deadline = posted_at + s.sla_seconds + 2 * s.poll_seconds + 5
        time.sleep(max(0.0, deadline - time.monotonic()))
        late, wait = False, 5.0
        while True:
            story = self._call("GET", f"/v1/leads/{lead_id}", "/v1/leads/{id}")
            if story is None:
                return
            timers = story.get("workflow", {}).get("timers", [])
            if story.get("status") == "closed" or any(t.get("status") == "fired" for t in timers):
                break
            # not yet: an overloaded service fires timers late (its lateness is in the table);
            # look again, ever less often, and fail only past LATE_BREACH_SECONDS
            if time.monotonic() + wait > deadline + LATE_BREACH_SECONDS:
                self._fail(
                    "sla breach",
                    f"no SLA timer fired within the SLA, two scheduler polls and {LATE_BREACH_SECONDS:g} s",
                )
                return
            late = True
            time.sleep(wait)
            wait = min(wait * 2, 60.0)
        action = "breach (seen late)" if late else "breach"
        self._record("action", lead=lead_id, action=action, status=story.get("status"))

    def _fail(self, name: str, message: str) -> None:
        self.environment.events.request.fire(
            request_type="CHECK",
            name=name,
            response_time=0,
            response_length=0,
            exception=AssertionError(message),
            context={},
        )

    def _call(
        self,
        method: str,
        path: str,
        name: str,
        *,
        body: Any = None,
        key: str | None = None,
        expect: tuple[int, ...] = (200,),
    ) -> dict[str, Any] | None:
        """Send one request (retrying 503s after their Retry-After); its JSON body, or None if it failed."""
        headers = dict(self._headers)
        if key is not None:
            headers["Idempotency-Key"] = key
        # what a client may safely send again when the connection drops before the answer: a write
        # with its idempotency key, a read, and accept/close (repeating one answers the same)
        resendable = key is not None or method == "GET" or path.endswith(("/accept", "/close"))
        refused = 0
        for _ in range(MAX_OVERLOAD_RETRIES):
            with self.client.request(
                method, path, name=name, json=body, headers=headers, catch_response=True
            ) as response:
                status = response.status_code
                retry_after = response.headers.get("Retry-After") if response.headers else None
                if status == 503 and retry_after is not None:
                    response.request_meta["name"] = f"{name} [503]"
                    response.success()
                    self._record("overload", name=name, retry_after=retry_after)
                    refused += 1
                    delay = backoff(refused, float(retry_after), self._rng.uniform(1, 2))
                elif status == 0 and resendable:  # the connection dropped: send the same again
                    response.request_meta["name"] = f"{name} [dropped, resent]"
                    response.success()
                    self._record("dropped", name=name)
                    delay = self._rng.uniform(0.1, 0.5)
                else:
                    try:
                        answer = response.json() if response.content else None
                    except ValueError:
                        answer = None
                    if status not in expect:
                        response.failure(_failure(status, answer, getattr(response, "error", None)))
                        return None
                    if status == 409:
                        response.request_meta["name"] = f"{name} [409 {_problem(answer)}]"
                    response.success()
                    return answer if isinstance(answer, dict) else {}
            time.sleep(delay)
        self._fail(name, f"still 503 after {MAX_OVERLOAD_RETRIES} tries")
        return None
