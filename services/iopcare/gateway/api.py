"""The FHIR REST interactions: one request in, one response out (synchronous; the ASGI app runs
it in a worker thread because the gRPC calls behind it block).

Order of checks for every request: route (404/405), authentication (401), media types
(406/415), SMART scopes (403), then the handler; the services apply their own rules after that.
Every request, answered or refused, is audited once (`audit.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from iopcare.gateway import (
    billing_export,
    bundles,
    capability,
    codes,
    disclosure,
    handoff,
    reads,
    registry,
    release,
    routing,
    scopes,
    summary_out,
    writes,
)
from iopcare.gateway.client import Caller, Services
from iopcare.gateway.errors import FhirHttpError, Problem, from_kit, http_error
from iopcare.gateway.http import (
    INTERACTION_LETTER,
    Ask,
    FhirRequest,
    FhirResponse,
    GatewayContext,
    error_response,
)
from iopcare.gateway.resources.base import ResourceHandler, pages
from iopcare.gateway.security import Authenticator
from iopcare.gateway.settings import GatewaySettings
from iopcare.gateway.subscriptions import capability as subscription_capability
from iopcare.gateway.subscriptions import rest as subscription_rest
from iopcare.kit import errors as kit_errors
from iopcare.kit import fhir
from iopcare.notes.v1 import notes_service_pb2 as notes_pb

log = logging.getLogger(__name__)

JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir")
XML_HINTS = ("xml",)


Operation = Callable[[GatewayContext, Caller, routing.Route, FhirRequest], FhirResponse]
#: The operations that are not an interaction on one resource type, by route kind.
OPERATIONS: dict[str, Operation] = {
    routing.BUNDLE: lambda gateway, caller, _, request: bundles.process_bundle(
        gateway, caller, bundles.read_bundle(gateway, request), request
    ),
    routing.HANDOFF: lambda gateway, caller, _, request: handoff.handoff(gateway, caller, request),
    routing.HANDOFF_SUMMARY: lambda gateway, caller, route, request: summary_out.handoff_summary(
        gateway, caller, route.id, request
    ),
    routing.EXPORT_CSV: billing_export.export_csv,
    routing.EVERYTHING: lambda gateway, caller, route, request: reads.everything(
        gateway, caller, route.id, request
    ),
}

#: An interaction on one resource type, as asked (`http.Ask`).
Interaction = Callable[[Ask], FhirResponse]
#: The interactions, by route kind: (FHIR interaction code, what answers it).
INTERACTIONS: dict[str, tuple[str, Interaction]] = {
    routing.READ: ("read", reads.read),
    routing.VREAD: ("vread", reads.vread),
    routing.HISTORY: ("history-instance", reads.history),
    routing.SEARCH: ("search-type", reads.search_type),
    routing.CREATE: ("create", writes.create_type),
    routing.UPDATE: ("update", writes.update_instance),
}


@dataclass(eq=False)
class Gateway:
    """Routes, authenticates, checks scopes and calls the handlers."""

    settings: GatewaySettings
    services: Services
    authenticator: Authenticator
    max_body_bytes: int
    handlers: dict[str, ResourceHandler] = field(init=False)
    #: The one release rule every outgoing resource passes through (release.py).
    release_rule: release.ReleaseRule = field(init=False)
    #: Topic-based Subscriptions (gateway/subscriptions), when switched on.
    subscriptions: Any = None

    def __post_init__(self) -> None:
        self.handlers = {h.type: h(self.services) for h in registry.HANDLERS}
        self.release_rule = release.ReleaseRule(self._consents)

    # -- entry point ------------------------------------------------------------------------

    def handle(self, request: FhirRequest) -> FhirResponse:
        with release.request_scope():
            try:
                response = self._handle(request)
            except FhirHttpError as exc:
                response = error_response(exc)
            except kit_errors.IopcareError as exc:
                response = error_response(from_kit(exc))
            except release.UnreleasedContent as exc:
                response = _unreleased(request, exc)
            try:
                # The response writer's guard: nothing leaves that the release rule did not let
                # out in this request (42 CFR 2.13(a); release.py).
                release.check_egress(response.body)
            except release.UnreleasedContent as exc:
                response = _unreleased(request, exc)
        response.audit.setdefault("subject", request.subject)
        return response

    def _handle(self, request: FhirRequest) -> FhirResponse:
        if self.subscriptions is not None and subscription_rest.handles(request.path):
            self._check_accept(request)
            caller = self.authenticator.authenticate(request.header("authorization"))
            request.subject = caller.principal.subject
            return subscription_rest.handle(self.subscriptions, self, caller, request)
        route = routing.route(request.method, request.path)
        self._check_accept(request)
        if route.kind == routing.METADATA:
            statement = capability.capability_statement(
                request.base_url, self.max_body_bytes, _version()
            )
            if self.subscriptions is not None:
                subscription_capability.describe(statement)
            return FhirResponse(200, statement)
        if route.kind == routing.OPERATION_DEFINITION:
            try:
                return FhirResponse(200, capability.operation_definition(route.id))
            except KeyError:
                raise http_error(
                    404, "not-found", f"OperationDefinition/{route.id} not found"
                ) from None
        caller = self.authenticator.authenticate(request.header("authorization"))
        request.subject = caller.principal.subject
        return self.dispatch(caller, route, request)

    def dispatch(self, caller: Caller, route: routing.Route, request: FhirRequest) -> FhirResponse:
        operation = OPERATIONS.get(route.kind)
        if operation is not None:
            return operation(self, caller, route, request)
        handler = self.handler(route.type)
        interaction, answer = INTERACTIONS[route.kind]
        if not handler.supports(interaction):
            allowed = ", ".join(handler.interactions())
            raise FhirHttpError(
                405,
                Problem(
                    "not-supported",
                    f"{route.type} does not support {interaction}; it supports {allowed}",
                ),
                headers={"Allow": _allow(handler)},
            )
        only = self.require_scope(caller, route.type, INTERACTION_LETTER[route.kind])
        return answer(Ask(self, caller, handler, route, request, only))

    # -- helpers ----------------------------------------------------------------------------

    def handler(self, resource_type: str) -> ResourceHandler:
        found = self.handlers.get(resource_type)
        if found is None:
            known = True
            try:
                fhir.model_class(resource_type)
            except KeyError:
                known = False
            what = "is not served here" if known else "is not a FHIR R4 resource type"
            raise http_error(404, "not-supported", f"{resource_type[:64]} {what}")
        return found

    def require_scope(self, caller: Caller, resource_type: str, letter: str) -> str | None:
        """403 unless the scopes allow the interaction; returns the one patient it is limited to
        (a `patient/` scope with a launch context), or None for every patient."""
        allowed = scopes.patients_allowed(caller.scopes, resource_type, letter, caller.patient)
        if allowed is None:
            name = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}
            raise FhirHttpError(
                403,
                Problem(
                    "forbidden",
                    f"the token's scopes do not allow {name[letter]} on {resource_type} "
                    f"(needs e.g. system/{resource_type}.{letter})",
                ),
                reason="SCOPE",
            )
        return None if allowed == scopes.ALL_PATIENTS else allowed

    def require_all_patients(self, caller: Caller, resource_type: str, letter: str) -> None:
        """For operations that are not about one known patient ($handoff, bundles of writes)."""
        if self.require_scope(caller, resource_type, letter) is not None:
            raise FhirHttpError(
                403,
                Problem("forbidden", f"needs system/ or user/ scopes on {resource_type}"),
                reason="SCOPE",
            )

    def _check_accept(self, request: FhirRequest) -> None:
        wanted = [v for k, v in request.query if k == "_format"]
        for value in wanted:
            if any(h in value.lower() for h in XML_HINTS):
                raise http_error(
                    406,
                    "not-supported",
                    "only JSON is served (_format=json); XML is not",
                    "_format",
                )
            if value.lower() not in ("json", *JSON_TYPES):
                raise http_error(406, "not-supported", f"_format={value[:40]!r} is not served")
        accept = request.header("accept").lower()
        if (
            accept
            and "xml" in accept
            and not any(t in accept for t in ("json", "*/*", "application/*"))
        ):
            raise http_error(406, "not-supported", "only application/fhir+json is served")

    def body(self, request: FhirRequest, expected_type: str) -> dict[str, Any]:
        content_type = request.header("content-type").split(";")[0].strip().lower()
        if content_type and content_type not in JSON_TYPES:
            detail = "XML is not supported; send " if "xml" in content_type else "send "
            raise http_error(
                415, "not-supported", f"{detail}application/fhir+json, not {content_type[:60]}"
            )
        if not request.body:
            raise http_error(400, "required", "the request needs a JSON body")
        data = fhir.load_json(request.body, max_bytes=self.max_body_bytes)
        if not isinstance(data, dict):
            raise http_error(400, "structure", "a FHIR resource must be a JSON object")
        found_type = data.get("resourceType")
        if not isinstance(found_type, str):
            raise http_error(400, "required", "resourceType is missing", "resourceType")
        if found_type != expected_type:
            raise http_error(
                400,
                "invalid",
                f"the body is a {found_type[:64]}, the URL expects a {expected_type}",
                "resourceType",
            )
        # Validate here too, so a bad body is 400/422 with element paths before any service call.
        _, model = fhir.parse_document(data, expected_type, max_bytes=self.max_body_bytes)
        codes.check(model, expected_type)
        return data

    # -- interactions -----------------------------------------------------------------------
    def _consents(self, caller: Caller, patient_id: str) -> list[Any]:
        """The patient's consents as notes keeps them (none if notes will not say)."""
        try:
            consents = pages(
                lambda token: self.services.call(
                    caller,
                    self.services.notes.ListConsents,
                    notes_pb.ListConsentsRequest(
                        patient_id=patient_id, page_size=1000, page_token=token
                    ),
                ),
                "consents",
            )
        except FhirHttpError:
            return []  # unknown, unreachable or refused: nothing is released
        return [disclosure.consent_facts(c) for c in consents]


def _unreleased(request: FhirRequest, exc: release.UnreleasedContent) -> FhirResponse:
    """A response that would have carried content the release rule did not let out: a gateway
    bug, refused (fail closed) and logged without content."""
    log.error("gateway: refused to send unreleased content on %s: %s", request.method, exc)
    return error_response(http_error(500, "exception", "internal error; it was logged"))


def _allow(handler: ResourceHandler) -> str:
    interactions = handler.interactions()
    methods = []
    if {"read", "search-type"} & set(interactions):
        methods.append("GET")
    if "create" in interactions:
        methods.append("POST")
    if "update" in interactions:
        methods.append("PUT")
    return ", ".join(methods)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("iopcare")
    except Exception:  # pragma: no cover - not installed as a package
        return "dev"
