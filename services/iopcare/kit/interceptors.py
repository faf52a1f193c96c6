"""What the server interceptors of `kit.rpc`, `kit.logcontext` and `kit.metrics` share: each wraps
the behaviour of every RPC handler (unary and server-streaming alike) in a function of its own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import grpc

#: A handler's behaviour: `(request, context) -> response` (or an iterator of responses).
Behavior = Callable[..., Any]


def wrap_handler(
    handler: grpc.RpcMethodHandler | None, wrap: Callable[[Behavior, bool], Behavior]
) -> grpc.RpcMethodHandler | None:
    """`handler` with its behaviour replaced by `wrap(behaviour, streaming)`."""
    if handler is None:
        return None
    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(wrap(handler.unary_unary, False), **kwargs)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(wrap(handler.unary_stream, True), **kwargs)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(wrap(handler.stream_unary, False), **kwargs)
    if handler.stream_stream:
        return grpc.stream_stream_rpc_method_handler(wrap(handler.stream_stream, True), **kwargs)
    return handler


class HandlerInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Wraps the behaviour of each call's handler with `wrap`, unless `passes(method)`."""

    def passes(self, method: str) -> bool:
        """Whether calls to `method` go through untouched."""
        return False

    def wrap(self, fn: Behavior, streaming: bool, method: str) -> Behavior:
        raise NotImplementedError

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Any],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = continuation(details)
        method = details.method
        if self.passes(method):
            return handler
        return wrap_handler(handler, lambda fn, streaming: self.wrap(fn, streaming, method))


def within(
    fn: Behavior,
    streaming: bool,
    scope: Callable[[Any, grpc.ServicerContext], AbstractContextManager[Any]],
) -> Behavior:
    """`fn` run inside `scope(request, context)`; a stream for as long as it is open."""
    if streaming:

        def stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            with scope(request, context):
                yield from fn(request, context)

        return stream

    def unary(request: Any, context: grpc.ServicerContext) -> Any:
        with scope(request, context):
            return fn(request, context)

    return unary
