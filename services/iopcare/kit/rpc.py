"""The gRPC server factory and the three interceptors every service uses.

- `ErrorInterceptor` turns the domain errors of `iopcare.kit.errors` into gRPC status codes with
  `google.rpc` details (ErrorInfo always, BadRequest field violations for invalid input), and
  anything unexpected into INTERNAL without leaking its message (it may hold patient data).
- `AuthInterceptor` reads `authorization: Bearer <jwt>` into the call's Principal and refuses a
  call without a valid one, except health checking and reflection, which stay open so standard
  tooling (grpc_health_probe, grpcurl, Kubernetes probes) works without credentials. It then
  applies the SMART scopes: each service declares, per RPC, the resource type and interaction it
  touches (`kit.scopes.Rule`), and a token limited by scopes may call only what they grant; a
  grant through a `patient/` scope pins the call to the token's launch patient, which
  `kit.access` enforces wherever patient data is reached. Every refusal leaves one audit row.
- `LimitInterceptor` (inside the auth one, so it knows the caller) keeps one client from taking
  every worker thread (`kit.limits`): its calls beyond its share are RESOURCE_EXHAUSTED with a
  `google.rpc.RetryInfo`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from grpc_status import rpc_status
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from iopcare.kit import audit, auth, errors, limits, scopes
from iopcare.kit.interceptors import Behavior, HandlerInterceptor, within
from iopcare.kit.logcontext import LogContextInterceptor
from iopcare.kit.metrics import RpcMetricsInterceptor, ServiceMetrics
from iopcare.kit.settings import Settings

log = logging.getLogger(__name__)

ERROR_DOMAIN = "iopcare"

OPEN_METHOD_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)

#: Each kind of error -> its gRPC status code, which it is named after (kit.errors).
_CODES = [(kind, code_pb2.Code.Value(kind.reason)) for kind in errors.KINDS]


def status_for(error: errors.IopcareError) -> grpc.Status:
    code = next((c for cls, c in _CODES if isinstance(error, cls)), code_pb2.UNKNOWN)
    details = []
    info = any_pb2.Any()
    info.Pack(
        error_details_pb2.ErrorInfo(
            reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata
        )
    )
    details.append(info)
    if isinstance(error, errors.InvalidArgument) and error.violations:
        bad_request = any_pb2.Any()
        bad_request.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field, description=v.description
                    )
                    for v in error.violations
                ]
            )
        )
        details.append(bad_request)
    if isinstance(error, limits.Throttled):
        # Tells a well-behaved client when to come back (AIP-194), instead of retrying at once.
        retry = any_pb2.Any()
        retry.Pack(
            error_details_pb2.RetryInfo(
                retry_delay=duration_pb2.Duration(
                    seconds=int(error.retry_after_seconds),
                    nanos=int((error.retry_after_seconds % 1) * 1e9),
                )
            )
        )
        details.append(retry)
    status = status_pb2.Status(code=code, message=error.message, details=details)
    return rpc_status.to_status(status)


def _internal_status() -> grpc.Status:
    return rpc_status.to_status(
        status_pb2.Status(code=code_pb2.INTERNAL, message="internal error; it has been logged")
    )


class ErrorInterceptor(HandlerInterceptor):
    """Maps exceptions to gRPC status in one place (never in each servicer method)."""

    def wrap(self, fn: Behavior, streaming: bool, method: str) -> Behavior:
        return within(fn, streaming, lambda _request, context: _mapped(context, method))


@contextlib.contextmanager
def _mapped(context: grpc.ServicerContext, method: str) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        if _already_aborted(context):
            raise
        _abort(context, exc, method)


def _abort(context: grpc.ServicerContext, exc: BaseException, method: str) -> None:
    if isinstance(exc, errors.IopcareError):
        context.abort_with_status(status_for(exc))
    if isinstance(exc, DataError):
        # A value the database refuses (too long, out of range): the request's fault, not ours.
        context.abort_with_status(
            status_for(errors.InvalidArgument("a value in the request is too long or out of range"))
        )
    if isinstance(exc, IntegrityError):
        context.abort_with_status(
            status_for(errors.Aborted("the change conflicted with a concurrent one; retry it"))
        )
    if isinstance(exc, DBAPIError):
        log.warning("%s: database error %s", method, type(exc).__name__)
        context.abort_with_status(status_for(errors.Unavailable("the database is unavailable")))
    log.exception("%s: unexpected error", method, exc_info=exc)
    context.abort_with_status(_internal_status())


def _already_aborted(context: grpc.ServicerContext) -> bool:
    # context.abort() raises a plain Exception after setting the code; let it through untouched.
    code = getattr(context, "code", lambda: None)()
    return code is not None and code != grpc.StatusCode.OK


#: Who refused calls are audited as: nothing of a refused token is kept (neither its text nor
#: a subject a forger could choose), only the method and the reason.
UNAUTHENTICATED = auth.Principal(subject="unauthenticated", role="none")
#: The audit action of an authentication refusal.
AUTHENTICATE = "authenticate"
_AUDIT_ACTION = {
    scopes.CREATE: audit.CREATE,
    scopes.READ: audit.READ,
    scopes.UPDATE: audit.UPDATE,
    scopes.DELETE: audit.UPDATE,
    scopes.SEARCH: audit.SEARCH,
}

#: Records one refused call: (principal, action, resource, reason).
RefusalSink = Callable[[auth.Principal, str, str, str], None]


def rules_for(service_name: str, rules: Mapping[str, scopes.Rule]) -> dict[str, scopes.Rule]:
    """A service's per-RPC rules keyed by the full method name the interceptor sees."""
    return {f"/{service_name}/{rpc}": rule for rpc, rule in rules.items()}


def _is_limited_by_scopes(principal: auth.Principal) -> bool:
    """Whose calls the scopes decide.

    An outside EHR (`system`) always: its token is worth exactly its scopes, none means nothing.
    Any other token that carries resource scopes (a clinician's app launched through SMART) is
    limited by them too. Internal identities (`service`) are not: they are issued only to the
    services and the gateway's own calls. A clinician's own app token without scopes is governed
    by the care team and role rules alone.
    """
    if principal.role == "service":
        return False
    return principal.role == "system" or bool(principal.parsed_scopes)


class AuthInterceptor(HandlerInterceptor):
    """Authenticates every call except health checking and reflection, then applies the scopes."""

    def __init__(
        self,
        verifier: auth.TokenVerifier,
        rules: Mapping[str, scopes.Rule] | None = None,
        on_refusal: RefusalSink | None = None,
    ) -> None:
        self.verifier = verifier
        self.rules = rules
        self.on_refusal = on_refusal

    def passes(self, method: str) -> bool:
        return method.startswith(OPEN_METHOD_PREFIXES)

    def wrap(self, fn: Behavior, streaming: bool, method: str) -> Behavior:
        return within(fn, streaming, lambda request, context: self._as(request, context, method))

    def _refused(self, principal: auth.Principal, action: str, resource: str, reason: str) -> None:
        if self.on_refusal is None:
            return
        try:
            self.on_refusal(principal, action, resource, reason)
        except Exception:  # the refusal stands even if its audit row cannot be written
            log.exception("cannot audit a refused call to %s", resource)

    def _principal(self, context: grpc.ServicerContext, method: str) -> auth.Principal:
        try:
            values = [v for k, v in context.invocation_metadata() if k == "authorization"]
            if len(values) != 1 or not isinstance(values[0], str):
                raise errors.Unauthenticated("a bearer token is required", reason="MISSING_TOKEN")
            scheme, _, token = values[0].partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise errors.Unauthenticated("a bearer token is required", reason="MISSING_TOKEN")
            return self.verifier.verify(token.strip())
        except errors.Unauthenticated as exc:
            # test-matrix C11: one audit row per refusal, refused tokens included.
            self._refused(UNAUTHENTICATED, AUTHENTICATE, method, exc.reason)
            raise

    def _authorize(self, principal: auth.Principal, method: str, request: Any) -> auth.Principal:
        """The principal for this call (pinned to the launch patient if only a `patient/` scope
        grants it), or PermissionDenied when the token's scopes do not grant the RPC."""
        if self.rules is None or not _is_limited_by_scopes(principal):
            return principal
        rule = self.rules.get(method)
        if rule is None:
            # Fail closed: an RPC nobody declared is not opened by any scope.
            self._refused(principal, audit.READ, method, "RPC_NOT_DECLARED")
            raise errors.PermissionDenied(
                "this call is not open to scoped tokens", reason="RPC_NOT_DECLARED"
            )
        needs = rule.needs(request)
        allowed = scopes.grant(principal.parsed_scopes, needs, principal.patient_context)
        if allowed is None:
            resource_type, letter = needs[0]
            self._refused(
                principal, _AUDIT_ACTION.get(letter, audit.READ), resource_type, "SCOPE_NOT_GRANTED"
            )
            raise errors.PermissionDenied(
                "the token's scopes do not grant "
                + ", ".join(f"{t}.{letter}" for t, letter in needs),
                reason="SCOPE_NOT_GRANTED",
            )
        if allowed == scopes.ALL_PATIENTS:
            return principal
        return dataclasses.replace(principal, patient_limit=allowed)

    @contextlib.contextmanager
    def _as(self, request: Any, context: grpc.ServicerContext, method: str) -> Iterator[None]:
        """The call runs as the principal its token proves (and its scopes allow)."""
        principal = self._authorize(self._principal(context, method), method, request)
        token = auth.set_principal(principal)
        try:
            yield
        finally:
            auth.reset_principal(token)


class LimitInterceptor(HandlerInterceptor):
    """At most `limiter.limit` calls of one client in flight (streams for as long as they are
    open); health checking and reflection are never limited (probes must always answer)."""

    def __init__(self, limiter: limits.ClientLimiter) -> None:
        self.limiter = limiter

    def passes(self, method: str) -> bool:
        return method.startswith(OPEN_METHOD_PREFIXES) or self.limiter.limit <= 0

    def wrap(self, fn: Behavior, streaming: bool, method: str) -> Behavior:
        return within(
            fn, streaming, lambda _request, context: self.limiter.hold(self._client(context))
        )

    @staticmethod
    def _client(context: grpc.ServicerContext) -> str:
        # Inside the auth interceptor every call has its principal; the peer is the fallback.
        try:
            return f"sub:{auth.current_principal().subject}"
        except errors.Unauthenticated:
            return limits.peer_client(str(context.peer()))


def calls_per_client(configured: int | None, max_workers: int) -> int:
    """The per-client call limit: as configured (0: none), or by default half the worker
    threads, so that one client always leaves the other half to everyone else."""
    if configured is None:
        return max(1, max_workers // 2)
    return configured


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path
    client_ca: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> TlsFiles | None:
        if settings.tls_cert_file is None or settings.tls_key_file is None:
            return None
        return cls(settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file)

    def credentials(self) -> grpc.ServerCredentials:
        pair = [(self.key.read_bytes(), self.cert.read_bytes())]
        if self.client_ca is None:
            return grpc.ssl_server_credentials(pair)
        return grpc.ssl_server_credentials(
            pair, root_certificates=self.client_ca.read_bytes(), require_client_auth=True
        )


Registration = tuple[Callable[[Any, grpc.Server], None], Any, str]


def create_server(
    registrations: Sequence[Registration],
    address: str,
    verifier: auth.TokenVerifier,
    *,
    max_workers: int = 16,
    max_message_bytes: int = 4 * 1024 * 1024,
    tls: TlsFiles | None = None,
    rules: Mapping[str, scopes.Rule] | None = None,
    on_refusal: RefusalSink | None = None,
    max_calls_per_client: int | None = None,
    retry_after_seconds: float = 1.0,
    metrics: ServiceMetrics | None = None,
    reuse_port: bool = False,
) -> tuple[grpc.Server, int, health.HealthServicer]:
    """Builds a server with health, reflection and the interceptors; binds `address`.

    `registrations` are `(add_XServicer_to_server, servicer, full_service_name)`. Pass port 0 in
    `address` to bind a free port (tests); the bound port is returned. `rules` are the
    services' per-RPC scope rules by full method name (`rules_for`); `on_refusal` audits refused
    calls. `max_calls_per_client`:
    see `calls_per_client`. `metrics`: every call is counted and timed (kit.metrics).
    `reuse_port`: several processes bind the same port (SO_REUSEPORT, iopcare.workers).
    """
    limiter = limits.ClientLimiter(
        calls_per_client(max_calls_per_client, max_workers), retry_after_seconds
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
        # Order matters: the error interceptor is outermost so that authentication failures are
        # mapped like any other error; the limit is innermost so that it counts the
        # authenticated subject's calls (an unauthenticated call is refused before it counts).
        interceptors=[
            # Outermost: it counts the status the client finally gets.
            *([RpcMetricsInterceptor(metrics)] if metrics is not None else []),
            # Request and trace ids on every log line of the call, errors' included.
            LogContextInterceptor(),
            ErrorInterceptor(),
            AuthInterceptor(verifier, rules, on_refusal),
            LimitInterceptor(limiter),
        ],
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ("grpc.so_reuseport", 1 if reuse_port else 0),
        ],
        maximum_concurrent_rpcs=max_workers * 32,
    )
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = []
    for add, servicer, name in registrations:
        add(servicer, server)
        names.append(name)
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        [
            *names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    if tls is not None:
        port = server.add_secure_port(address, tls.credentials())
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        raise RuntimeError(f"cannot bind {address}")
    return server, port, health_servicer


def bearer(token: str) -> list[tuple[str, str]]:
    """Call metadata carrying a bearer token (for clients and tests)."""
    return [("authorization", f"Bearer {token}")]


def wait_serving(address: str, timeout: float = 60.0, service: str = "") -> None:
    """Polls the standard gRPC health service until it answers SERVING: the container health check
    (deploy/compose.yaml) and the development process launcher (`iopcare.devtools.processes`)."""
    deadline = time.monotonic() + timeout
    last: str = "no answer"
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
                last = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            except grpc.RpcError as exc:
                last = exc.code().name
            time.sleep(0.1)
    raise TimeoutError(f"{address} not SERVING after {timeout:.0f}s (last: {last})")
