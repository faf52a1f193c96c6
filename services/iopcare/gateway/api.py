"""The FHIR REST interactions: one request in, one response out (synchronous; the ASGI app runs
it in a worker thread because the gRPC calls behind it block).

Order of checks for every request: route (404/405), authentication (401), media types
(406/415), SMART scopes (403), then the handler; the services apply their own rules after that.
Every request, answered or refused, is audited once (`audit.py`).
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

from iopcare.gateway import (
    bundles,
    capability,
    codes,
    disclosure,
    handoff,
    registry,
    release,
    routing,
    scopes,
    summary_out,
)
from iopcare.gateway.client import Caller, Services
from iopcare.gateway.errors import FhirHttpError, Problem, from_kit, http_error
from iopcare.gateway.http import (
    INTERACTION_LETTER,
    FhirRequest,
    FhirResponse,
    GatewayContext,
    error_response,
    etag,
    parse_etag,
)
from iopcare.gateway.resources.base import Created, Found, ResourceHandler, reference_id
from iopcare.gateway.search import SearchQuery, matches, pairs_of
from iopcare.gateway.security import Authenticator
from iopcare.gateway.settings import GatewaySettings
from iopcare.gateway.summary import reshapes, shape
from iopcare.kit import errors as kit_errors
from iopcare.kit import fhir
from iopcare.notes.v1 import notes_service_pb2 as notes_pb

log = logging.getLogger(__name__)

JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir")
XML_HINTS = ("xml",)
DEFAULT_COUNT = 50
MAX_COUNT = 1000
#: Parameters that are not filters.
CONTROL = {"_count", "_offset", "_summary", "_format", "_include", "_elements", "_pretty"}


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
}


class Gateway:
    """Routes, authenticates, checks scopes and calls the handlers."""

    def __init__(
        self,
        settings: GatewaySettings,
        services: Services,
        authenticator: Authenticator,
        max_body_bytes: int,
    ) -> None:
        self.settings = settings
        self.services = services
        self.authenticator = authenticator
        self.max_body_bytes = max_body_bytes
        self.handlers: dict[str, ResourceHandler] = {h.type: h(services) for h in registry.HANDLERS}
        #: The one release rule every outgoing resource passes through (release.py).
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
        route = routing.route(request.method, request.path)
        self._check_accept(request)
        if route.kind == routing.METADATA:
            return FhirResponse(
                200,
                capability.capability_statement(request.base_url, self.max_body_bytes, _version()),
            )
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
        if route.kind == routing.EVERYTHING:
            return self.everything(caller, route.id, request)
        interaction = {
            routing.READ: "read",
            routing.VREAD: "vread",
            routing.HISTORY: "history-instance",
            routing.SEARCH: "search-type",
            routing.CREATE: "create",
            routing.UPDATE: "update",
        }[route.kind]
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
        query = _query_dict(request)
        if route.kind == routing.READ:
            found = _within(only, handler.read(caller, route.id), route)
            return self.resource_response(self.disclosable(caller, found), query)
        if route.kind == routing.VREAD:
            found = _within(only, handler.vread(caller, route.id, route.version), route)
            return self.resource_response(self.disclosable(caller, found), query)
        if route.kind == routing.HISTORY:
            # Every version of the resource under its current labels (handler.history): a label
            # added later applies to what was stored before it.
            history = handler.history(caller, route.id)
            for item in history:
                _within(only, item, route)
            versions, withheld = self.shareable(caller, history)
            bundle = self.bundle("history", versions, request, len(versions))
            return FhirResponse(200, self.note_withheld(bundle, withheld))
        if route.kind == routing.SEARCH:
            if request.method == "POST":
                query = SearchQuery(query.pairs + _form(request))
            return self.search(caller, handler, query, request)
        if route.kind == routing.CREATE:
            resource = self.body(request, route.type)
            _about(only, resource, route.type)
            return self.create(caller, handler, resource, request)
        resource = self.body(request, route.type)
        _about(only, resource, route.type)
        _same_id(resource, route.id, handler.type)
        if handler.supports("read"):
            # A caller who may not read a resource may not write it either, and is told so the
            # same way (404 out of its patient context, 403 suppressed when the release rule
            # withholds it): an EHR refused an SUD plan must not overwrite it (42 CFR 2.13(a)).
            current = _within(only, handler.read(caller, route.id), route)
            self.release_rule.require(caller, current)
        return self.update(caller, handler, route.id, resource, request)

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

    def disclosable(self, caller: Caller, found: Found) -> Found:
        """The resource as released to the caller, or 403 `suppressed` (release.py)."""
        return self.release_rule.require(caller, found)

    def shareable(self, caller: Caller, items: list[Found]) -> tuple[list[Found], int]:
        """The items the release rule lets out to the caller, and how many it withheld."""
        return self.release_rule.release(caller, items)

    def _consents(self, caller: Caller, patient_id: str) -> list[Any]:
        """The patient's consents as notes keeps them (none if notes will not say)."""
        try:
            answer = self.services.call(
                caller,
                self.services.notes.ListConsents,
                notes_pb.ListConsentsRequest(patient_id=patient_id),
            )
        except FhirHttpError:
            return []  # unknown, unreachable or refused: nothing is released
        return [disclosure.consent_facts(c) for c in answer.consents]

    def note_withheld(self, bundle: dict[str, Any], withheld: int) -> dict[str, Any]:
        """Says in a Bundle that resources were left out, and why (never silently)."""
        if withheld:
            bundle.setdefault("entry", []).append(
                {
                    "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                    "resource": fhir.operation_outcome(
                        [
                            fhir.Issue(
                                "warning",
                                "suppressed",
                                f"{withheld} resources withheld: labelled as needing the "
                                "patient's consent to leave the program (42 CFR Part 2, "
                                "psychotherapy notes), and no active consent names this caller",
                            )
                        ]
                    ),
                    **_outcome_entry_kind(bundle),
                }
            )
        return bundle

    def resource_response(
        self, found: Found, query: dict[str, str], status: int = 200
    ) -> FhirResponse:
        body: Any = release.emit(found, shape(found.resource, query) if reshapes(query) else None)
        return FhirResponse(
            status,
            body,
            self.version_headers(found),
            # The audit names the id and patient; the path names the type (no parsing on reads).
            {"resource": found.id, "patient": found.patient_id},
        )

    def version_headers(self, found: Found) -> dict[str, str]:
        headers = {"ETag": etag(found.version)}
        updated = found.last_updated
        if updated is not None:
            headers["Last-Modified"] = updated.strftime("%a, %d %b %Y %H:%M:%S GMT")
        return headers

    def create(
        self,
        caller: Caller,
        handler: ResourceHandler,
        resource: dict[str, Any],
        request: FhirRequest,
        request_id: str | None = None,
    ) -> FhirResponse:
        condition = request.header("if-none-exist")
        head, question, tail = condition.partition("?")
        if question and "=" not in head:
            # `[base]/Type?criteria` (HAPI's client sends this form) is the criteria after `?`.
            condition = tail
        if condition:
            criteria = dict(parse_qsl(condition, keep_blank_values=True))
            matched = self._conditional_match(caller, handler, criteria, request)
            if matched is not None:
                return matched
            # Concurrent conditional creates with the same criteria by the same caller share a
            # request id, so the service makes one resource, not one per request. The key holds
            # everything the search above ran as (token subject, scopes, launch patient): the
            # same criteria mean another search under another launch context, and must never
            # reach the resource made under the first (issue 10, defect 12). A repeat with another
            # body under the same key is refused by the service (kit.requests).
            request_id = request_id or _digest(
                caller.principal.subject,
                caller.patient or "",
                " ".join(sorted(str(s) for s in caller.principal.scopes)),
                handler.type,
                condition,
            )
        self._check_patient_references(caller, handler.type, resource)
        try:
            created: Created = handler.create(caller, resource, request_id or str(uuid.uuid4()))
        except FhirHttpError as exc:
            if not condition or exc.reason != "REQUEST_ID_REUSED":
                raise
            # A concurrent conditional create with the same criteria and another body won the
            # key: its resource now matches, which is what FHIR answers (else the 409 stands).
            matched = self._conditional_match(caller, handler, criteria, request)
            if matched is None:
                raise
            return matched
        if not created.created:
            # The service matched an existing resource (a registration under a known
            # identifier): someone else's record, released to this caller as a read would be.
            match = self.release_rule.require(caller, created.found)
            response = self.resource_response(match, {}, 200)
            response.headers["Location"] = self.location(request, handler.type, match)
            return self.prefer(request, response)
        response = self.written(caller, created.found, 201)
        response.headers["Location"] = self.location(request, handler.type, created.found)
        return self.prefer(request, response)

    def _conditional_match(
        self,
        caller: Caller,
        handler: ResourceHandler,
        criteria: dict[str, str],
        request: FhirRequest,
    ) -> FhirResponse | None:
        """The answer to a conditional create whose criteria match (None: no match, create).

        The match is searched as the caller (their token, so the services' care-team rule; their
        scopes and launch patient: `find`), so a resource they may not see is no match for them.
        One match is answered as reading it would be: released to the caller, or refused when
        it may not leave the program (never another patient's resource, never a withheld one)."""
        existing = self.find(caller, handler, criteria)
        if len(existing) > 1:
            raise http_error(
                412,
                "multiple-matches",
                f"If-None-Exist matches {len(existing)} {handler.type} resources",
            )
        if not existing:
            return None
        # The match answers as a read of it would: a caller the release rule refuses gets 403
        # suppressed, not the resource (issue 10, defect 3).
        found = self.release_rule.require(caller, existing[0])
        response = self.resource_response(found, {})
        response.headers["Location"] = self.location(request, handler.type, found)
        return self.prefer(request, response)

    def written(self, caller: Caller, found: Found, status: int) -> FhirResponse:
        """The answer to a write that happened: the stored resource as the release rule lets it
        out, or, when it withholds it (the caller wrote labelled content it may not read back),
        the status with an OperationOutcome saying the representation is withheld."""
        kept, _ = self.release_rule.release(caller, [found])
        if kept:
            return self.resource_response(kept[0], {}, status)
        return FhirResponse(
            status,
            fhir.operation_outcome(
                [
                    fhir.Issue(
                        "warning",
                        "suppressed",
                        "stored; its representation is withheld: "
                        + (disclosure.withheld_reason(found.resource) or "withheld"),
                    )
                ]
            ),
            self.version_headers(found),
            {"resource": found.id, "patient": found.patient_id},
        )

    def _check_patient_references(
        self, caller: Caller, resource_type: str, resource: dict[str, Any]
    ) -> None:
        """The patients a new resource is about must be registered (test-matrix D7): 422 naming
        the element otherwise. A patient the caller may not see gets the same answer (D8), so the
        check tells nobody which patients exist. The services themselves accept ids they have not
        registered from internal callers (events and stays that predate the registry)."""
        for expression, reference in _patient_references(resource_type, resource):
            patient_id = reference_id(reference, "Patient")
            if not patient_id or reference.startswith(("http:", "https:")):
                continue  # another server's patient, or not a Patient: the services decide
            if caller.principal.role == "patient" and patient_id == caller.patient:
                continue  # the patient's own token (e.g. their consent): notes checks it
            try:
                self.handler("Patient").read(caller, patient_id)
            except FhirHttpError as exc:
                if exc.status not in (403, 404):
                    raise
                raise http_error(
                    422,
                    "processing",
                    f"{reference} is not a patient known here (register the Patient first)",
                    expression,
                ) from None

    def update(
        self,
        caller: Caller,
        handler: ResourceHandler,
        resource_id: str,
        resource: dict[str, Any],
        request: FhirRequest,
    ) -> FhirResponse:
        _same_id(resource, resource_id, handler.type)
        expected = None
        if request.header("if-match"):
            expected = parse_etag(request.header("if-match"))
            if expected is None:
                raise http_error(400, "value", 'If-Match must be a version ETag such as W/"3"')
        else:
            version_id = resource.get("meta", {}).get("versionId")
            expected = (
                int(version_id) if isinstance(version_id, str) and version_id.isdigit() else None
            )
        if expected is None:
            raise http_error(
                428,
                "required",
                'an update needs the version it is based on: If-Match: W/"n" (or meta.versionId)',
            )
        found = handler.update(caller, resource_id, resource, expected)
        response = self.written(caller, found, 200)
        # Where the new version is (clients such as HAPI's read the id and version from here).
        response.headers["Content-Location"] = self.location(request, handler.type, found)
        return self.prefer(request, response)

    def prefer(self, request: FhirRequest, response: FhirResponse) -> FhirResponse:
        prefer = request.header("prefer").replace(" ", "").lower()
        if "return=minimal" in prefer:
            response.body = None
        elif "return=operationoutcome" in prefer:
            response.body = fhir.operation_outcome(
                [fhir.Issue("information", "informational", "done")]
            )
        return response

    def location(self, request: FhirRequest, resource_type: str, found: Found) -> str:
        return f"{request.base_url}/{resource_type}/{found.id}/_history/{found.version}"

    def find(self, caller: Caller, handler: ResourceHandler, query: dict[str, str]) -> list[Found]:
        """The resources a search query selects (unpaged)."""
        only = self.require_scope(caller, handler.type, scopes.SEARCH)
        if only is not None:
            if not handler.compartment:
                # Calendars and free slots are no patient's records: a patient/ scope, which
                # opens one patient's compartment, does not reach them.
                raise http_error(
                    403, "forbidden", f"a patient/ scope does not cover {handler.type}"
                )
            query = _limited_to(only, query, handler.type)
        known = {p.name: p for p in handler.search_params()}
        unknown = [k for k in query if k not in known and k not in CONTROL]
        if unknown:
            raise http_error(
                400,
                "not-supported",
                f"unknown search parameter {unknown[0][:40]!r} for {handler.type}; supported: "
                f"{', '.join(sorted(known))}",
                unknown[0][:40],
            )
        patient = self._patient_of(query, handler)
        candidates = handler.search(caller, patient, query)
        # Repeated parameters AND together (date=ge..&date=lt..).
        filters = [
            (known[name], value)
            for name, value in pairs_of(query)
            if name in known
            and known[name].type != "reference"
            # The Patient handler looks these up in the registry itself.
            and not (handler.type == "Patient" and name in ("_id", "identifier"))
        ]
        return [
            item
            for item in candidates
            if all(matches(item.resource, param, value) for param, value in filters)
        ]

    def _patient_of(self, query: dict[str, str], handler: ResourceHandler) -> str | None:
        """The patient a search is about (`patient`, `subject`, or an `actor` that is a
        Patient), or None (a calendar or slot search, or an actor that is a practitioner or
        room, which the handler passes on itself)."""
        if not handler.compartment:
            return None
        for name in ("patient", "subject", "actor"):
            value = query.get(name)
            if name == "actor" and value and value.split("/")[0] in ("Practitioner", "Location"):
                return None
            if value:
                # Only our own patients: an absolute URL names a patient of another server.
                patient = ""
                if "://" not in value:
                    patient = reference_id(value, "Patient") or (value if "/" not in value else "")
                if not patient:
                    raise http_error(400, "value", f"{name} must name a Patient", name)
                return patient
        return None

    def search(
        self, caller: Caller, handler: ResourceHandler, query: dict[str, str], request: FhirRequest
    ) -> FhirResponse:
        results, withheld = self.shareable(caller, self.find(caller, handler, query))
        count = _int_param(query, "_count", DEFAULT_COUNT, 0, MAX_COUNT)
        offset = _int_param(query, "_offset", 0, 0, 10**9)
        mode = query.get("_summary", "false")
        if mode == "count":
            return FhirResponse(
                200, {"resourceType": "Bundle", "type": "searchset", "total": len(results)}
            )
        page = results[offset : offset + count]
        entries = [self.entry(item, request, "match", query) for item in page]
        for include in [v for k, v in request.query if k == "_include"]:
            entries += self.included(caller, handler, include, page, request)
        bundle: dict[str, Any] = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(results),
            "link": self.links(request, query, offset, count, len(results)),
        }
        if entries:
            bundle["entry"] = entries
        self.note_withheld(bundle, withheld)
        return FhirResponse(
            200, bundle, audit={"detail": f"{len(results)} hits, {withheld} withheld"}
        )

    def included(
        self,
        caller: Caller,
        handler: ResourceHandler,
        include: str,
        page: list[Found],
        request: FhirRequest,
    ) -> list[dict[str, Any]]:
        if include not in handler.includes:
            raise http_error(
                400,
                "not-supported",
                f"_include={include[:60]} is not supported for {handler.type}; supported: "
                f"{', '.join(handler.includes) or 'none'}",
                "_include",
            )
        patients = self.handlers["Patient"]
        self.require_scope(caller, "Patient", scopes.READ)
        seen: dict[str, Found] = {}
        for item in page:
            if item.patient_id and item.patient_id not in seen:
                seen[item.patient_id] = patients.read(caller, item.patient_id)
        shown, _ = self.shareable(caller, list(seen.values()))
        return [self.entry(p, request, "include") for p in shown]

    def links(
        self, request: FhirRequest, query: dict[str, str], offset: int, count: int, total: int
    ) -> list[dict[str, str]]:
        def url(at: int) -> str:
            params = [(k, v) for k, v in request.query if k != "_offset"]
            if at:
                params.append(("_offset", str(at)))
            suffix = f"?{urlencode(params)}" if params else ""
            return f"{request.base_url}/{request.path.strip('/')}{suffix}"

        links = [{"relation": "self", "url": url(offset)}, {"relation": "first", "url": url(0)}]
        if count and offset + count < total:
            links.append({"relation": "next", "url": url(offset + count)})
        if offset > 0:
            links.append({"relation": "previous", "url": url(max(0, offset - count))})
        return links

    def entry(
        self,
        found: Found,
        request: FhirRequest,
        mode: str | None,
        query: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        resource = (
            release.emit(found, shape(found.resource, query))
            if query and reshapes(query)
            else release.emit_resource(found)
        )
        full_url = (
            f"{request.base_url}/{resource.get('resourceType')}/{found.id}"
            if found.id
            # A computed resource without an id (a free Slot): a stable urn of its content.
            else f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, found.json)}"
        )
        entry: dict[str, Any] = {
            "fullUrl": full_url,
            "resource": resource,
        }
        if mode:
            entry["search"] = {"mode": mode}
        return entry

    def bundle(
        self, kind: str, items: list[Found], request: FhirRequest, total: int
    ) -> dict[str, Any]:
        bundle: dict[str, Any] = {"resourceType": "Bundle", "type": kind, "total": total}
        if items:
            bundle["entry"] = [self.entry(item, request, None) for item in items]
        if kind == "history":
            # bdl-3/bdl-4: a history entry says how each version came about.
            for entry, item in zip(bundle.get("entry", []), items, strict=True):
                first = item.version == 1
                resource_type = entry["resource"].get("resourceType", "")
                entry["request"] = {
                    "method": "POST" if first else "PUT",
                    "url": resource_type if first else f"{resource_type}/{item.id}",
                }
                entry["response"] = {
                    "status": "201 Created" if first else "200 OK",
                    "etag": f'W/"{item.version}"',
                    **(
                        {"lastModified": fhir.instant(item.last_updated)}
                        if item.last_updated
                        else {}
                    ),
                }
        return bundle

    def everything(self, caller: Caller, patient_id: str, request: FhirRequest) -> FhirResponse:
        """Patient/{id}/$everything: the patient and every resource of theirs the caller's
        scopes allow reading, from each service's per-patient lists."""
        only = self.require_scope(caller, "Patient", scopes.READ)
        if only is not None and only != patient_id:
            raise http_error(404, "not-found", f"Patient/{patient_id} not found")
        patient = self.disclosable(caller, self.handlers["Patient"].read(caller, patient_id))
        items = [patient]
        skipped = []
        wanted = {t for v in request.query if v[0] == "_type" for t in v[1].split(",") if t}
        for resource_type, handler in self.handlers.items():
            if (
                resource_type == "Patient"
                or not handler.compartment
                or not handler.supports("search-type")
            ):
                continue
            if wanted and resource_type not in wanted:
                continue
            if (
                scopes.patients_allowed(caller.scopes, resource_type, scopes.SEARCH, caller.patient)
                is None
            ):
                skipped.append(resource_type)
                continue
            try:
                items += handler.search(caller, patient_id, {})
            except FhirHttpError as exc:
                # A service that refuses (the caller is not on its copy of the team yet) or is
                # down leaves its part out; the Bundle says so instead of failing whole.
                skipped.append(f"{resource_type} ({exc.status})")
        items, withheld = self.shareable(caller, items)
        bundle = self.bundle("searchset", items, request, len(items))
        # A searchset says what was asked and why each entry is in it.
        bundle["link"] = [
            {"relation": "self", "url": f"{request.base_url}/Patient/{patient_id}/$everything"}
        ]
        for entry in bundle.get("entry", []):
            entry["search"] = {"mode": "match"}
        bundle = self.note_withheld(bundle, withheld)
        if skipped:
            bundle["entry"].append(
                {
                    "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                    "resource": fhir.operation_outcome(
                        [
                            fhir.Issue(
                                "warning",
                                "incomplete",
                                f"left out: {', '.join(skipped)}",
                            )
                        ]
                    ),
                    "search": {"mode": "outcome"},
                }
            )
        return FhirResponse(200, bundle, audit={"patient": patient_id})


def _same_id(resource: dict[str, Any], resource_id: str, resource_type: str) -> None:
    if resource.get("id") != resource_id:
        raise http_error(
            400, "invalid", "the resource's id must equal the id in the URL", f"{resource_type}.id"
        )


def _unreleased(request: FhirRequest, exc: release.UnreleasedContent) -> FhirResponse:
    """A response that would have carried content the release rule did not let out: a gateway
    bug, refused (fail closed) and logged without content."""
    log.error("gateway: refused to send unreleased content on %s: %s", request.method, exc)
    return error_response(http_error(500, "exception", "internal error; it was logged"))


def _outcome_entry_kind(bundle: dict[str, Any]) -> dict[str, Any]:
    """How a notice entry fits its Bundle: search mode `outcome` in a searchset; in a history
    Bundle every entry needs request and response instead (bdl-2, bdl-3, bdl-4), so the notice
    answers the history read itself."""
    if bundle.get("type") == "history":
        return {"request": {"method": "GET", "url": "_history"}, "response": {"status": "200 OK"}}
    return {"search": {"mode": "outcome"}}


def _within(only: str | None, found: Found, route: routing.Route) -> Found:
    """A resource of another patient than the token's launch context is "not found" (the same
    answer as for one that does not exist: test-matrix D8)."""
    if only is not None and found.patient_id != only:
        raise http_error(404, "not-found", f"{route.type}/{route.id} not found")
    return found


def _about(only: str | None, resource: dict[str, Any], resource_type: str) -> None:
    """A write under a `patient/` scope must be about the launch context's patient."""
    if only is None:
        return
    targets = {
        reference_id(ref, "Patient") for _, ref in _patient_references(resource_type, resource)
    }
    if resource_type == "Patient" or targets != {only}:
        raise http_error(
            403, "forbidden", "a patient/ scope only writes the launch context patient's records"
        )


#: Where each resource type names the patient it is about (relative references are checked).
PATIENT_ELEMENTS = {
    "EpisodeOfCare": "patient",
    "Consent": "patient",
    "CarePlan": "subject",
    "CareTeam": "subject",
    "Goal": "subject",
    "Observation": "subject",
    "Communication": "subject",
    "DocumentReference": "subject",
    "Flag": "subject",
}


def _patient_references(resource_type: str, resource: dict[str, Any]) -> list[tuple[str, str]]:
    """(FHIRPath of the element, reference) of the Patient references a new resource makes."""
    found: list[tuple[str, str]] = []
    name = PATIENT_ELEMENTS.get(resource_type)
    value = resource.get(name) if name else None
    if isinstance(value, dict) and isinstance(value.get("reference"), str):
        found.append((f"{resource_type}.{name}", value["reference"]))
    if resource_type == "Appointment":
        for index, participant in enumerate(resource.get("participant") or []):
            actor = participant.get("actor") if isinstance(participant, dict) else None
            reference = actor.get("reference") if isinstance(actor, dict) else None
            if isinstance(reference, str) and reference.startswith("Patient/"):
                found.append((f"Appointment.participant[{index}].actor", reference))
    return found


def _limited_to(only: str, query: dict[str, str], resource_type: str) -> dict[str, str]:
    """A search under a `patient/` scope: about the launch context's patient, implicitly."""
    # A SearchQuery stays one (its repeated parameters still AND together).
    limited = SearchQuery(pairs_of(query))
    if resource_type == "Patient":
        if limited.get("_id", only) != only:
            raise http_error(403, "forbidden", "a patient/ scope reads only its own patient")
        limited["_id"] = only
        return limited
    named = [limited[n] for n in ("patient", "subject", "actor") if limited.get(n)]
    if any(reference_id(v, "Patient") != only and v != only for v in named):
        raise http_error(403, "forbidden", "a patient/ scope searches only its own patient")
    if not named:
        limited["patient"] = only
        limited.pairs.append(("patient", only))
    return limited


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


def _query_dict(request: FhirRequest) -> SearchQuery:
    # Repeated parameters AND together in FHIR: the filters use every one; the dict view (what
    # the handlers push down to the services) keeps the last.
    return SearchQuery([(k, v) for k, v in request.query if k != "_include"])


def _form(request: FhirRequest) -> list[tuple[str, str]]:
    if not request.body:
        return []
    try:
        text = request.body.decode("utf-8")
    except UnicodeDecodeError:
        raise http_error(400, "structure", "the search form is not UTF-8") from None
    return parse_qsl(text, keep_blank_values=True)


def _int_param(query: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or len(raw) > 10:
        raise http_error(400, "value", f"{name} must be a whole number", name)
    return max(low, min(int(raw), high))


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("iopcare")
    except Exception:  # pragma: no cover - not installed as a package
        return "dev"
