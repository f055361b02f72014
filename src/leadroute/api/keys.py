"""Admin: API keys. Created and rotated keys are answered once, with the token; never again.

Every change is in the audit trail (``GET /v1/audit``). A revoked or rotated key stops working on
this instance at once and on every other within ``LEADROUTE_KEY_CACHE_SECONDS``.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, delete, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter

from leadroute.access import ORIGIN_PATTERN, Scope, create_key, rotate
from leadroute.api.deps import PooledConnection
from leadroute.api.problems import problem_responses
from leadroute.runtime import Runtime
from leadroute.store import keys as store
from leadroute.store.keys import StoredKey
from leadroute.structs import Struct

__all__ = ["KeyController", "NewKey", "NewKeyBody"]

Origin = Annotated[str, msgspec.Meta(pattern=ORIGIN_PATTERN, max_length=255)]
"""A browser origin: scheme, host and port, no path (``https://www.example.com``)."""
KeyId = Annotated[str, Parameter(pattern=r"^[0-9a-f]{8}$", description="A key id (8 hex digits)")]
Conn = NamedDependency[PooledConnection]


class NewKeyBody(Struct, kw_only=True):
    """A key to make: a name for people, its scopes, and the browser origins it may be used from."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    scopes: Annotated[list[Scope], msgspec.Meta(min_length=1)]
    origins: list[Origin] = msgspec.field(default_factory=list)


class NewKey(Struct, kw_only=True):
    """A key just made or rotated: ``key`` is the token, shown this once and stored only hashed."""

    key: str
    stored: StoredKey


class KeyController(Controller):
    path = "/v1/keys"
    tags = ["admin"]  # noqa: RUF012  (Litestar reads it as a class attribute)

    @get("/", summary="List API keys (never their secrets)")
    async def list_keys(self, conn: Conn) -> list[StoredKey]:
        """Every key, newest first, revoked ones included."""
        return await store.list_keys(conn)

    @post(
        "/",
        summary="Create an API key (the answer is the only time it is shown)",
        responses=problem_responses(400),
    )
    async def create(self, conn: Conn, actor: NamedDependency[str], data: JSONBody[NewKeyBody]) -> NewKey:
        """Make a key with these scopes and browser origins; keep the ``key`` of the answer."""
        stored, token = await create_key(
            conn,
            name=data.name,
            scopes=sorted(set(data.scopes)),
            origins=sorted(set(data.origins)),
            actor=actor,
        )
        return NewKey(key=token, stored=stored)

    @get("/{key_id:str}", summary="One API key", responses=problem_responses(400, 404))
    async def get_key(self, conn: Conn, key_id: KeyId) -> StoredKey:
        """The key's name, scopes, origins, and when it was made, rotated or revoked."""
        return await store.get_key(conn, key_id)

    @post(
        "/{key_id:str}/rotate",
        status_code=200,
        summary="Give a key a new secret (the old one stops working)",
        responses=problem_responses(400, 404),
    )
    async def rotate(
        self, conn: Conn, rt: NamedDependency[Runtime], actor: NamedDependency[str], key_id: KeyId
    ) -> NewKey:
        """Same id, scopes and origins; a new token, shown once."""
        stored, token = await rotate(conn, key_id, actor=actor)
        rt.keys.forget(key_id)
        return NewKey(key=token, stored=stored)

    @delete(
        "/{key_id:str}",
        status_code=200,
        summary="Revoke a key for good",
        responses=problem_responses(400, 404),
    )
    async def revoke(
        self, conn: Conn, rt: NamedDependency[Runtime], actor: NamedDependency[str], key_id: KeyId
    ) -> StoredKey:
        """The key stops working; it stays listed, with when and by whom it was revoked."""
        stored = await store.revoke_key(conn, key_id, actor=actor)
        rt.keys.forget(key_id)
        return stored
