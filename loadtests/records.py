"""What the load-test users got from the service, one JSON line per fact, one file per process.

Locust users write here; :mod:`loadtests.reconcile` reads it back and holds PostgreSQL to it.
Each process (``locust --processes N`` forks N) opens its own file, named by its worker index
and pid, and starts it with a ``process`` line (its seed and index), so the files show that
every process generated leads of its own. Writes never interleave: a process's users are
greenlets, and one ``write`` of a short line does not yield.

Line kinds (``k``):

``process``   ``seed``, ``worker``, ``pid``: the file's owner
``sent``      ``key``: a lead about to be posted (so a lead whose answer was cut off by the end of
              the run is still known to be ours)
``lead``      ``key``, ``lead``, ``status``, ``owner``: a lead answered 201/202
``retry``     ``key``, ``lead``: a client retry with the same Idempotency-Key answered 200, same lead
``event``     ``key``, ``lead``: an activity event answered 201
``action``    ``lead``, ``action`` (accept, reassign, close, breach), ``status``, ``owner``
``overload``  ``name``, ``retry_after``: a 503 with Retry-After, retried after the given delay
``dropped``   ``name``: the connection dropped before the answer; the same request was sent again
``conflict``  ``lead``, ``what``: an answer the workflow expects sometimes (an accept that came
              after an SLA breach had moved the lead: 409 not-current-owner)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import msgspec

__all__ = ["Recorder", "read_records"]

_ENCODER = msgspec.json.Encoder()


class Recorder:
    """Appends facts to this process's file (line-buffered, so a killed process loses no line)."""

    def __init__(self, directory: Path, *, seed: int, worker: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"records-{worker}-{os.getpid()}.jsonl"
        self._file: IO[bytes] = self.path.open("ab", buffering=0)
        self.write("process", seed=seed, worker=worker, pid=os.getpid())

    def write(self, kind: str, **fields: Any) -> None:
        self._file.write(_ENCODER.encode({"k": kind, **fields}) + b"\n")

    def close(self) -> None:
        self._file.close()


def read_records(directory: Path) -> Iterator[dict[str, Any]]:
    """Every record of every process in ``directory``, file by file."""
    for path in sorted(directory.glob("records-*.jsonl")):
        with path.open("rb") as f:
            for line in f:
                if line.strip():
                    yield msgspec.json.decode(line)
