"""What the service says about itself: latency quantiles from ``/metrics``, CPU and memory from psutil.

**Latency.** :func:`scrape` reads the Prometheus histograms ``leadroute_step_seconds`` (per
``step``) and ``leadroute_http_request_duration_seconds`` (per route ``path``, summed over methods
and status codes but 503: those were refused at once by admission control, and the users count
them); :func:`difference` subtracts a scrape taken before the run from one taken after, so only
the run's requests count; :func:`quantile` interpolates within a bucket, as PromQL's
``histogram_quantile`` does (so a quantile is only as fine as the buckets: 1, 2.5, 5, 10, 25, 50,
100, 250, 500 ms, 1, 2.5, 5, 10 s).

**Processes.** :class:`Sampler` samples, once a second in a thread, the RSS of the serve process
and each of its workers (peak and last), and the CPU time of the serve tree, of the PostgreSQL
backends serving the run's database (found in ``pg_stat_activity`` by the caller), of Redis and
of Locust. CPU of a process that exits between samples is lost after its last sample; the
service's pools keep their connections, so that is little.
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import NamedTuple

import psutil
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["Histogram", "Sampler", "difference", "quantile", "scrape"]

STEP = "leadroute_step_seconds"
HTTP = "leadroute_http_request_duration_seconds"


class Histogram(NamedTuple):
    buckets: tuple[tuple[float, float], ...]
    """(upper bound, cumulative count), ascending, ending with +Inf."""
    observed: float
    total: float


def scrape(text: str) -> dict[tuple[str, str], Histogram]:
    """``(metric, label)`` → histogram, for both metrics, from a ``/metrics`` page."""
    cumulative: dict[tuple[str, str], dict[float, float]] = defaultdict(lambda: defaultdict(float))
    counts: dict[tuple[str, str], float] = defaultdict(float)
    sums: dict[tuple[str, str], float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        if family.name not in (STEP, HTTP):
            continue
        label = "step" if family.name == STEP else "path"
        for sample in family.samples:
            if sample.labels.get("status_code") == "503":
                continue  # refused by admission control at once: not the route's latency
            key = (family.name, sample.labels.get(label, ""))
            if sample.name.endswith("_bucket"):
                cumulative[key][float(sample.labels["le"])] += sample.value
            elif sample.name.endswith("_count"):
                counts[key] += sample.value
            elif sample.name.endswith("_sum"):
                sums[key] += sample.value
    return {key: Histogram(tuple(sorted(b.items())), counts[key], sums[key]) for key, b in cumulative.items()}


def difference(
    after: dict[tuple[str, str], Histogram], before: dict[tuple[str, str], Histogram]
) -> dict[tuple[str, str], Histogram]:
    """The observations made between two scrapes (series that did not change are left out)."""
    result = {}
    for key, h in after.items():
        old = before.get(key)
        if old is None:
            result[key] = h
            continue
        earlier = dict(old.buckets)
        buckets = tuple((le, n - earlier.get(le, 0.0)) for le, n in h.buckets)
        if h.observed - old.observed > 0:
            result[key] = Histogram(buckets, h.observed - old.observed, h.total - old.total)
    return result


def quantile(q: float, h: Histogram) -> float:
    """The ``q`` quantile in seconds (linear within its bucket; NaN without observations)."""
    if not h.buckets or h.buckets[-1][1] <= 0:
        return math.nan
    rank = q * h.buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in h.buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # beyond the last finite bucket: its bound is all we know
            width = count - lower_count
            return lower_bound + (bound - lower_bound) * ((rank - lower_count) / width if width else 1.0)
        lower_bound, lower_count = bound, count
    return lower_bound


class _Peak(NamedTuple):
    peak: int
    last: int


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


class Sampler:
    """Samples CPU seconds and RSS of the processes of a run, every ``interval`` seconds."""

    def __init__(
        self,
        serve: psutil.Process,
        *,
        postgres: Callable[[], Iterable[int]],
        others: dict[str, int] | None = None,
        interval: float = 1.0,
    ) -> None:
        self.serve = serve
        self._postgres = postgres
        self._others = dict(others or {})
        self.interval = interval
        self.rss: dict[int, _Peak] = {}
        self.cpu: dict[str, dict[int, float]] = defaultdict(dict)  # group → pid → CPU s (latest)
        self.start_cpu: dict[str, dict[int, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def add(self, group: str, pid: int) -> None:
        self._others[group] = pid

    def start(self) -> None:
        self.sample()
        self.start_cpu = {group: dict(pids) for group, pids in self.cpu.items()}
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def _tree(self, root: psutil.Process) -> list[psutil.Process]:
        try:
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def sample(self) -> None:
        for p in self._tree(self.serve):
            try:
                rss = p.memory_info().rss
                self.cpu["serve"][p.pid] = _cpu(p)
            except psutil.Error:
                continue
            old = self.rss.get(p.pid)
            self.rss[p.pid] = _Peak(max(rss, old.peak if old else 0), rss)
        try:
            pids = list(self._postgres())
        except Exception:
            pids = []
        for pid in pids:
            try:
                self.cpu["postgres"][pid] = _cpu(psutil.Process(pid))
            except psutil.Error:
                continue
        for group, pid in self._others.items():
            try:
                root = psutil.Process(pid)
            except psutil.Error:
                continue
            for p in self._tree(root):
                try:
                    self.cpu[group][p.pid] = _cpu(p)
                except psutil.Error:
                    continue

    def cpu_seconds(self, group: str) -> float:
        """CPU seconds the group's processes used since :meth:`start`."""
        start = self.start_cpu.get(group, {})
        return sum(t - start.get(pid, 0.0) for pid, t in self.cpu.get(group, {}).items())
