"""``leadroute leads dedupe [--apply]``: the report of existing duplicates, and merging them.

A dry run by default: it prints each group (its leads, which one survives and why, which stay
apart and why) and changes nothing. ``--apply`` merges the groups it printed, one transaction per
group (:func:`leadroute.workflow.dedupe.apply`), with the fleet's active ruleset, and prints what
it merged. The report names leads by id, owner and status only: it is a terminal report, and lead
ids are what people look up (``GET /v1/leads/{id}``); no email, phone or name is printed.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from contextlib import AbstractContextManager

from leadroute.config import Settings
from leadroute.errors import CommandError
from leadroute.intake.identity import Candidate, GroupPlan
from leadroute.routing import Router
from leadroute.runtime import ActiveRuleset, Runtime
from leadroute.store.db import create_pool
from leadroute.store.migrate import migrate
from leadroute.store.redis_client import redis_client
from leadroute.store.rulesets import active_activation, load_ruleset_by_id
from leadroute.workflow.dedupe import apply, find_duplicates

__all__ = ["leads_dedupe", "report"]

Servers = Callable[[Settings], AbstractContextManager[Settings]]


def _lead(c: Candidate) -> str:
    owner = f"owner {c.owner_id}" if c.owner_id else "no owner"
    created, seen = f"{c.created_at:%Y-%m-%d %H:%M}", f"{c.last_seen_at:%Y-%m-%d}"
    return f"{c.id} ({c.status}, {owner}, created {created}, last seen {seen})"


def report(plans: list[GroupPlan]) -> str:
    """The dry run's text: every group and what ``--apply`` would do with it."""
    mergeable = [p for p in plans if p.survivor is not None]
    lines = [
        f"{len(plans)} group(s) of leads that share an email, phone or name key; "
        f"{len(mergeable)} to merge ({sum(len(p.losers) for p in mergeable)} duplicate(s))"
    ]
    for n, plan in enumerate(plans, 1):
        lines.append(f"\ngroup {n}:")
        if plan.survivor is not None:
            lines.append(f"  keep   {_lead(plan.survivor)}: {plan.reason}")
            lines.extend(f"  merge  {_lead(c)}" for c in plan.losers)
            lines.extend(
                f"  apart  {_lead(c)}: closed or not seen within the re-engagement window" for c in plan.kept
            )
        else:
            lines.append(f"  {plan.reason}")
            lines.extend(f"  apart  {_lead(c)}" for c in plan.kept)
    return "\n".join(lines)


async def _runtime(settings: Settings) -> Runtime:
    assert settings.database_url is not None
    assert settings.redis_url is not None
    db = await create_pool(settings.database_url, min_size=1, max_size=2)
    async with db.acquire() as conn:
        await migrate(conn)
        active = await active_activation(conn)
        loaded = await load_ruleset_by_id(conn, active.ruleset_id) if active is not None else None
    if loaded is None:
        await db.close()
        raise CommandError(
            "no active ruleset yet (a merge rescores leads with it): start `leadroute serve` once, "
            "or `leadroute rules publish` and `leadroute rules activate`"
        )
    redis = redis_client(settings.redis_url)
    routing = Router(redis, settings.redis_prefix, database_url=settings.database_url)
    await routing.ensure_state()
    return Runtime(
        settings=settings, db=db, redis=redis, routing=routing, rules=ActiveRuleset(loaded[0], loaded[1])
    )


async def _run(settings: Settings, *, write: bool) -> str:
    rt = await _runtime(settings)
    try:
        plans = await find_duplicates(rt)
        text = report(plans)
        if not write:
            return text + "\n\ndry run: nothing changed; run with --apply to merge"
        from leadroute.access.commands import cli_actor

        actor = cli_actor()
        done = [a for p in plans if (a := await apply(rt, p, actor=actor)) is not None]
        merged = sum(len(a.merged) for a in done)
        lines = [text, f"\nmerged {merged} duplicate(s) into {len(done)} lead(s)"]
        lines.extend(f"  {a.survivor} <- {', '.join(a.merged)}" for a in done)
        return "\n".join(lines)
    finally:
        await rt.db.close()
        await rt.redis.aclose()


def leads_dedupe(settings: Settings, args: argparse.Namespace, *, servers: Servers) -> int:
    """The ``leads dedupe`` command (see the module docstring)."""
    import asyncio

    with servers(settings) as live:
        print(asyncio.run(_run(live, write=args.apply)))
    return 0
