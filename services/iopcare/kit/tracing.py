"""OpenTelemetry traces across the gateway, gRPC and Kafka.

One trace follows a request from the REST call through the services and over the topics: the
gateway opens a server span (continuing the caller's W3C `traceparent`, if any) and passes the
`traceparent` to the services in gRPC metadata; each service's call runs in a server span under
it (kit.logcontext's interceptor); an event written during a call carries the call's
`traceparent` in its CloudEvents headers (kit.events.new_traceparent, through the outbox); the
consumer that applies it opens a consumer span under that, and what it writes continues the trace.

Only `opentelemetry-api` is used here. Without an SDK the spans record nothing but the trace
context still travels (the API's non-recording spans carry their parent's ids), so the logs'
trace ids match across services. Recording and export are configured by the process:
`configure()` installs the SDK with an OTLP exporter when `OTEL_EXPORTER_OTLP_ENDPOINT` is set and
the exporter package is installed (off by default); tests install an in-memory exporter.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger(__name__)

_propagator = TraceContextTextMapPropagator()
tracer = trace.get_tracer("iopcare")

SERVER = trace.SpanKind.SERVER
CONSUMER = trace.SpanKind.CONSUMER


@contextlib.contextmanager
def span(
    name: str,
    kind: trace.SpanKind,
    traceparent: str | None = None,
    attributes: dict[str, Any] | None = None,
) -> Iterator[trace.Span]:
    """A span for the block, child of `traceparent` when one is given, else of the current span."""
    context = _propagator.extract({"traceparent": traceparent}) if traceparent else None
    with tracer.start_as_current_span(
        name, context=context, kind=kind, attributes=attributes or {}
    ) as current:
        yield current


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span (None outside any trace)."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent")


def current_trace_id() -> str:
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""


def configure(service: str) -> None:
    """Records and exports spans over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set."""
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter,
        )
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but opentelemetry-sdk and "
            "opentelemetry-exporter-otlp-proto-http are not installed; traces are not exported"
        )
        return
    provider = TracerProvider(resource=Resource.create({"service.name": f"iopcare-{service}"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
