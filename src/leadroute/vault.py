"""Secrets at rest: webhook signing secrets are stored encrypted under ``LEADROUTE_SECRET_KEY``.

Fernet (``cryptography``): AES-128-CBC with an HMAC-SHA256 over a versioned token, so a stored
value cannot be read *or* altered without the key, and ``MultiFernet`` gives rotation for free
(encrypt with the first key, decrypt with any; :meth:`MultiFernet.rotate` re-encrypts). AES-GCM
would do as well cryptographically, but would leave nonces, the token format and rotation to us;
Fernet is the library's own recipe for exactly this ("encrypt a small secret for storage").

Keys: ``LEADROUTE_SECRET_KEY`` (32 url-safe base64 bytes, ``leadroute secrets generate-key``) and
``LEADROUTE_SECRET_KEYS_OLD`` (comma-separated former keys, decrypt only). The embedded default
makes one on first start in ``<data_dir>/secret.key`` (mode 0600, like ``admin.key``). Outside
the embedded default the key must be set; the container image (``LEADROUTE_ALLOW_EMBEDDED=false``)
refuses to serve without it.

A stored webhook secret is ``{"sealed": "<Fernet token>", ...}``. Rows written before encryption
hold ``{"secret": "whsec_..."}``: :func:`seal_stored_secrets` (every instance at start-up, and
``leadroute secrets reseal``) seals those and re-seals old-key tokens under the current key, in
one transaction per endpoint. Nothing here logs a secret or a key.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from leadroute.errors import SettingsError

if TYPE_CHECKING:
    from leadroute.config import Settings
    from leadroute.store.db import Connection

__all__ = [
    "SECRET_KEY_FILE",
    "Keyring",
    "SealedSecretError",
    "embedded_secret_key",
    "generate_key",
    "keyring",
    "open_secret",
    "seal_stored_secrets",
]

SECRET_KEY_FILE: Final = "secret.key"  # noqa: S105 (a file name, not a secret)


class SealedSecretError(Exception):
    """A stored secret cannot be opened with the keys configured (a key is missing or wrong)."""


class Keyring:
    """The current key (encrypts) and the old ones (decrypt too)."""

    def __init__(self, current: str, old: list[str]) -> None:
        self._fernet = MultiFernet([Fernet(current.encode()), *(Fernet(k.encode()) for k in old)])

    def seal(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def open(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise SealedSecretError(
                "a stored secret cannot be decrypted with LEADROUTE_SECRET_KEY or LEADROUTE_SECRET_KEYS_OLD"
            ) from None

    def rotate(self, token: str) -> str:
        """The same secret sealed under the current key."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            raise SealedSecretError("a stored secret cannot be decrypted with the configured keys") from None

    def __repr__(self) -> str:
        return "Keyring(***)"


def generate_key() -> str:
    """A new ``LEADROUTE_SECRET_KEY``."""
    return Fernet.generate_key().decode()


def _check(name: str, key: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(key.encode())
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise SettingsError(
            f"{name}: expected 32 url-safe base64-encoded bytes "
            "(make one with `leadroute secrets generate-key`)"
        )
    return key


def keyring(settings: Settings) -> Keyring | None:
    """The settings' keys, checked (a malformed one is a :class:`SettingsError` naming the setting,
    never showing the value); None when ``SECRET_KEY`` is not set."""
    old = [k.strip() for k in (settings.secret_keys_old or "").split(",") if k.strip()]
    for key in old:
        _check("LEADROUTE_SECRET_KEYS_OLD", key)
    if settings.secret_key is None:
        if old:
            raise SettingsError(
                "LEADROUTE_SECRET_KEYS_OLD: set LEADROUTE_SECRET_KEY too (old keys only decrypt)"
            )
        return None
    return Keyring(_check("LEADROUTE_SECRET_KEY", settings.secret_key), old)


def embedded_secret_key(data_dir: Path) -> str:
    """The embedded default's key: read from ``data_dir/secret.key``, made there (mode 0600) on
    the first start. Made with O_EXCL, so two commands starting at once agree on one key."""
    path = data_dir / SECRET_KEY_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _check(f"{path}", path.read_text().strip())
    with os.fdopen(fd, "w") as file:
        file.write(generate_key() + "\n")
    return _check(f"{path}", path.read_text().strip())


def open_secret(entry: dict[str, Any], ring: Keyring | None) -> str:
    """The plain secret of one stored entry (sealed, or plain from before encryption)."""
    if "sealed" in entry:
        if ring is None:
            raise SealedSecretError(
                "webhook secrets are encrypted: set LEADROUTE_SECRET_KEY to sign with them"
            )
        return ring.open(entry["sealed"])
    return str(entry["secret"])


def seal_entry(entry: dict[str, Any], ring: Keyring) -> dict[str, Any]:
    """One stored entry sealed under the current key (plain ones sealed, sealed ones rotated)."""
    rest = {k: v for k, v in entry.items() if k not in ("secret", "sealed")}
    if "sealed" in entry:
        return rest | {"sealed": ring.rotate(entry["sealed"])}
    return rest | {"sealed": ring.seal(str(entry["secret"]))}


async def seal_stored_secrets(conn: Connection, ring: Keyring, *, rotate: bool = False) -> int:
    """Seal every plain stored webhook secret (and with ``rotate``, re-seal every sealed one under
    the current key); returns the endpoints changed. Safe to run in several instances at once."""
    from leadroute.store.queries import QUERIES

    changed = 0
    for ident in [r["id"] for r in await conn.fetch(QUERIES["vault_endpoints_to_seal"], rotate)]:
        async with conn.transaction():
            row = await conn.fetchrow(QUERIES["vault_endpoint_lock"], ident)
            if row is None:
                continue
            stored: list[dict[str, Any]] = row["secrets"]
            if not rotate and all("sealed" in e for e in stored):
                continue  # another instance sealed it meanwhile
            sealed = [seal_entry(e, ring) for e in stored]
            await conn.execute(QUERIES["vault_endpoint_secrets"], ident, sealed)
            changed += 1
    return changed
