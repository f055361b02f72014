"""``leadroute webhooks ...``: the endpoint API's operations from a shell, on the database directly
(the arguments are declared in :mod:`leadroute.cli`, which imports this only when it runs).

``list``, ``create URL --event TYPE...``, ``show ID``, ``update ID [--url] [--event...] [--enable|
--disable]``, ``delete ID``, ``rotate ID [--keep-previous-hours H]``, ``deliveries ID [--status]``,
``attempts ID [--event SEQ]``, ``redeliver ID (--event SEQ | --from SEQ --to SEQ)``. What the API
answers, as JSON (``create`` and ``rotate`` print the secret: the only time it is shown).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import msgspec

from leadroute import outbound
from leadroute.config import Settings
from leadroute.errors import CommandError
from leadroute.runtime import utc_now
from leadroute.store.db import Connection, connect
from leadroute.store.migrate import migrate

__all__ = ["webhooks_command"]

Servers = Callable[[Settings], AbstractContextManager[Settings]]


async def _act(conn: Connection, settings: Settings, args: argparse.Namespace) -> Any:  # noqa: PLR0911
    now = utc_now()
    match args.action:
        case "list":
            return await outbound.list_endpoints(conn, now)
        case "create":
            return await outbound.create_webhook(
                conn,
                settings,
                url=args.url,
                events=args.event,
                description=args.description,
                enabled=True,
                now=now,
            )
        case "show":
            return await outbound.get_endpoint(conn, args.id, now)
        case "delete":
            await outbound.delete_webhook(conn, args.id)
            return {"deleted": args.id}
        case "update":
            given = {"url": args.url, "events": args.event, "enabled": args.enabled}
            return await outbound.update_webhook(
                conn, settings, args.id, {k: v for k, v in given.items() if v is not None}, now
            )
        case "rotate":
            return await outbound.rotate_secret(
                conn, settings, args.id, keep_previous_hours=args.keep_previous_hours, now=now
            )
        case "deliveries":
            return await outbound.deliveries(conn, args.id, status=args.status, before=None, limit=args.limit)
        case "attempts":
            return await outbound.attempts(conn, args.id, event=args.event, limit=args.limit)
        case "redeliver":
            if args.event is not None:
                first = last = args.event
            elif args.first is not None and args.last is not None:
                first, last = args.first, args.last
            else:
                raise CommandError("redeliver: give --event SEQ, or --from SEQ --to SEQ")
            return {"endpoint": args.id, "events": await outbound.redeliver(conn, args.id, first, last, now)}
    raise AssertionError(args.action)


def webhooks_command(settings: Settings, args: argparse.Namespace, *, servers: Servers) -> int:
    """Run one ``leadroute webhooks`` action and print what it answers, as JSON."""

    async def run(live: Settings) -> Any:
        assert live.database_url is not None
        conn = await connect(live.database_url)
        try:
            await migrate(conn)
            return await _act(conn, live, args)
        finally:
            await conn.close()

    with servers(settings) as live:
        try:
            result = asyncio.run(run(live))
        except outbound.InvalidWebhook as exc:
            raise CommandError(exc.detail) from None
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(result)).decode() + "\n")
    return 0
