"""Helpers shared by the SLA and workflow tests: rule files with an SLA, more instances, timers.

Owners, pools and leads are built with :mod:`support`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from leadroute.app import create_app
from leadroute.config import Settings
from leadroute.routing import snapshot_from_pg
from leadroute.rules import parse_ruleset
from leadroute.runtime import Clock, Runtime
from leadroute.workflow.scheduler import fire_due_timers
from support import Client, authed


def sla_rules(minutes: int = 30, on_breach: str = "reassign", pool: str = "sales") -> str:
    """Every lead to ``pool``, with an SLA."""
    return f"""
version: 1
description: every lead to one pool, with an SLA
scoring:
  groups:
    fit: {{max: 100}}
  rules:
    - {{id: senior, group: fit, when: 'title =~~ "(?i)\\\\bvp\\\\b"', points: 60}}
qualification:
  - {{id: rest, stage: lead}}
routing:
  rules:
    - {{id: everyone, when: 'true', pool: {pool}}}
  fallback: unassigned
  sla: {{accept_within_minutes: {minutes}, on_breach: {on_breach}}}
"""


def runtime(client: Client) -> Runtime:
    rt: Runtime = client.app.state.runtime
    return rt


@asynccontextmanager
async def instance(settings: Settings, rules: str, clock: Clock, **overrides: Any) -> AsyncIterator[Client]:
    """One more app instance on the same database and Redis (its own pool and scheduler)."""
    app = create_app(
        msgspec.structs.replace(settings, **overrides),
        ruleset=parse_ruleset(rules, path=Path("test.yaml")),
        clock=clock,
    )
    async with authed(app) as client:
        yield client


def steps(view: dict[str, Any]) -> list[dict[str, Any]]:
    """The workflow events of a lead after routing first placed it, in order, each as one mapping:
    ``kind`` (the event type), ``at``, ``actor`` and the payload's fields."""
    moves = {"lead.assigned", "lead.reassigned", "lead.escalated", "lead.queued"}
    workflow = moves | {"lead.accepted", "lead.sla_breached", "lead.closed"}
    history = view["history"]
    first = next(i for i, h in enumerate(history) if h["type"] in moves)
    return [
        {"kind": h["type"], "at": h["at"], "actor": h["actor"], **h["data"]}
        for h in history[first + 1 :]
        if h["type"] in workflow
    ]


def kinds(view: dict[str, Any]) -> list[str]:
    """The workflow event types of a lead after routing first placed it, in order."""
    return [s["kind"] for s in steps(view)]


T = TypeVar("T")


async def in_app(client: Client, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run ``fn(runtime, *args)`` on the app's own event loop (its pools live there), in a thread
    so that several calls, on one app or several, run at the same time."""
    portal = client.blocking_portal
    return await asyncio.to_thread(portal.call, fn, runtime(client), *args)


async def fire(client: Client) -> int:
    """One scheduler pass of this instance at its clock's "now"; how many timers breached."""
    return await in_app(client, fire_due_timers)


async def open_counts(client: Client) -> dict[str, int]:
    """Open leads per owner as Redis holds them."""

    async def read(rt: Runtime) -> dict[str, int]:
        return (await rt.routing.state.read()).open

    return await in_app(client, read)


async def assert_routing_consistent(client: Client) -> None:
    """Redis open counts equal what PostgreSQL implies (what a rebuild would write)."""

    async def both(rt: Runtime) -> tuple[dict[str, int], dict[str, int]]:
        async with rt.db.acquire() as conn:
            expected = await snapshot_from_pg(conn, rt.clock())
        return (await rt.routing.state.read()).open, expected.open

    actual, expected = await in_app(client, both)
    assert actual == expected


def iso(at: datetime) -> str:
    """How the API writes a UTC instant."""
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")
