"""Locust scenario: users posting generated leads to ``/v1/leads``, with some client retries.

Run headless against a local server::

    .venv/bin/locust -f loadtests/locustfile.py --headless -u 50 -r 10 -t 30s --host http://127.0.0.1:8000

Several processes (``--processes N``) each draw their own seed after the fork, so they never post
the same leads or keys (``LEADROUTE_LOADTEST_SEED`` fixes the run's seed; unset, it is random).
``LEADROUTE_LOADTEST_KEY``, when set, is sent as ``Authorization: Bearer <key>``.

Each lead is posted with its ``event_id`` as the ``Idempotency-Key`` and must come back
``201 Created`` (or ``200`` with ``merged: true`` when the generator repeated an email or phone:
the same person, merged into their lead); about 5% of requests re-post one of the user's
earlier leads with the same key, as a client retry would, and must come back ``200 OK`` with
the same decision. Every response must carry ``lead_id``, ``stage`` and ``score``.

Each simulated client waits 0.1-1 s between requests, like a busy form or CRM sync; with
``LEADROUTE_LOADTEST_THINK_TIME=0`` it posts the next lead as soon as the last one is answered,
which measures what the service sustains (``loadtests/bench_workers.py`` does).
"""

from __future__ import annotations

import os
import random
from collections import deque
from typing import Any

from locust import between, constant, task
from locust.contrib.fasthttp import FastHttpUser

from loadtests.auth import auth_headers
from loadtests.identity import process_identity
from loadtests.leads import Lead, make_lead

__all__ = ["LeadPoster"]

RETRY_SHARE = 0.05
"""Share of requests that re-post an earlier lead with the same Idempotency-Key."""

_REQUIRED = ("lead_id", "stage", "score")
_KEY = os.environ.get("LEADROUTE_LOADTEST_KEY")


_AUTH = {"Authorization": f"Bearer {_KEY}"} if _KEY else auth_headers()  # else LR_API_KEY or the key file


class LeadPoster(FastHttpUser):
    """One lead source: posts new leads, and now and then retries one it sent before."""

    wait_time = constant(0) if os.environ.get("LEADROUTE_LOADTEST_THINK_TIME") == "0" else between(0.1, 1)

    def on_start(self) -> None:
        """Give this user its own slice of lead indexes and a short memory of what it sent.

        The seed and user numbers are this process's (:mod:`loadtests.identity`): with
        ``--processes N`` each forked process posts leads and keys of its own.
        """
        identity = process_identity(self.environment)
        self._seed = identity.seed
        self._user = next(identity.users)
        self._rng = random.Random(f"{self._seed}:{self._user}")
        self._sent = 0
        self._recent: deque[tuple[Lead, dict[str, Any]]] = deque(maxlen=20)

    @task
    def post_lead(self) -> None:
        """Post a new lead (201; 200 with ``merged: true`` when the generator repeated an email or
        phone, docs/intake.md), or retry an earlier one with the same key (200, same decision)."""
        if self._recent and self._rng.random() < RETRY_SHARE:
            lead, first = self._rng.choice(self._recent)
            self._post(lead, expect=(200,), name="/v1/leads [retry]", first=first)
            return
        lead = make_lead(self._seed, self._user * 10_000_000 + self._sent)
        self._sent += 1
        decision = self._post(lead, expect=(200, 201), name="/v1/leads")
        if decision is not None:
            self._recent.append((lead, decision))

    def _post(
        self, lead: Lead, *, expect: tuple[int, ...], name: str, first: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        headers = {"Idempotency-Key": str(lead["event_id"])} | _AUTH
        with self.client.post(
            "/v1/leads", json=lead, headers=headers, name=name, catch_response=True
        ) as response:
            if response.status_code not in expect:
                response.failure(f"expected {' or '.join(map(str, expect))}, got {response.status_code}")
                return None
            try:
                decision = response.json()
            except ValueError:
                response.failure("response is not JSON")
                return None
            missing = [key for key in _REQUIRED if not isinstance(decision, dict) or key not in decision]
            if missing:
                response.failure(f"response lacks {', '.join(missing)}")
                return None
            if first is not None and decision.get("lead_id") != first.get("lead_id"):
                response.failure("retry returned a different lead_id")
                return None
            if first is None and response.status_code == 200 and decision.get("merged") is not True:
                response.failure("a new lead answered 200 without merged: true")
                return None
            response.success()
            return dict(decision)
