"""``leadroute keys``: create, list, rotate, revoke and generate API keys from the command line.

A token is printed on stdout and nothing else is, so ``KEY=$(leadroute keys create ...)`` works;
what was done is said on stderr. The actor recorded in the audit trail is ``cli:<user>@<host>``.
"""

from __future__ import annotations

import argparse
import getpass
import re
import socket
import sys

from leadroute.access._bootstrap import create_key, rotate
from leadroute.access._scopes import ORIGIN_PATTERN, SCOPES
from leadroute.access._tokens import format_key, new_id, new_secret
from leadroute.errors import CommandError
from leadroute.store.db import Connection
from leadroute.store.keys import StoredKey, list_keys, revoke_key

__all__ = ["add_parsers", "cli_actor", "run_keys"]


def cli_actor() -> str:
    """Who acts from the command line: ``cli:<user>@<host>``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}@{socket.gethostname()}"


def add_parsers(keys: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``leadroute keys`` actions; each sets ``keys_action``."""
    create = keys.add_parser("create", help="create a key; prints it once, on stdout")
    create.add_argument("--name", required=True, help="what the key is for (a person, a form, a service)")
    create.add_argument(
        "--scope", action="append", required=True, choices=SCOPES, dest="scopes", help="repeat for several"
    )
    create.add_argument(
        "--origin",
        action="append",
        default=[],
        dest="origins",
        metavar="URL",
        help="a browser origin the key may be used from (https://www.example.com); repeat for several",
    )
    create.set_defaults(keys_action="create")
    keys.add_parser("list", help="every key (never its secret)").set_defaults(keys_action="list")
    rotate_ = keys.add_parser("rotate", help="give a key a new secret; prints it once, on stdout")
    rotate_.add_argument("key_id", metavar="ID")
    rotate_.set_defaults(keys_action="rotate")
    revoke = keys.add_parser("revoke", help="revoke a key for good")
    revoke.add_argument("key_id", metavar="ID")
    revoke.set_defaults(keys_action="revoke")
    keys.add_parser(
        "generate", help="print a new well-formed key without storing it (for LEADROUTE_ADMIN_KEY)"
    ).set_defaults(keys_action="generate")


def _check_origins(origins: list[str]) -> list[str]:
    for origin in origins:
        if not re.fullmatch(ORIGIN_PATTERN, origin):
            raise CommandError(
                f"--origin {origin!r}: expected scheme://host[:port], no path (https://www.example.com)"
            )
    return sorted(set(origins))


def _row(key: StoredKey) -> str:
    state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "live"
    origins = ",".join(key.origins) or "-"
    return f"{key.id}  {state:<22}  {','.join(key.scopes):<40}  {origins}  {key.name}"


async def run_keys(conn: Connection, args: argparse.Namespace) -> int:
    """Run one ``leadroute keys`` action on ``conn``."""
    actor = cli_actor()
    match args.keys_action:
        case "create":
            stored, token = await create_key(
                conn,
                name=args.name,
                scopes=sorted(set(args.scopes)),
                origins=_check_origins(args.origins),
                actor=actor,
            )
            print(token)
            print(
                f"created key {stored.id} ({', '.join(stored.scopes)}); it is shown only this once",
                file=sys.stderr,
            )
        case "list":
            for key in await list_keys(conn):
                print(_row(key))
        case "rotate":
            stored, token = await rotate(conn, args.key_id, actor=actor)
            print(token)
            print(f"rotated key {stored.id}: the old secret stops working within seconds", file=sys.stderr)
        case "revoke":
            stored = await revoke_key(conn, args.key_id, actor=actor)
            print(f"revoked key {stored.id} ({stored.name})", file=sys.stderr)
        case "generate":
            print(format_key(new_id(), new_secret()))
    return 0
