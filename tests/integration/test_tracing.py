"""Issue 17, item 2 (traces): one trace follows a `$handoff` from the REST call through the
gateway, careplan's RPCs, the careplan topic and the consumers of scheduling and notes.

The three services and the gateway run in this process (real broker, SQLite); an OpenTelemetry
SDK with an in-memory exporter records every span. The inpatient unit's request carries its own
W3C `traceparent`; afterwards every span of that trace hangs from it or from another span of the
trace (the trace is whole), and it holds the gateway's span, careplan's server spans and the
consumer spans of the services that applied the handoff's events.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.support import harness
from tests.support.gateway import Stack, discharge_bundle, running_stack, system_token

_exporter = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def _recording() -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_exporter))
    # Once per process: iopcare's tracer (a proxy) records into it from now on.
    trace.set_tracer_provider(provider)


@pytest.fixture
def stack(data_dir: Path, kafka_bootstrap: str) -> Iterator[Stack]:
    settings = harness.settings_for(
        data_dir, kafka_bootstrap, harness.isolated_topics(kafka_bootstrap)
    )
    urls = {n: f"sqlite:///{data_dir / n}.db" for n in ("careplan", "scheduling", "notes")}
    with running_stack(settings, urls) as running:
        yield running


def _of_trace(trace_id: int) -> list[ReadableSpan]:
    return [
        s
        for s in _exporter.get_finished_spans()
        if s.context is not None and s.context.trace_id == trace_id
    ]


def test_a_handoff_is_one_whole_trace_across_gateway_grpc_and_kafka(stack: Stack) -> None:
    _exporter.clear()
    trace_hex, root_span_hex = secrets.token_hex(16), secrets.token_hex(8)
    traceparent = f"00-{trace_hex}-{root_span_hex}-01"
    token = system_token(stack.settings, subject="system:st-mary-inpatient")
    with stack.client(token) as client:
        answer = client.post(
            "/$handoff",
            json=discharge_bundle(secrets.token_hex(5)),
            headers={"Content-Type": "application/fhir+json", "traceparent": traceparent},
        )
    assert answer.status_code == 200, answer.text
    trace_id = int(trace_hex, 16)

    def consumer_spans() -> list[ReadableSpan]:
        return [s for s in _of_trace(trace_id) if s.kind == trace.SpanKind.CONSUMER]

    # The handoff's events reach notes (its team thread) and scheduling over the topic.
    harness.eventually(
        lambda: (
            {(s.attributes or {}).get("iopcare.service") for s in consumer_spans()}
            >= {"notes", "scheduling"}
        ),
        timeout=30,
    )
    spans = _of_trace(trace_id)
    names = [s.name for s in spans]
    assert any(n.startswith("POST handoff") for n in names), names
    assert any(n.startswith("/iopcare.careplan.v1.CarePlanService/") for n in names), names
    # Whole: each span's parent is the caller's span or another span of this trace.
    ids = {s.context.span_id for s in spans if s.context is not None}
    root = int(root_span_hex, 16)
    orphans = [s.name for s in spans if s.parent is None or s.parent.span_id not in ids | {root}]
    assert not orphans, orphans
    gateway_span = next(s for s in spans if s.name.startswith("POST handoff"))
    assert gateway_span.parent is not None and gateway_span.parent.span_id == root
