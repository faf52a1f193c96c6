"""The ASGI application (Starlette) and `iopcare serve gateway`.

The ASGI layer only moves bytes: it reads the body under the size limit, hands a `FhirRequest` to
`api.Gateway` in a worker thread (the gRPC calls block), writes the response and one audit record
per request. Everything FHIR is in `api.py`.

Body limit: a declared Content-Length over the limit is refused with 413 before a byte of the body
is read; a body without one (chunked) is counted while it streams and refused as soon as it
passes the limit, so memory stays bounded whatever a client sends (test-matrix D1).

Fairness (issue 10): 45 concurrent batches from one client once took every worker thread and
made `/metadata` wait 18 s. Now every request but the cheap, data-free ones (`/metadata`,
OperationDefinition) is admitted by a `kit.limits.FairQueue` keyed by the caller (the verified
token's subject, else the peer address): a client runs at most `max_requests_per_client` requests
and queues `max_queued_per_client` more, beyond which it gets 429 with Retry-After at once, and a
free place goes to the waiting clients in turn. Admitted requests run on their own thread limiter
of `max_active_requests`, so the cheap ones always find a thread in the default pool. The body is
read only once admitted: a refused or queued client holds no buffered body.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from iopcare.gateway import readiness, routing, smart
from iopcare.gateway.api import Gateway
from iopcare.gateway.client import Services
from iopcare.gateway.errors import FhirHttpError, Problem, http_error
from iopcare.gateway.http import FhirRequest, FhirResponse, dumps, error_response
from iopcare.gateway.security import Authenticator
from iopcare.gateway.settings import GatewaySettings
from iopcare.gateway.subscriptions.build import build as build_subscriptions
from iopcare.gateway.subscriptions.settings import SubscriptionSettings
from iopcare.kit import logcontext, tracing
from iopcare.kit.auth import TokenVerifier
from iopcare.kit.failpoints import failpoint
from iopcare.kit.fhir import MEDIA_TYPE_WITH_VERSION
from iopcare.kit.limits import FairQueue, Throttled
from iopcare.kit.metrics import HttpMetrics, HttpMetricsMiddleware, MetricsServer
from iopcare.kit.settings import Settings

log = logging.getLogger(__name__)
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
audit_log = logging.getLogger("iopcare.gateway.audit")

AuditSink = Callable[[dict[str, Any]], None]


def log_audit(record: dict[str, Any]) -> None:
    audit_log.info(json.dumps(record, separators=(",", ":")))


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise http_error(400, "structure", "Content-Length is not a number")
        if int(declared) > limit:
            raise http_error(
                413, "too-costly", f"the body ({declared} bytes) exceeds the limit of {limit} bytes"
            )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise http_error(413, "too-costly", f"the body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def to_response(result: FhirResponse, request_id: str) -> Response:
    headers = dict(result.headers)
    # Patient data must not linger in shared caches or proxies (HIPAA minimum necessary).
    headers["Cache-Control"] = "no-store"
    headers["X-Request-Id"] = request_id
    if result.body is None:
        return Response(status_code=result.status, headers=headers)
    return Response(
        dumps(result.body),
        status_code=result.status,
        headers=headers,
        media_type=MEDIA_TYPE_WITH_VERSION,
    )


#: Routes served without admission: they read no patient data and cost no gRPC call.
CHEAP_ROUTES = frozenset({routing.METADATA, routing.OPERATION_DEFINITION})


def is_cheap(method: str, path: str) -> bool:
    try:
        return routing.route(method, path).kind in CHEAP_ROUTES
    except FhirHttpError:
        return False


def throttled_response(exc: Throttled) -> FhirResponse:
    return error_response(
        FhirHttpError(
            429,
            Problem("throttled", exc.message),
            headers={"Retry-After": exc.retry_after_header},
            reason=exc.reason,
        )
    )


def _audit_record(
    request: Request, path: str, result: FhirResponse, started: float, request_id: str
) -> dict[str, Any]:
    """The one audit record of a request, answered or refused."""
    return {
        "time": datetime.now(UTC).isoformat(),
        "subject": result.audit.get("subject", ""),
        "method": request.method,
        "path": path[:300],
        "status": result.status,
        "outcome": "success" if result.status < 400 else "refused",
        "patient": result.audit.get("patient", ""),
        "resource": result.audit.get("resource", ""),
        "detail": result.audit.get("detail", result.audit.get("reason", ""))[:200],
        "ms": round((time.monotonic() - started) * 1000, 1),
        "request_id": request_id,
    }


def interaction_of(base_path: str) -> Callable[[str, str], str]:
    """The metrics label of a request: its route's kind (read, search, handoff...), never an id
    or a resource type taken from the path (those are the caller's to choose, without limit)."""

    def interaction(method: str, path: str) -> str:
        if not path.startswith(base_path):
            return "other"
        try:
            return routing.route(method, path[len(base_path) :]).kind
        except FhirHttpError:
            return "invalid"

    return interaction


class _FhirEndpoint:
    """The FHIR catch-all endpoint of one app: its admission queue (fair shares per client) and
    its worker limiter, shared by every request to it."""

    def __init__(self, gateway: Gateway, base_path: str, audit: AuditSink) -> None:
        self.gateway = gateway
        self.base_path = base_path
        self.audit = audit
        self.interaction = interaction_of(base_path)
        config = gateway.settings
        self.admission = FairQueue(
            config.max_active_requests,
            config.max_requests_per_client,
            config.max_queued_per_client,
            config.retry_after_seconds,
        )
        # Created on first use: an anyio limiter belongs to the running event loop.
        self.workers: list[anyio.CapacityLimiter] = []

    def work(self, fhir_request: FhirRequest) -> FhirResponse:
        failpoint("gateway_request")
        return self.gateway.handle(fhir_request)

    async def client_of(self, request: Request) -> str:
        """Whom the request counts against: the verified token's subject (a forged `sub` must
        not spend someone else's share), else the peer address."""
        authorization = request.headers.get("authorization", "")
        if authorization:
            try:
                # Verified tokens are cached, so this is a dictionary look-up after the first.
                caller = await run_in_threadpool(
                    self.gateway.authenticator.authenticate, authorization
                )
                return f"sub:{caller.principal.subject}"
            except FhirHttpError:
                pass  # handle() answers 401; until then it counts against its address
        return f"peer:{request.client.host if request.client else 'unknown'}"

    async def serve(self, request: Request, path: str, base_url: str, cheap: bool) -> FhirResponse:
        body = await read_body(request, self.gateway.max_body_bytes)
        fhir_request = FhirRequest(
            request.method,
            path,
            list(request.query_params.multi_items()),
            {k.lower(): v for k, v in request.headers.items()},
            body,
            base_url,
        )
        if cheap:
            return await run_in_threadpool(self.gateway.handle, fhir_request)
        if not self.workers:
            self.workers.append(anyio.CapacityLimiter(self.admission.capacity))
        return await anyio.to_thread.run_sync(self.work, fhir_request, limiter=self.workers[0])

    async def admitted(self, request: Request, path: str, base_url: str) -> FhirResponse:
        """The gateway's answer, or an OperationOutcome: throttled, refused, or internal error."""
        client = ""
        try:
            if is_cheap(request.method, path):
                return await self.serve(request, path, base_url, cheap=True)
            client = await self.client_of(request)
            await self.admission.acquire(client)
            try:
                return await self.serve(request, path, base_url, cheap=False)
            finally:
                self.admission.release(client)
        except Throttled as exc:
            result = throttled_response(exc)
            result.audit["subject"] = client.removeprefix("sub:")
            return result
        except FhirHttpError as exc:
            return error_response(exc)
        except Exception:
            # Never a bare 500 with a stack trace: the error is logged (without content) and the
            # client gets an OperationOutcome.
            log.exception("gateway: unexpected error on %s /%s", request.method, path[:100])
            return error_response(http_error(500, "exception", "internal error; it was logged"))

    async def endpoint(self, request: Request) -> Response:
        started = time.monotonic()
        # The client's correlation id if it is a sane one, else ours: in the audit record and the
        # response, so an EHR's support desk and ours can find the same request.
        given = request.headers.get("x-request-id", "")
        request_id = given if _SANE_ID.match(given) else uuid.uuid4().hex
        path = request.path_params.get("path", "")
        base_url = f"{str(request.base_url).rstrip('/')}{self.base_path}"
        # A server span continuing the caller's traceparent, if any (kit.tracing); the request id
        # and the trace id on every log line.
        with (
            tracing.span(
                f"{request.method} {self.interaction(request.method, request.url.path)}",
                tracing.SERVER,
                request.headers.get("traceparent"),
                {"http.request.method": request.method},
            ),
            logcontext.bound(
                request_id,
                tracing.current_trace_id()
                or logcontext.trace_id_of(request.headers.get("traceparent")),
            ),
        ):
            result = await self.admitted(request, path, base_url)
        self.audit(_audit_record(request, f"{self.base_path}/{path}", result, started, request_id))
        return to_response(result, request_id)


#: The gateway's probes (gateway/readiness.py), outside the FHIR base.
LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"
_PROBE_HEADERS = {"Cache-Control": "no-store"}


def probe_routes(gateway: Gateway) -> list[Route]:
    """`/healthz`: 200 while the process serves HTTP (no gRPC call). `/readyz`: 200 while all
    three services answer SERVING on their gRPC health service, else 503; the answer is cached
    for about a second. No token, no audit record, no patient data."""
    timeout = min(readiness.CHECK_TIMEOUT_SECONDS, gateway.settings.call_timeout_seconds)
    state = readiness.Readiness(lambda: gateway.services.health(timeout))

    async def liveness(request: Request) -> Response:
        return JSONResponse({"status": "alive"}, headers=_PROBE_HEADERS)

    async def ready(request: Request) -> Response:
        answer = await run_in_threadpool(state.answer)
        return JSONResponse(
            answer.body(), status_code=200 if answer.ready else 503, headers=_PROBE_HEADERS
        )

    return [
        Route(LIVENESS_PATH, liveness, methods=["GET"]),
        Route(READINESS_PATH, ready, methods=["GET"]),
    ]


def create_app(
    gateway: Gateway,
    base_path: str = "/fhir",
    audit: AuditSink = log_audit,
    metrics: HttpMetrics | None = None,
) -> Starlette:
    """`metrics`: every request counted and timed by interaction (kit.metrics); the app's
    `state.metrics` holds them."""
    base_path = "/" + base_path.strip("/")
    # A bound method, so that Starlette calls it with the request (not as an ASGI app).
    endpoint = _FhirEndpoint(gateway, base_path, audit).endpoint
    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]
    metrics = metrics or HttpMetrics("gateway")
    app = Starlette(
        routes=[
            # SMART discovery and the embedded authorization server (gateway.smart), first.
            *smart.routes(gateway.authenticator.verifier.settings, base_path, audit),
            *probe_routes(gateway),
            Route(f"{base_path}/{{path:path}}", endpoint, methods=methods),
            Route(base_path, endpoint, methods=methods),
        ],
        middleware=[
            Middleware(
                HttpMetricsMiddleware, metrics=metrics, interaction=interaction_of(base_path)
            )
        ],
    )
    app.state.metrics = metrics
    return app


def build(
    settings: Settings | None = None,
    gateway_settings: GatewaySettings | None = None,
    audit: AuditSink = log_audit,
    subscription_settings: SubscriptionSettings | None = None,
) -> tuple[Starlette, Gateway]:
    """The composition root: settings, the token verifier, the gRPC clients, the app; and the
    subscriptions' consumer and sender when they are switched on (started here, stopped by
    `Gateway.close`)."""
    settings = settings or Settings()
    gateway_settings = gateway_settings or GatewaySettings()
    services = Services(gateway_settings)
    authenticator = Authenticator(TokenVerifier(settings))
    limit = gateway_settings.max_body_bytes or settings.max_resource_bytes
    gateway = Gateway(gateway_settings, services, authenticator, limit)
    subscription_settings = subscription_settings or SubscriptionSettings()
    if subscription_settings.enabled:
        gateway.subscriptions = build_subscriptions(
            settings, gateway_settings, subscription_settings
        )
        gateway.subscriptions.start(gateway, authenticator)
    return create_app(gateway, gateway_settings.base_path, audit), gateway


#: How long requests in flight may take to finish once the gateway is asked to stop.
GRACEFUL_SHUTDOWN_SECONDS = 2


def _reuse_port_socket(settings: GatewaySettings) -> socket.socket:
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((settings.host, settings.port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve() -> None:
    """Runs the gateway until SIGTERM/SIGINT (uvicorn handles both gracefully)."""
    import signal
    import sys

    import uvicorn

    # uvicorn drains connections on SIGTERM/SIGINT, then raises the signal again for the handler
    # that was installed before it: make that a clean exit, so a graceful stop reports 0.
    for handled in (signal.SIGTERM, signal.SIGINT):
        signal.signal(handled, lambda *_: sys.exit(0))
    gateway_settings = GatewaySettings()
    app, gateway = build(gateway_settings=gateway_settings)
    metrics_server = None
    index = int(os.environ.get("IOPCARE_WORKER_INDEX", "0") or 0)
    if gateway_settings.metrics_port is not None:
        metrics_port = gateway_settings.metrics_port
        metrics_server = MetricsServer(
            app.state.metrics.registry,
            gateway_settings.host,
            metrics_port + index if metrics_port else 0,  # one endpoint per process
        )
        log.info("gateway metrics on port %d", metrics_server.port)
    # Several processes (iopcare.workers, ADR 0026) share the port: each binds it with
    # SO_REUSEPORT and hands the socket to uvicorn.
    shared = _reuse_port_socket(gateway_settings) if gateway_settings.processes > 1 else None
    try:
        config = uvicorn.Config(
            app,
            host=gateway_settings.host,
            port=gateway_settings.port,
            log_level="warning",
            access_log=False,
            # Requests in flight get this long to finish after SIGTERM/SIGINT; then the
            # connections are closed, so the gateway stops within 5 s under load (issue 16).
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )
        uvicorn.Server(config).run(sockets=[shared] if shared is not None else None)
    finally:
        if metrics_server is not None:
            metrics_server.stop()
        if gateway.subscriptions is not None:
            gateway.subscriptions.stop()
        gateway.services.close()
