"""JSON log lines carry the service, and inside a call or an event the request and trace ids."""

from __future__ import annotations

import json
import logging
from typing import Any

from iopcare.kit import logcontext
from iopcare.kit.runtime import JsonFormatter

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _line(formatter: JsonFormatter) -> dict[str, Any]:
    record = logging.LogRecord("iopcare.x", logging.INFO, __file__, 1, "hello %s", ("w",), None)
    entry: dict[str, Any] = json.loads(formatter.format(record))
    return entry


def test_a_line_names_the_service_and_the_bound_ids() -> None:
    formatter = JsonFormatter("careplan")
    outside = _line(formatter)
    assert outside["service"] == "careplan" and outside["message"] == "hello w"
    assert "request_id" not in outside and "trace_id" not in outside
    with logcontext.bound("req-1", logcontext.trace_id_of(TRACEPARENT)):
        inside = _line(formatter)
    assert inside["request_id"] == "req-1"
    assert inside["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert "request_id" not in _line(formatter)


def test_only_a_w3c_traceparent_gives_a_trace_id() -> None:
    assert logcontext.trace_id_of(TRACEPARENT.upper()) == "4bf92f3577b34da6a3ce929d0e0e4736"
    for bad in (None, "", "00-xyz-00f067aa0ba902b7-01", "Jane Doe", TRACEPARENT + "-extra"):
        assert logcontext.trace_id_of(bad) == ""
