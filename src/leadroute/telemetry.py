"""Traces and metrics: OpenTelemetry spans exported with OTLP, Prometheus metrics on ``/metrics``.

**Traces.** Litestar's OpenTelemetry plugin opens a span per request (continuing an incoming
``traceparent``); intake adds child spans for ``normalize``, ``score``, ``route`` (Redis) and
``commit`` (SQL) through :func:`span`. Spans are exported with OTLP/HTTP when
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set; the exporter
reads the other standard ``OTEL_*`` variables itself (headers, timeout, compression). Unset, no
tracer provider is installed and every span is OpenTelemetry's no-op: off costs nothing.

**Metrics.** Litestar's Prometheus middleware counts requests and their durations per route;
:data:`METRICS` adds leadroute's own. ``/metrics`` serves them; with several workers set
``PROMETHEUS_MULTIPROC_DIR`` (the server does) so every worker's samples are summed.

**No PII**: span names and attributes carry route templates, lead ids, stages, pools and owner
ids, never an email, phone or name (a test posts a canary address and reads the exported spans).
"""

from __future__ import annotations

import logging
import time
from types import TracebackType
from typing import Final

import msgspec
from litestar.plugins.prometheus import PrometheusController
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "METRICS",
    "JsonFormatter",
    "Metrics",
    "MetricsController",
    "configure_logging",
    "span",
    "tracer_provider",
]

_LATENCY_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_tracer: trace.Tracer | None = None
"""The tracer of :func:`span`: None while tracing is off (no provider installed)."""


class Metrics:
    """leadroute's own Prometheus metrics (the request metrics come from Litestar's middleware)."""

    def __init__(self) -> None:
        self.step_seconds = Histogram(
            "leadroute_step_seconds",
            "Time spent in each step of a workflow change (normalize, score, route, commit, and the "
            "whole intake, event, accept, reassign, close).",
            ["step"],
            buckets=_LATENCY_BUCKETS,
        )
        self.leads = Counter("leadroute_leads_total", "Leads taken, by stage at intake.", ["stage", "status"])
        self.assignments = Counter(
            "leadroute_assignments_total", "Leads placed with an owner, by pool and owner.", ["pool", "owner"]
        )
        self.queued = Counter("leadroute_queued_total", "Leads placed in a queue, by queue.", ["queue"])
        self.merges = Counter(
            "leadroute_lead_merges_total",
            "Lead events merged into the lead of the same person, by what matched (email, phone, name).",
            ["matched_on"],
        )
        self.queue_depth = Gauge(
            "leadroute_queue_depth",
            "Leads waiting in queues for an owner (as of the last background pass).",
            multiprocess_mode="max",
        )
        self.sla_breaches = Counter("leadroute_sla_breaches_total", "SLA timers that ran out.")
        self.rebuilds = Counter(
            "leadroute_routing_rebuilds_total", "Rebuilds of the routing state from PostgreSQL."
        )
        self.webhook_deliveries = Counter(
            "leadroute_webhook_deliveries_total", "Webhook delivery attempts, by outcome.", ["outcome"]
        )
        self.commit_groups = Histogram(
            "leadroute_commit_group_leads",
            "Single-lead intakes written per transaction (group commit; 1: alone).",
            buckets=(1, 2, 4, 8, 16, 32, 64),
        )
        self.commit_group_splits = Counter(
            "leadroute_commit_group_splits_total",
            "Shared intake transactions that failed, so each of their leads was written again alone.",
        )


METRICS: Final = Metrics()


class MetricsController(PrometheusController):
    """``GET /metrics`` in Prometheus' text format (left out of ``/schema``: not a JSON API)."""

    include_in_schema = False


def tracer_provider(endpoint: str | None) -> TracerProvider | None:
    """A provider exporting spans with OTLP/HTTP to ``endpoint`` (the traces URL), else None (off).

    It also becomes the tracer of :func:`span` (the app's request spans come from the plugin).
    """
    global _tracer  # noqa: PLW0603  (one tracer per process, set when the app is built)
    if not endpoint:
        _tracer = None
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": "leadroute"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    _tracer = provider.get_tracer("leadroute")
    return provider


class span:  # noqa: N801  (used as a function: ``with span("route"):``)
    """A child span of the current request's span, and the step's duration in ``leadroute_step_seconds``.

    A plain class rather than ``contextlib.contextmanager``: it runs several times per request, and
    with tracing off it enters no OpenTelemetry span at all (the no-op tracer's span would be
    invisible anyway: with no provider there is no request span to be a child of). The duration is
    observed as ``Histogram.time()`` would (``time.perf_counter``), into a labelled child looked up
    once per step name. Measured in docs/benchmarks.md ("Per-request overhead outside the workflow").
    """

    __slots__ = ("_histogram", "_start", "_traced")

    def __init__(self, name: str, step: str | None = None) -> None:
        self._histogram = _step_histogram(step or name)
        self._traced = None if _tracer is None else _tracer.start_as_current_span(name)
        self._start = 0.0

    def __enter__(self) -> trace.Span:
        current = trace.INVALID_SPAN if self._traced is None else self._traced.__enter__()
        self._start = time.perf_counter()
        return current

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._histogram.observe(max(time.perf_counter() - self._start, 0))
        if self._traced is not None:
            self._traced.__exit__(exc_type, exc, traceback)  # records the exception on the span


_step_histograms: dict[str, Histogram] = {}


def _step_histogram(step: str) -> Histogram:
    """``leadroute_step_seconds`` labelled ``step`` (``labels()`` takes a lock on every call)."""
    histogram = _step_histograms.get(step)
    if histogram is None:
        histogram = _step_histograms[step] = METRICS.step_seconds.labels(step)
    return histogram


class JsonFormatter(logging.Formatter):
    """One JSON object per line (``LEADROUTE_LOG_FORMAT=json``): time, level, logger, message, the
    exception if any, and the current trace and span ids so logs join their traces. Messages
    never carry lead data (see the module docstring), so neither do these lines."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            line["trace_id"] = format(context.trace_id, "032x")
            line["span_id"] = format(context.span_id, "016x")
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return msgspec.json.encode(line).decode()


def configure_logging(level: str, log_format: str) -> None:
    """The process's logging: plain text lines, or JSON lines with trace ids."""
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
