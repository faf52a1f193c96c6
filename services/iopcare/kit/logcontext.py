"""What every log line of a call or an event carries: the request id and the trace id.

A gRPC call binds them for as long as it runs (`LogContextInterceptor`: the caller's
`x-request-id` metadata, else the request's `request_id` field, else a fresh id; the trace id of
the caller's W3C `traceparent` metadata, else a fresh one); a consumed event binds its `ce_id` and
the trace id of its `traceparent` header (kit.consumer); the gateway binds its `X-Request-Id`.
`kit.runtime.JsonFormatter` writes them, with the service's name, into each JSON line.

Ids only: nothing here ever holds patient data.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import grpc

from iopcare.kit.interceptors import Behavior, HandlerInterceptor, within

request_id: ContextVar[str] = ContextVar("iopcare_request_id", default="")
trace_id: ContextVar[str] = ContextVar("iopcare_trace_id", default="")

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
_SANE = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")


def trace_id_in(traceparent: str | None) -> str:
    """The trace id of a well-formed W3C traceparent, to the letter ("" if it is not one)."""
    match = _TRACEPARENT.match(traceparent or "")
    return match.group(1) if match else ""


def trace_id_of(traceparent: str | None) -> str:
    """The trace id of a W3C traceparent received from a caller, forgiving surrounding blanks
    and upper case ("" if it is not one)."""
    return trace_id_in((traceparent or "").strip().lower())


@contextlib.contextmanager
def bound(request: str = "", trace: str = "") -> Iterator[None]:
    """Binds the ids for the block (in this thread or task; a thread pool started from it with
    a copied context sees them too)."""
    tokens = [request_id.set(request), trace_id.set(trace)]
    try:
        yield
    finally:
        trace_id.reset(tokens[1])
        request_id.reset(tokens[0])


def outgoing() -> list[tuple[str, str]]:
    """Metadata that carries the current request id and trace to a service being called."""
    from iopcare.kit import tracing

    metadata = []
    if request_id.get():
        metadata.append(("x-request-id", request_id.get()))
    traceparent = tracing.current_traceparent()
    if traceparent:
        metadata.append(("traceparent", traceparent))
    return metadata


def _metadata(context: grpc.ServicerContext) -> dict[str, str]:
    return {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}


def _call_ids(metadata: dict[str, str], request: Any) -> tuple[str, str]:
    from iopcare.kit import tracing

    given = metadata.get("x-request-id", "")
    if not _SANE.match(given):
        given = str(getattr(request, "request_id", "") or "")
        if not _SANE.match(given):
            given = uuid.uuid4().hex
    trace = (
        tracing.current_trace_id() or trace_id_of(metadata.get("traceparent")) or uuid.uuid4().hex
    )
    return given, trace


@contextlib.contextmanager
def _call(method: str, context: grpc.ServicerContext, request: Any) -> Iterator[None]:
    """The call's server span (under the caller's traceparent) and its log ids."""
    from iopcare.kit import tracing

    metadata = _metadata(context)
    with (
        tracing.span(method, tracing.SERVER, metadata.get("traceparent"), {"rpc.method": method}),
        bound(*_call_ids(metadata, request)),
    ):
        yield


class LogContextInterceptor(HandlerInterceptor):
    """Binds each call's request id and trace id while its handler runs."""

    def wrap(self, fn: Behavior, streaming: bool, method: str) -> Behavior:
        if not streaming:
            return within(fn, False, lambda request, context: _call(method, context, request))

        def stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            # Streams (WatchThread) get their log ids but no span: they may stay open for hours.
            ids = _call_ids(_metadata(context), request)
            # A generator resumes in whatever context drives it: bind around each step.
            iterator = iter(fn(request, context))
            while True:
                with bound(*ids):
                    try:
                        item = next(iterator)
                    except StopIteration:
                        return
                yield item

        return stream
