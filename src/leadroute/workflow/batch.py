"""Many lead events in one request: each its own result, in order; a commit per chunk of items.

A batch is up to :data:`MAX_ITEMS` lead bodies, each exactly what ``POST /v1/leads`` takes.
Every item ends in one :data:`Outcome`, at its own index:

- its :class:`~leadroute.workflow.intake.IntakeResult` (created, pending, or the stored answer of
  a key used before with the same body);
- :class:`~leadroute.errors.InvalidLead` from the pure steps (bad fields, not an object);
- :class:`~leadroute.errors.IdempotencyConflict` (its key was used with another body);
- :class:`ItemFailed`, when its write failed inside the transaction for a reason of ours;
- the error that stopped the batch (PostgreSQL down, no connection free: a 503 each) for the
  items of the chunk that could not commit and of every chunk after it, once an earlier chunk has
  committed. When the very first chunk cannot commit nothing was written and
  :func:`submit_batch` raises it (the request's 503).

How it is written. The pure steps run per chunk of ``LEADROUTE_BATCH_CHUNK`` items (50), outside any
transaction. Then one :func:`~leadroute.workflow.runner.run` step writes the chunk's valid items
in input order, each with :func:`~leadroute.workflow.intake.record_lead` (what single intake
runs) inside its own SAVEPOINT (:meth:`Change.savepoint`): an item that fails there rolls back
alone, and the Redis slot it claimed is given back at once, so the other items still commit. One
COMMIT per chunk instead of one per lead; the chunk bounds how long a batch holds its keys' rows
and the routing lock (shared: a routing rebuild, which takes it exclusively, waits at most one
chunk, see :mod:`leadroute.routing.assign`). At most 64 items a chunk: each written savepoint is
a subtransaction, and past 64 in one transaction (``PGPROC_MAX_CACHED_SUBXIDS``) every other
session's snapshot overflows to ``pg_subtrans`` lookups while it is open, a slowdown of the whole
database (GitLab's "Why we spent the last month eliminating PostgreSQL subtransactions", 2021).

Locks. Items claim their idempotency keys in input order, so two concurrent batches that share
keys in different orders can deadlock; PostgreSQL then fails one item's statement
(``deadlock_detected``), that item's savepoint rolls back (which ends the cycle), and the item is
written again after its chunk commits, in a transaction of its own.

Keys. An item's key is its ``event_id``. An item without one, in a request with an
``Idempotency-Key`` header, gets ``<header>#<index>``: a retried batch (same header, same items)
replays each item instead of writing it twice. Two items of one batch with the same key: the
second is a retry of the first (the same answer, 200), or a conflict when its body differs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import asyncpg
import msgspec

from leadroute.errors import ClientError, InvalidLead, LeadrouteError, MalformedBody, Overloaded
from leadroute.intake.text import decode_body
from leadroute.outage import dependency_down
from leadroute.runtime import Runtime
from leadroute.telemetry import span
from leadroute.workflow.intake import (
    IntakeResult,
    Prepared,
    RequestKeys,
    fingerprint,
    prepare_lead,
    record_lead,
)
from leadroute.workflow.runner import Change, run

__all__ = [
    "MAX_ITEMS",
    "BatchTooLarge",
    "ItemFailed",
    "Outcome",
    "parse_batch",
    "submit_batch",
]

MAX_ITEMS = 1000
"""The most leads one batch request may carry (and at most 4 MB, see ``api.batch``)."""

log = logging.getLogger(__name__)

Outcome = IntakeResult | Exception
"""What became of one item: its decision, or the error that is its answer (``api.problems``
maps it as it would for a single lead)."""


class BatchTooLarge(ClientError):
    """More items than :data:`MAX_ITEMS`: split the batch."""

    status = 422
    kind = "batch-too-large"
    title = "Too many leads in one batch"

    def __init__(self, count: int) -> None:
        super().__init__(
            f"a batch holds at most {MAX_ITEMS} leads, this one has {count}: split it",
            errors=[{"field": "leads", "message": f"at most {MAX_ITEMS} items (got {count})"}],
        )


class ItemFailed(LeadrouteError):
    """An item's write failed inside the transaction (a constraint, a repeated deadlock): nothing
    of it was written, the rest of the batch was; sending it again is safe. A 500 for that item."""


class _Wrapped(msgspec.Struct, forbid_unknown_fields=True):
    leads: list[msgspec.Raw]


_decode_items = msgspec.json.Decoder(list[msgspec.Raw] | _Wrapped)
_probe = msgspec.json.Decoder()


def parse_batch(body: bytes) -> list[bytes]:
    """The items of a batch body: a JSON array of leads, or ``{"leads": [...]}``.

    Raises :class:`MalformedBody` (400) when it is neither, :class:`BatchTooLarge` (422) past
    :data:`MAX_ITEMS`. Each item is returned as its own bytes, checked later like a single lead.
    """
    try:
        decoded = _decode_items.decode(body)
    except msgspec.DecodeError as exc:
        decode_body(_probe, body)  # not JSON at all: the single-intake message names where
        raise MalformedBody(
            'the body must be a JSON array of leads or an object {"leads": [...]}: ' + str(exc)
        ) from None
    items = decoded.leads if isinstance(decoded, _Wrapped) else decoded
    if not items:
        raise MalformedBody("the batch holds no leads")
    if len(items) > MAX_ITEMS:
        raise BatchTooLarge(len(items))
    return [bytes(item) for item in items]


def _prepare(rt: Runtime, body: bytes, batch_key: str | None, index: int) -> Prepared:
    prepared = prepare_lead(rt, body, None)  # the item's own event_id, if any, is its key
    if prepared.key is None and batch_key is not None:
        keys = RequestKeys(header=f"{batch_key}#{index}")  # named by the request's header
        return msgspec.structs.replace(prepared, keys=keys, body_print=fingerprint(body))
    return prepared


async def submit_batch(
    rt: Runtime, bodies: Sequence[bytes], batch_key: str | None, *, actor: str = "api"
) -> list[Outcome]:
    """Every item's outcome, in input order (see the module docstring)."""
    outcomes: list[Outcome | None] = [None] * len(bodies)
    committed = False
    with span("batch"):
        size = rt.settings.batch_chunk
        for start in range(0, len(bodies), size):
            chunk: dict[int, Prepared] = {}
            for index in range(start, min(start + size, len(bodies))):
                try:
                    chunk[index] = _prepare(rt, bodies[index], batch_key, index)
                except InvalidLead as exc:
                    outcomes[index] = exc
            try:
                again = await _write(rt, chunk, outcomes, actor)
                committed = committed or bool(chunk)
                if again:
                    log.info("batch: %d item(s) lost a deadlock; writing them again alone", len(again))
                for index in again:  # alone now, after the chunk's locks are gone
                    if await _write(rt, {index: chunk[index]}, outcomes, actor):
                        outcomes[index] = ItemFailed("the write kept conflicting with a concurrent one")
            except Exception as exc:
                if not committed:
                    raise
                return _stopped(exc, outcomes)
            await asyncio.sleep(0)  # the next chunk's pure steps: let other requests in first
    assert all(o is not None for o in outcomes)
    return [o for o in outcomes if o is not None]


def _stopped(exc: Exception, outcomes: list[Outcome | None]) -> list[Outcome]:
    """Earlier items are committed: each unwritten one is answered with what stopped the batch
    (PostgreSQL down, no connection free: a 503 each; anything else a 500 each)."""
    unwritten = sum(o is None for o in outcomes)
    if dependency_down(exc) is None and not isinstance(exc, Overloaded):
        log.exception("batch stopped after a commit (%d items unwritten)", unwritten)
    else:
        log.warning("batch stopped after a commit: %s (%d unwritten)", type(exc).__name__, unwritten)
    return [exc if o is None else o for o in outcomes]


async def _write(
    rt: Runtime, chunk: dict[int, Prepared], outcomes: list[Outcome | None], actor: str
) -> list[int]:
    """Write ``chunk`` in one transaction, each item in its own savepoint; fill in ``outcomes``.

    Returns the items that lost a deadlock (rolled back alone; to be written again).
    """
    if not chunk:
        return []

    async def step(ch: Change) -> tuple[dict[int, Outcome], list[int]]:
        done: dict[int, Outcome] = {}
        again: list[int] = []
        for index, prepared in chunk.items():
            try:
                async with ch.savepoint():
                    done[index] = await record_lead(ch, rt, prepared)
            except ClientError as exc:  # its key was used with another body
                done[index] = exc
            except asyncpg.exceptions.TransactionRollbackError:  # deadlock or serialization failure
                again.append(index)
            except asyncpg.PostgresError as exc:
                if dependency_down(exc) is not None:
                    raise
                # the type and position only: the message may quote the lead's values
                log.error("batch item %d failed in its savepoint: %s", index, type(exc).__name__)
                done[index] = ItemFailed(f"the write failed ({type(exc).__name__}); nothing was written")
        return done, again

    done, again = await run(rt, step, actor=actor)
    for index, outcome in done.items():
        outcomes[index] = outcome
    return again
