"""The one error hierarchy of iopcare.

Domain code raises these; the gRPC error interceptor (and later the REST exception handler) turns
each into a status with `google.rpc` details in one place, so no servicer method maps errors itself.
Every error has a `reason`: a stable UPPER_SNAKE word clients can branch on (Google AIP-193).
Messages must never carry patient data beyond what the caller sent: they end up in logs and in
responses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class FieldViolation:
    """One invalid field: `field` is a path such as `fhir_json.subject` or `CarePlan.status`."""

    field: str
    description: str


def _upper_snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()


class IopcareError(Exception):
    """Base of every error the services raise on purpose.

    Each kind directly below this one has its name in UPPER_SNAKE as `reason` (`NotFound`:
    `NOT_FOUND`) unless the class sets its own; these kinds are named after the gRPC status code
    they map to (kit.rpc). A subclass of a kind keeps its parent's reason unless it sets one."""

    reason: str = "IOPCARE_ERROR"

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "reason" not in cls.__dict__ and IopcareError in cls.__bases__:
            cls.reason = _upper_snake(cls.__name__)

    def __init__(self, message: str, *, reason: str | None = None, **metadata: str) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.metadata: dict[str, str] = {k: str(v) for k, v in metadata.items()}


class InvalidArgument(IopcareError):
    """The request itself is wrong; retrying it unchanged cannot succeed."""

    def __init__(
        self,
        message: str,
        violations: list[FieldViolation] | None = None,
        *,
        reason: str | None = None,
        **metadata: str,
    ) -> None:
        super().__init__(message, reason=reason, **metadata)
        self.violations: list[FieldViolation] = list(violations or [])


class NotFound(IopcareError):
    """No such resource, or one the caller may not know exists (same answer on purpose)."""


class AlreadyExists(IopcareError):
    """A resource with this identity exists already."""


class FailedPrecondition(IopcareError):
    """The system is not in the state the request needs (a stale version, a plan not ready)."""


class StaleVersion(FailedPrecondition):
    """An update carried an expected version that is no longer current; nothing was written."""

    reason = "STALE_VERSION"

    def __init__(self, resource: str, expected: int, current: int) -> None:
        super().__init__(
            f"{resource} is at version {current}, not {expected}",
            resource=resource,
            expected_version=str(expected),
            current_version=str(current),
        )
        self.current_version = current


class PermissionDenied(IopcareError):
    """The caller may not do this (or see this patient)."""


class Unauthenticated(IopcareError):
    """The call carries no valid credentials."""


class Aborted(IopcareError):
    """A database conflict worth retrying (serialization failure, lost race on a unique key)."""


class Unavailable(IopcareError):
    """A dependency (database, broker) cannot be reached right now; retry later."""


class ResourceExhausted(IopcareError):
    """The request is too large or too costly to process."""


#: The kinds of error, one per gRPC status code a request can fail with on purpose.
KINDS: tuple[type[IopcareError], ...] = (
    InvalidArgument,
    NotFound,
    AlreadyExists,
    FailedPrecondition,
    PermissionDenied,
    Unauthenticated,
    Aborted,
    Unavailable,
    ResourceExhausted,
)


@dataclass
class FieldViolations:
    """Collects violations so validation reports every problem at once, not the first only."""

    items: list[FieldViolation] = field(default_factory=list)

    def add(self, path: str, description: str) -> None:
        self.items.append(FieldViolation(path, description))

    def raise_if_any(self, message: str = "the request is invalid") -> None:
        if self.items:
            raise InvalidArgument(message, self.items)


def must_exist(item: T | None, name: str) -> T:
    """`item`, or NotFound naming the resource `name` (`Consent/123`) when there is none."""
    if item is None:
        raise NotFound(f"{name} not found", resource=name)
    return item
