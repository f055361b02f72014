"""Verified keys, remembered in-process for a few seconds so a request costs no PostgreSQL trip.

Entries are keyed by the SHA-256 of the whole token, so a rotated key's new token is a miss (and
works at once everywhere), while its old token keeps working on an instance that verified it
until the entry expires: ``LEADROUTE_KEY_CACHE_SECONDS`` (5 s by default) bounds how long a
revocation or rotation takes to reach every instance. The instance that revokes or rotates
forgets the key at once. Unknown tokens are remembered as such for the same time, so retrying
one does not cost a query either.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

import asyncpg
import msgspec

from leadroute.access._tokens import parse_key, secret_matches
from leadroute.store.keys import find_key, key_origins

__all__ = ["KeyCache", "Principal"]

MAX_ENTRIES = 10_000
"""Past this many cached tokens the cache starts afresh (bounds memory under a flood of bad keys)."""


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """Who is calling: a verified key, what it may do, and where from."""

    key_id: str
    scopes: frozenset[str]
    origins: frozenset[str]


class KeyCache:
    """Verifies bearer tokens against ``api_keys``, remembering answers for ``ttl`` seconds."""

    def __init__(self, ttl: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._tokens: dict[bytes, tuple[float, Principal | None]] = {}
        self._origins: tuple[float, frozenset[str]] | None = None

    async def verify(self, db: asyncpg.Pool, token: str) -> Principal | None:
        """The key this token is, or None (malformed, unknown, revoked, an old secret)."""
        slot = hashlib.sha256(token.encode()).digest()
        now = self._clock()
        cached = self._tokens.get(slot)
        if cached is not None and cached[0] > now:  # only well-formed tokens are ever cached
            return cached[1]
        parsed = parse_key(token)
        if parsed is None:
            return None
        async with db.acquire() as conn:
            row = await find_key(conn, parsed.id)
        principal = None
        if row is not None and secret_matches(parsed.secret, row.secret_sha256):
            principal = Principal(key_id=row.id, scopes=row.scopes, origins=row.origins)
        if self.ttl > 0:
            if len(self._tokens) >= MAX_ENTRIES:
                self._tokens.clear()
            self._tokens[slot] = (now + self.ttl, principal)
        return principal

    def cached(self, token: str) -> Principal | None:
        """The key this token is if this cache verified it within ``ttl`` (no I/O), else None."""
        cached = self._tokens.get(hashlib.sha256(token.encode()).digest())
        return cached[1] if cached is not None and cached[0] > self._clock() else None

    async def origin_allowed(self, db: asyncpg.Pool, origin: str) -> bool:
        """Whether some live key allows ``origin`` (what a CORS preflight, which has no key, can ask)."""
        now = self._clock()
        if self._origins is None or self._origins[0] <= now:
            async with db.acquire() as conn:
                self._origins = (now + self.ttl, await key_origins(conn))
        return origin in self._origins[1]

    def forget(self, key_id: str) -> None:
        """Drop what is cached of a key (this instance revoked or rotated it, or changed origins)."""
        self._tokens = {
            slot: entry
            for slot, entry in self._tokens.items()
            if entry[1] is None or entry[1].key_id != key_id
        }
        self._origins = None
