"""Post a demo history to a running leadroute: leads, then activity events for some of them.

So that ``leadroute rules replay``, ``POST /v1/simulate`` with a ``lead_id`` and ``explain``
have something to show on a fresh install::

    ./scripts/demo-leads                 # 300 leads to http://127.0.0.1:8000
    ./scripts/demo-leads --count 1000 --url http://127.0.0.1:8001
    LR_API_KEY=lr_live_... ./scripts/demo-leads   # a key with the leads:write scope

The key is ``LR_API_KEY``, else the embedded default's ``.leadroute/admin.key`` (``--key-file``).

It goes through the public API, as web forms and CRMs do, with an idempotency key per lead
derived from the demo seed: running it twice posts nothing new (a lead the service already has
is reported as it is now, and its activities are not posted again). Leads come from
``loadtests.leads`` (synthetic people and companies, some from web forms); about 40% get one to
four activities from the last 30 days (pricing, blog and careers page views, webinars, email
clicks), which the default ruleset scores with decay.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import httpx

from loadtests.auth import DEFAULT_KEY_FILE, auth_headers
from loadtests.leads import Lead, make_lead

__all__ = ["demo_activities", "demo_lead", "main"]

SEED = 20261201
"""The demo's seed: the same leads and events on every run and every machine."""

_PAGES = ("/pricing", "/pricing/teams", "/blog/lead-routing-101", "/careers", "/docs/api", "/")


def demo_lead(index: int) -> Lead:
    """The ``index``-th demo lead (``loadtests.leads``, with the demo's seed)."""
    return make_lead(SEED, index)


def demo_activities(index: int, lead_id: str, now: datetime) -> list[dict[str, Any]]:
    """The activity events of the ``index``-th demo lead (none for most), dated before ``now``."""
    rng = random.Random(f"{SEED}:activity:{index}")
    if rng.random() >= 0.4:
        return []
    events = []
    for n in range(rng.randint(1, 4)):
        when = now - timedelta(days=rng.uniform(0, 30))
        kind = rng.choice(("page_view", "page_view", "webinar_attended", "email_click"))
        properties: dict[str, Any] = {}
        if kind == "page_view":
            properties["url"] = "https://leadroute.example" + rng.choice(_PAGES)
        elif kind == "webinar_attended":
            properties["minutes"] = rng.choice((5, 25, 45, 60))
        events.append(
            {
                "event_id": f"demo-{SEED}-{index}-activity-{n}",
                "lead_id": lead_id,
                "type": kind,
                "occurred_at": when.isoformat().replace("+00:00", "Z"),
                "properties": properties,
            }
        )
    return events


class _Posted(NamedTuple):
    stage: str | None  # None: the lead was refused
    pool: str
    events: int
    failures: list[str]
    new: bool = True


def _post(client: httpx.Client, index: int, now: datetime) -> _Posted:
    """Post one demo lead and its activities; what the service said."""
    lead = demo_lead(index)
    r = client.post("/v1/leads", json=lead, headers={"Idempotency-Key": f"demo-{SEED}-{index}"})
    if r.status_code not in (200, 201):
        return _Posted(None, "", 0, [f"lead {index}: {r.status_code} {r.text[:200]}"])
    decision = r.json()
    stage, pool = decision["stage"], decision["pool"] or "(queue)"
    if r.status_code == 200:  # stored by an earlier run, with its activities: report it as it is now
        now_stored = client.get(f"/v1/leads/{decision['lead_id']}").json()
        return _Posted(now_stored["stage"], now_stored["pool"] or "(queue)", 0, [], new=False)
    events, failures = 0, []
    for event in demo_activities(index, decision["lead_id"], now):
        e = client.post("/v1/events", json=event, headers={"Idempotency-Key": event["event_id"]})
        if e.status_code not in (200, 201):
            failures.append(f"lead {index} event: {e.status_code} {e.text[:200]}")
            continue
        events += 1
        stage, pool = e.json()["stage"], e.json()["pool"] or "(queue)"
    return _Posted(stage, pool, events, failures)


def main(argv: Sequence[str] | None = None) -> int:
    """Post the demo history and print what the service decided; exit 1 if anything failed."""
    parser = argparse.ArgumentParser(
        prog="demo-leads", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--count", type=int, default=300, help="how many leads (default 300)")
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the service (default %(default)s)")
    parser.add_argument(
        "--key-file",
        type=Path,
        default=DEFAULT_KEY_FILE,
        help="the API key's file when LR_API_KEY is not set (default %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be at least 1")
    now = datetime.now(UTC)
    with httpx.Client(base_url=args.url, timeout=30, headers=auth_headers(args.key_file)) as client:
        try:
            client.get("/health/ready").raise_for_status()
        except httpx.HTTPError as exc:
            print(
                f"demo-leads: {args.url} is not ready ({exc}); start it with ./scripts/serve", file=sys.stderr
            )
            return 1
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda index: _post(client, index, now), range(args.count)))

    stages = Counter(r.stage for r in results if r.stage is not None)
    pools = Counter(r.pool for r in results if r.stage is not None)
    failures = [failure for r in results for failure in r.failures]
    posted_events = sum(r.events for r in results)
    new = sum(1 for r in results if r.stage is not None and r.new)
    print(
        f"posted {new} new leads ({sum(stages.values()) - new} were there already) and "
        f"{posted_events} activity events to {args.url}"
    )
    print("  stages: " + ", ".join(f"{k} {v}" for k, v in stages.most_common()))
    print("  pools:  " + ", ".join(f"{k} {v}" for k, v in pools.most_common()))
    for failure in failures[:10]:
        print(f"  failed: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
