"""The gateway's own request and response types, and what its operations need of the gateway.

`api.Gateway` routes a request to a resource handler or to an operation (a transaction or batch
Bundle, `$handoff`, `$handoff-summary`); the operations (`bundles`, `handoff`, `summary_out`) see
the gateway only as a `GatewayContext`, so they do not import `api` and `api` imports them like
any other module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from iopcare.gateway import routing, scopes
from iopcare.gateway.errors import FhirHttpError

if TYPE_CHECKING:
    from iopcare.gateway.client import Caller, Services
    from iopcare.gateway.release import ReleaseRule
    from iopcare.gateway.resources.base import ResourceHandler
    from iopcare.gateway.settings import GatewaySettings


@dataclass
class FhirRequest:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes
    base_url: str
    #: Who made the request, once authenticated (for the audit record of refusals too).
    subject: str = ""

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


@dataclass
class FhirResponse:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    #: What the audit record says about the request (resource, patient, outcome detail).
    audit: dict[str, str] = field(default_factory=dict)


def error_response(exc: FhirHttpError) -> FhirResponse:
    return FhirResponse(exc.status, exc.outcome(), dict(exc.headers), {"reason": exc.reason})


def etag(version: int) -> str:
    return f'W/"{version}"'


def parse_etag(value: str) -> int | None:
    text = value.strip()
    if text.startswith("W/"):
        text = text[2:]
    text = text.strip('"')
    return int(text) if text.isdigit() and len(text) <= 9 else None


INTERACTION_LETTER = {
    routing.READ: scopes.READ,
    routing.VREAD: scopes.READ,
    routing.HISTORY: scopes.READ,
    routing.SEARCH: scopes.SEARCH,
    routing.CREATE: scopes.CREATE,
    routing.UPDATE: scopes.UPDATE,
}


def dumps(body: Any) -> bytes:
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body, separators=(",", ":")).encode()


class GatewayContext(Protocol):
    """What an operation uses of the gateway (`api.Gateway` is the one implementation)."""

    settings: GatewaySettings
    services: Services
    max_body_bytes: int
    handlers: dict[str, ResourceHandler]
    release_rule: ReleaseRule

    def handler(self, resource_type: str) -> ResourceHandler: ...

    def require_scope(self, caller: Caller, resource_type: str, letter: str) -> str | None: ...

    def require_all_patients(self, caller: Caller, resource_type: str, letter: str) -> None: ...

    def body(self, request: FhirRequest, expected_type: str) -> dict[str, Any]:
        """The request's JSON body, checked to be a valid `expected_type` (400/415/422)."""
        ...

    def dispatch(self, caller: Caller, route: routing.Route, request: FhirRequest) -> FhirResponse:
        """Answers one authenticated request (a Bundle entry runs through here)."""
        ...


@dataclass(frozen=True)
class Ask:
    """One interaction asked of one resource type: by whom, of which handler, on which route,
    limited to one patient (`only`: a `patient/` scope's launch context) or to none (None). The
    caller's scopes allow it (`api.Gateway.dispatch` checked them)."""

    gateway: GatewayContext
    caller: Caller
    handler: ResourceHandler
    route: routing.Route
    request: FhirRequest
    only: str | None
