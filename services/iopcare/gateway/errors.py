"""Errors the FHIR way: every failure is an HTTP status with an OperationOutcome.

`FhirHttpError` is what handlers raise; `from_grpc` maps a service's gRPC status (with its
`google.rpc` ErrorInfo and BadRequest details) to the status FHIR prescribes, in this one place.
Nothing a client sends may become a 500: a service's INTERNAL or UNKNOWN becomes 502 (the gateway
worked, the service behind it failed) and unreachable services 503.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from iopcare.kit import errors as kit_errors
from iopcare.kit import fhir


@dataclass(frozen=True)
class Problem:
    """One issue of an OperationOutcome."""

    code: str
    diagnostics: str
    expression: str | None = None
    severity: str = "error"


class FhirHttpError(Exception):
    """An HTTP error status with the OperationOutcome issues that explain it."""

    def __init__(
        self,
        status: int,
        problems: list[Problem] | Problem,
        *,
        headers: dict[str, str] | None = None,
        reason: str = "",
    ) -> None:
        self.problems = problems if isinstance(problems, list) else [problems]
        super().__init__(self.problems[0].diagnostics if self.problems else str(status))
        self.status = status
        self.headers = headers or {}
        self.reason = reason

    def outcome(self) -> dict[str, Any]:
        return outcome(self.problems)


def outcome(problems: list[Problem]) -> dict[str, Any]:
    return fhir.operation_outcome(
        [fhir.Issue(p.severity, p.code, p.diagnostics, p.expression) for p in problems]
    )


def http_error(
    status: int, code: str, diagnostics: str, expression: str | None = None
) -> FhirHttpError:
    return FhirHttpError(status, Problem(code, diagnostics, expression))


#: gRPC status -> (HTTP status, OperationOutcome issue type). FAILED_PRECONDITION depends on the
#: reason (a stale version is 412, as FHIR's versioned update says; anything else a conflict).
_GRPC: dict[grpc.StatusCode, tuple[int, str]] = {
    grpc.StatusCode.INVALID_ARGUMENT: (422, "processing"),
    grpc.StatusCode.NOT_FOUND: (404, "not-found"),
    grpc.StatusCode.ALREADY_EXISTS: (409, "duplicate"),
    grpc.StatusCode.FAILED_PRECONDITION: (409, "conflict"),
    grpc.StatusCode.PERMISSION_DENIED: (403, "forbidden"),
    grpc.StatusCode.UNAUTHENTICATED: (401, "login"),
    grpc.StatusCode.ABORTED: (409, "transient"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (413, "too-costly"),
    grpc.StatusCode.UNAVAILABLE: (503, "transient"),
    grpc.StatusCode.DEADLINE_EXCEEDED: (504, "timeout"),
    grpc.StatusCode.UNIMPLEMENTED: (501, "not-supported"),
    grpc.StatusCode.OUT_OF_RANGE: (422, "value"),
    grpc.StatusCode.CANCELLED: (503, "transient"),
}


#: ErrorInfo reasons of a RESOURCE_EXHAUSTED that means "this client exceeds its share"
#: (kit.limits, notes' WatchThread places) rather than "the request is too large".
THROTTLED = frozenset(
    {"TOO_MANY_CALLS_FOR_CLIENT", "TOO_MANY_WATCHERS_FOR_CLIENT", "TOO_MANY_WATCHERS"}
)


@dataclass(frozen=True)
class GrpcFailure:
    """What a failed call said: its code, message, ErrorInfo reason and metadata, and field
    violations. Built from a live RpcError by `failure_of`, or directly in tests."""

    code: grpc.StatusCode
    message: str
    reason: str = ""
    metadata: tuple[tuple[str, str], ...] = ()
    violations: tuple[tuple[str, str], ...] = ()


def failure_of(exc: grpc.RpcError) -> GrpcFailure:
    call: Any = exc
    code = call.code() if hasattr(call, "code") else grpc.StatusCode.UNKNOWN
    message = call.details() if hasattr(call, "details") else ""
    reason = ""
    metadata: tuple[tuple[str, str], ...] = ()
    violations: tuple[tuple[str, str], ...] = ()
    try:
        status = rpc_status.from_call(call)
    except (ValueError, AttributeError):
        status = None
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason, metadata = info.reason, tuple(sorted(info.metadata.items()))
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                violations = tuple((v.field, v.description) for v in bad.field_violations)
    return GrpcFailure(code, message or "", reason, metadata, violations)


def expression_of(field: str) -> str:
    """A service's field path as a FHIRPath expression: `fhir_json.CarePlan.subject` ->
    `CarePlan.subject`."""
    return field.removeprefix("fhir_json.").removeprefix("fhir_json")


def from_failure(failure: GrpcFailure) -> FhirHttpError:
    """The HTTP error a failed service call means (one place for the whole gateway)."""
    status, code = _GRPC.get(failure.code, (502, "exception"))
    headers: dict[str, str] = {}
    if failure.code == grpc.StatusCode.FAILED_PRECONDITION and failure.reason == "STALE_VERSION":
        status, code = 412, "conflict"
        current = dict(failure.metadata).get("current_version")
        if current:
            headers["ETag"] = f'W/"{current}"'
    if failure.code == grpc.StatusCode.RESOURCE_EXHAUSTED and failure.reason in THROTTLED:
        # The caller exceeds its share of a service (kit.limits), not a size limit: 429.
        status, code = 429, "throttled"
        headers["Retry-After"] = "1"
    if failure.code == grpc.StatusCode.INVALID_ARGUMENT and failure.reason == "REQUEST_ID_REUSED":
        # The idempotency key a REST request maps to (If-None-Exist, a handoff's Bundle
        # identifier) already stands for a different request: a conflict with what is stored,
        # not a fault in this body (kit.requests).
        status, code = 409, "conflict"
    message = failure.message if status != 502 else "a service behind the gateway failed"
    if failure.code == grpc.StatusCode.PERMISSION_DENIED and failure.reason == (
        "OUTSIDE_LAUNCH_CONTEXT"
    ):
        # Under a patient/ scope another patient's resources do not exist for the caller
        # (test-matrix D8: the same answer as "not found"); the service audited the refusal.
        status, code, message = 404, "not-found", "not found"
    problems = [Problem(code, message)]
    problems += [
        Problem("invalid" if status == 422 else code, description, expression_of(field) or None)
        for field, description in failure.violations
    ]
    return FhirHttpError(status, problems, headers=headers, reason=failure.reason)


def from_grpc(exc: grpc.RpcError) -> FhirHttpError:
    return from_failure(failure_of(exc))


def from_kit(exc: kit_errors.IopcareError) -> FhirHttpError:
    """A kit error raised inside the gateway (the FHIR codec's), as HTTP."""
    if isinstance(exc, fhir.FhirError):
        return FhirHttpError(
            400
            if any(i.code == "structure" or i.expression == "resourceType" for i in exc.issues)
            else 422,
            [Problem(i.code, i.diagnostics, i.expression) for i in exc.issues],
        )
    if isinstance(exc, kit_errors.ResourceExhausted):
        return http_error(413, "too-costly", exc.message)
    if isinstance(exc, kit_errors.Unauthenticated):
        return http_error(401, "login", exc.message)
    if isinstance(exc, kit_errors.PermissionDenied):
        return http_error(403, "forbidden", exc.message)
    if isinstance(exc, kit_errors.NotFound):
        return http_error(404, "not-found", exc.message)
    if isinstance(exc, kit_errors.InvalidArgument):
        return FhirHttpError(
            422,
            [Problem("invalid", exc.message)]
            + [Problem("invalid", v.description, expression_of(v.field)) for v in exc.violations],
        )
    return http_error(409, "conflict", exc.message)
