"""``leadroute leads import``: post a file's leads to a running service in batches, and report.

Each batch is one ``POST /v1/leads:batch`` of at most ``batch_size`` leads and
:data:`MAX_REQUEST_BYTES`, ``parallel`` of them in flight at once. A batch the service could
not take (it is restarting, overloaded, PostgreSQL is down: 502/503/504 or no connection) is sent
again after ``Retry-After`` or a short backoff, up to :data:`ATTEMPTS` times: safe, since every
row has a key. Any other refusal of a whole batch (a wrong key, 413) stops the import with the
service's own words.

Each item's answer is counted: ``created`` (201; 202 is created and waiting for routing),
``replayed`` (200: the row was imported before), ``merged`` (200 with ``merged: true``: the
service matched an existing lead), ``invalid`` (4xx, with the fields at fault) and ``failed``
(5xx). The exit code is 1 when any row is invalid or failed.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx
import msgspec

from leadroute.errors import CommandError
from leadroute.imports._read import Format, Row, count_rows, read_rows
from leadroute.replay import ProgressBar

__all__ = ["ATTEMPTS", "MAX_REQUEST_BYTES", "ImportReport", "import_file"]

MAX_REQUEST_BYTES = 3 * 1024 * 1024
"""A batch request's body stays under this (the service takes at most 4 MB)."""
ATTEMPTS = 6
"""Tries of one batch the service could not take for now (then the import stops)."""
_RETRY = frozenset({502, 503, 504})
_encode = msgspec.json.encode


@dataclass
class ImportReport:
    """What became of a file's rows."""

    rows: int = 0
    created: int = 0
    pending: int = 0
    """Of ``created``: stored while routing waited for Redis (routed as soon as it is back)."""
    replayed: int = 0
    merged: int = 0
    invalid: list[tuple[int, str]] = field(default_factory=list)
    """(line, what is wrong) of each row the service refused."""
    failed: list[tuple[int, str]] = field(default_factory=list)
    """(line, why) of each row the service could not write (safe to import again)."""

    def add(self, line: int, result: dict[str, Any]) -> None:
        status = result["status"]
        if status in (201, 202):
            self.created += 1
            self.pending += status == 202
        elif status == 200:
            if result.get("decision", {}).get("merged"):
                self.merged += 1
            else:
                self.replayed += 1
        elif status < 500:
            self.invalid.append((line, _problem_text(result.get("problem", {}))))
        else:
            self.failed.append((line, _problem_text(result.get("problem", {}))))

    def lines(self, name: str) -> Iterator[str]:
        yield f"{name}: {self.rows} rows"
        pending = f" ({self.pending} waiting for routing)" if self.pending else ""
        yield f"  created   {self.created}{pending}"
        yield f"  replayed  {self.replayed}  (imported before)"
        yield f"  merged    {self.merged}  (into an existing lead)"
        yield f"  invalid   {len(self.invalid)}"
        yield f"  failed    {len(self.failed)}"
        for title, rows in (("invalid rows:", self.invalid), ("failed rows (import again):", self.failed)):
            if rows:
                yield title
                yield from (f"  line {line}: {why}" for line, why in rows)

    @property
    def settled(self) -> int:
        """Rows with an outcome so far."""
        return self.created + self.replayed + self.merged + len(self.invalid) + len(self.failed)

    @property
    def ok(self) -> bool:
        return not self.invalid and not self.failed


def _problem_text(problem: dict[str, Any]) -> str:
    errors = problem.get("errors") or []
    if errors:
        return "; ".join(f"{e.get('field', '?')}: {e.get('message', '')}" for e in errors)
    return str(problem.get("detail") or problem.get("title") or "refused")


def _batches(rows: Iterable[Row], size: int, report: ImportReport) -> Iterator[list[Row]]:
    """Rows that can be sent, ``size`` at most a batch and under :data:`MAX_REQUEST_BYTES`; rows
    that cannot (not JSON, too many CSV values) go straight to the report as invalid."""
    batch: list[Row] = []
    used = 2
    for row in rows:
        report.rows += 1
        if row.error is not None:
            report.invalid.append((row.line, row.error))
            continue
        cost = len(_encode(row.lead)) + 1
        if batch and (len(batch) >= size or used + cost > MAX_REQUEST_BYTES):
            yield batch
            batch, used = [], 2
        batch.append(row)
        used += cost
    if batch:
        yield batch


def _post(client: httpx.Client, batch: list[Row], sleep: Callable[[float], None]) -> list[dict[str, Any]]:
    body = _encode([row.lead for row in batch])
    for attempt in range(1, ATTEMPTS + 1):
        try:
            r = client.post("/v1/leads:batch", content=body, headers={"Content-Type": "application/json"})
        except httpx.TransportError as exc:
            if attempt == ATTEMPTS:
                raise CommandError(f"the service does not answer ({type(exc).__name__}); stopped") from None
            sleep(min(2**attempt, 30))
            continue
        if r.status_code in _RETRY and attempt < ATTEMPTS:
            sleep(float(r.headers.get("Retry-After") or min(2**attempt, 30)))
            continue
        if r.status_code != 200:
            try:
                detail = _problem_text(r.json())
            except ValueError:
                detail = r.text[:200]
            raise CommandError(f"the service refused a batch ({r.status_code}): {detail}")
        results: list[dict[str, Any]] = r.json()["results"]
        return results
    raise AssertionError("unreachable")


def import_file(
    path: Path,
    fmt: Format,
    *,
    url: str,
    key: str,
    batch_size: int,
    parallel: int = 2,
    out: TextIO,
    progress: TextIO,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> ImportReport:
    """Post every row of ``path`` and print the summary to ``out`` (progress to ``progress``).

    ``parallel`` batches are in flight at once (the service writes one batch's leads one after
    the other, so two keep it busy while the other answer travels); answers are counted in the
    file's order.
    """
    if not path.is_file():
        raise CommandError(f"{path}: no such file")
    total = count_rows(path, fmt)
    report = ImportReport()
    bar = ProgressBar(progress, label=f"importing {path.name}")
    headers = {"Authorization": f"Bearer {key}", "User-Agent": "leadroute-import"}
    with httpx.Client(base_url=url, headers=headers, timeout=120, transport=transport) as client:
        bar(0, total)
        in_flight: deque[tuple[list[Row], Future[list[dict[str, Any]]]]] = deque()

        def settle() -> None:
            batch, answer = in_flight.popleft()
            for row, result in zip(batch, answer.result(), strict=True):
                report.add(row.line, result)
            bar(report.settled, total)

        with ThreadPoolExecutor(parallel, thread_name_prefix="import") as threads:
            for batch in _batches(read_rows(path, fmt), batch_size, report):
                in_flight.append((batch, threads.submit(_post, client, batch, sleep)))
                if len(in_flight) >= parallel:
                    settle()
            while in_flight:
                settle()
        bar(report.settled, max(total, report.settled))
    bar.close()
    for line in report.lines(path.name):
        print(line, file=out)
    return report
