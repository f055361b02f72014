"""Traces reach an OTLP collector (one this test starts), metrics are on /metrics, and neither
carries PII."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import msgspec
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from leadroute.config import Settings
from leadroute.runtime import utc_now
from sla_support import sla_rules
from support import authed, lead, owner, pool

CANARY = "canary.person@telemetry-canary.example"


class Collector:
    """A minimal OTLP/HTTP trace receiver: keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.raw: list[bytes] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                collector.raw.append(body)
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                for resource in request.resource_spans:
                    for scope in resource.scope_spans:
                        collector.spans.extend(scope.spans)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                del format, args

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    try:
        yield c
    finally:
        c.server.shutdown()
        c.server.server_close()


class TestTraces:
    """A request is a span with child spans for each step, exported with OTLP, without PII."""

    async def test_intake_spans_reach_the_collector_and_hold_no_pii(
        self, settings: Settings, clean: None, collector: Collector
    ) -> None:
        from leadroute.app import create_app
        from leadroute.rules import parse_ruleset

        traced = msgspec.structs.replace(settings, otlp_traces_endpoint=collector.url)
        app = create_app(traced, ruleset=parse_ruleset(sla_rules(30)), clock=utc_now)
        parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        async with authed(app) as client:
            await owner(client, "ann")
            await pool(client, "sales", ["ann"])
            r = await client.post(
                "/v1/leads",
                json=lead(1, email=CANARY, phone="+1 415 555 2671"),
                headers={"traceparent": parent},
            )
            assert r.status_code == 201, r.text
        names = {s.name for s in collector.spans}
        assert {"intake", "normalize", "score", "commit", "route"} <= names
        intake = next(s for s in collector.spans if s.name == "intake")
        assert intake.trace_id.hex() == "4bf92f3577b34da6a3ce929d0e0e4736"  # the caller's trace goes on
        for raw in collector.raw:
            assert b"canary" not in raw
            assert b"555" not in raw


class TestMetrics:
    """``/metrics`` serves request metrics and leadroute's own, in Prometheus' text format."""

    async def test_metrics_count_leads_assignments_and_step_latency(self, make_app: Any) -> None:
        async with authed(make_app(sla_rules(30))) as client:
            await owner(client, "ann")
            await pool(client, "sales", ["ann"])
            assert (await client.post("/v1/leads", json=lead(1, email=CANARY))).status_code == 201
            r = await client.get("/metrics")
        assert r.status_code == 200
        text = r.text
        assert 'leadroute_assignments_total{owner="ann",pool="sales"}' in text
        assert 'leadroute_leads_total{stage="lead",status="assigned"}' in text
        assert 'leadroute_step_seconds_bucket{le="0.005",step="commit"}' in text
        assert "leadroute_http_requests_total" in text
        assert "canary" not in text


class TestJsonLogs:
    """``LEADROUTE_LOG_FORMAT=json``: one JSON object per line, joined to its trace."""

    def test_a_line_inside_a_span_carries_its_trace_and_span_ids(self) -> None:
        import io
        import logging

        from opentelemetry.sdk.trace import TracerProvider

        from leadroute.telemetry import JsonFormatter

        out = io.StringIO()
        handler = logging.StreamHandler(out)
        handler.setFormatter(JsonFormatter())
        logger = logging.getLogger("leadroute.test-json")
        logger.addHandler(handler)
        logger.propagate = False
        try:
            tracer = TracerProvider().get_tracer("test")
            with tracer.start_as_current_span("request") as current:
                logger.warning("routing state unreachable: %d freed slot(s)", 2)
            logger.error("outside any span")
        finally:
            logger.removeHandler(handler)
        first, second = (msgspec.json.decode(line) for line in out.getvalue().splitlines())
        context = current.get_span_context()
        assert first["message"] == "routing state unreachable: 2 freed slot(s)"
        assert first["level"] == "WARNING"
        assert first["trace_id"] == format(context.trace_id, "032x")
        assert first["span_id"] == format(context.span_id, "016x")
        assert "trace_id" not in second
