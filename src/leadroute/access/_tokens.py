"""API key tokens: ``lr_live_<id>_<secret>``, made, parsed and hashed.

The id (8 hex digits) is public: it names the key in ``leadroute keys list``, in logs and in the
actor of every change (``key:<id>``). The secret is 256 bits from :mod:`secrets`, and only its
SHA-256 is stored.

Why SHA-256 and not argon2 or bcrypt: slow hashes protect *low-entropy* secrets (passwords people
choose) from offline guessing after a database leak. A 256-bit random secret cannot be guessed
whatever the hash costs, so a slow hash would only add ~50 ms of CPU to every request (and make
a flood of bad keys a cheap way to burn our CPU). This is what GitHub, Stripe and most API key
schemes do. The comparison is constant-time (:func:`hmac.compare_digest`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

__all__ = [
    "PREFIX",
    "ParsedKey",
    "digest",
    "format_key",
    "new_id",
    "new_secret",
    "parse_key",
    "secret_matches",
]

PREFIX = "lr_live_"
"""What a leadroute key starts with, so a leaked one is recognised (secret scanners, logs)."""

_KEY = re.compile(r"lr_live_(?P<id>[0-9a-f]{8})_(?P<secret>[A-Za-z0-9_-]{32,128})")


class ParsedKey:
    """A well-formed token split into its public id and its secret."""

    __slots__ = ("id", "secret")

    def __init__(self, key_id: str, secret: str) -> None:
        self.id = key_id
        self.secret = secret


def new_id() -> str:
    """A fresh public key id: 8 hex digits (a collision is caught by the primary key)."""
    return secrets.token_hex(4)


def new_secret() -> str:
    """256 random bits, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


def format_key(key_id: str, secret: str) -> str:
    """The token a client sends: ``lr_live_<id>_<secret>``."""
    return f"{PREFIX}{key_id}_{secret}"


def parse_key(token: str) -> ParsedKey | None:
    """The id and secret of a well-formed token; None for anything else."""
    match = _KEY.fullmatch(token)
    return None if match is None else ParsedKey(match["id"], match["secret"])


def digest(secret: str) -> bytes:
    """What is stored of a secret: its SHA-256 (see the module docstring for why that is enough)."""
    return hashlib.sha256(secret.encode()).digest()


def secret_matches(secret: str, stored: bytes) -> bool:
    """Whether ``secret`` hashes to ``stored``, compared in constant time."""
    return hmac.compare_digest(digest(secret), stored)
