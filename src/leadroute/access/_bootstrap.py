"""The keys a deployment starts with: ``LEADROUTE_ADMIN_KEY``, or one made on the first start.

``LEADROUTE_ADMIN_KEY`` (a deployment's secret, and the tests) is stored by every instance at
start (idempotent). Without it, the first ``leadroute serve`` of the embedded default that finds
no live key makes an admin key, prints it once on stderr and writes it to
``<data_dir>/admin.key`` (mode 0600): the zero-config way in.
"""

from __future__ import annotations

import os
from pathlib import Path

from leadroute.access._tokens import digest, format_key, new_id, new_secret, parse_key
from leadroute.store.db import Connection
from leadroute.store.keys import StoredKey, any_keys, insert_key, rotate_key, seed_key

__all__ = ["ADMIN_KEY_FILE", "create_key", "first_start_key", "rotate", "seed_admin_key", "write_key_file"]

ADMIN_KEY_FILE = "admin.key"


async def create_key(
    conn: Connection, *, name: str, scopes: list[str], origins: list[str], actor: str
) -> tuple[StoredKey, str]:
    """A new key: what is stored of it, and the token (the only time it exists in the clear)."""
    secret = new_secret()
    while True:
        key_id = new_id()
        stored = await insert_key(
            conn, key_id, name=name, scopes=scopes, origins=origins, secret_sha256=digest(secret), actor=actor
        )
        if stored is not None:
            return stored, format_key(key_id, secret)


async def rotate(conn: Connection, key_id: str, *, actor: str) -> tuple[StoredKey, str]:
    """A new secret for a live key: what is stored of it, and the new token (shown once)."""
    secret = new_secret()
    stored = await rotate_key(conn, key_id, digest(secret), actor=actor)
    return stored, format_key(key_id, secret)


async def seed_admin_key(conn: Connection, token: str) -> None:
    """Store the admin key given by ``LEADROUTE_ADMIN_KEY`` (already checked by Settings)."""
    parsed = parse_key(token)
    assert parsed is not None, "Settings.validate checks LEADROUTE_ADMIN_KEY"
    await seed_key(conn, parsed.id, digest(parsed.secret))


def write_key_file(path: Path, token: str) -> None:
    """Write ``token`` to ``path`` readable by this user only (created 0600, never widened)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        os.fchmod(file.fileno(), 0o600)  # an existing file keeps its mode through O_CREAT
        file.write(token + "\n")


async def first_start_key(conn: Connection, data_dir: Path) -> Path | None:
    """With no live key at all: make an admin key, write it to ``data_dir/admin.key``; its path.

    Runs once, before any worker starts (``leadroute serve``), so two instances never race.
    """
    if await any_keys(conn):
        return None
    _, token = await create_key(conn, name="first start", scopes=["admin"], origins=[], actor="serve")
    path = data_dir / ADMIN_KEY_FILE
    write_key_file(path, token)
    return path
