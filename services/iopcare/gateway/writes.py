"""Writing interactions: create (conditional with If-None-Exist, Prefer) and update (versioned:
If-Match or meta.versionId).

A write under a `patient/` scope must be about the launch context's patient; the patients a new
resource names must be registered; the answer is the stored resource as the release rule lets
it out (release.py).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any
from urllib.parse import parse_qsl

from iopcare.gateway import disclosure, reads, uscore
from iopcare.gateway.client import Caller
from iopcare.gateway.errors import FhirHttpError, http_error
from iopcare.gateway.http import Ask, FhirRequest, FhirResponse, GatewayContext, parse_etag
from iopcare.gateway.reads import resource_response, version_headers
from iopcare.gateway.resources.base import (
    Change,
    Created,
    Found,
    ResourceHandler,
    local_reference,
    reference_id,
)
from iopcare.kit import fhir

# -- the interactions, as `api.INTERACTIONS` registers them ------------------------------------


def create_type(ask: Ask) -> FhirResponse:
    resource = ask.gateway.body(ask.request, ask.route.type)
    _about(ask.only, resource, ask.route.type)
    return create(ask.gateway, ask.caller, ask.handler, resource, ask.request)


def update_instance(ask: Ask) -> FhirResponse:
    route, handler = ask.route, ask.handler
    resource = ask.gateway.body(ask.request, route.type)
    _about(ask.only, resource, route.type)
    _same_id(resource, route.id, handler.type)
    if handler.supports("read"):
        # A caller who may not read a resource may not write it either, and is told so the same
        # way (404 out of its patient context, 403 suppressed when the release rule withholds
        # it): an EHR refused an SUD plan must not overwrite it (42 CFR 2.13(a)).
        current = reads.within(ask.only, handler.read(ask.caller, route.id), route)
        ask.gateway.release_rule.require(ask.caller, current)
    return update(ask.gateway, ask.caller, handler, route.id, resource, ask.request)


# -- the parts ---------------------------------------------------------------------------------


def create(
    gw: GatewayContext,
    caller: Caller,
    handler: ResourceHandler,
    resource: dict[str, Any],
    request: FhirRequest,
    request_id: str | None = None,
) -> FhirResponse:
    resource = uscore.as_stored(resource)
    condition = request.header("if-none-exist")
    head, question, tail = condition.partition("?")
    if question and "=" not in head:
        # `[base]/Type?criteria` (HAPI's client sends this form) is the criteria after `?`.
        condition = tail
    if condition:
        criteria = dict(parse_qsl(condition, keep_blank_values=True))
        matched = _conditional_match(gw, caller, handler, criteria, request)
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
    _check_patient_references(gw, caller, handler.type, resource, request.base_url)
    try:
        created: Created = handler.create(caller, resource, request_id or str(uuid.uuid4()))
    except FhirHttpError as exc:
        if not condition or exc.reason != "REQUEST_ID_REUSED":
            raise
        # A concurrent conditional create with the same criteria and another body won the
        # key: its resource now matches, which is what FHIR answers (else the 409 stands).
        matched = _conditional_match(gw, caller, handler, criteria, request)
        if matched is None:
            raise
        return matched
    if not created.created:
        # The service matched an existing resource (a registration under a known
        # identifier): someone else's record, released to this caller as a read would be.
        match = gw.release_rule.require(caller, created.found)
        response = resource_response(match, {}, 200)
        response.headers["Location"] = location(request, handler.type, match)
        return prefer(request, response)
    response = written(gw, caller, created.found, 201)
    response.headers["Location"] = location(request, handler.type, created.found)
    return prefer(request, response)


def _conditional_match(
    gw: GatewayContext,
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
    existing = reads.find(gw, caller, handler, criteria, request.base_url)
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
    found = gw.release_rule.require(caller, existing[0])
    response = resource_response(found, {})
    response.headers["Location"] = location(request, handler.type, found)
    return prefer(request, response)


def written(gw: GatewayContext, caller: Caller, found: Found, status: int) -> FhirResponse:
    """The answer to a write that happened: the stored resource as the release rule lets it
    out, or, when it withholds it (the caller wrote labelled content it may not read back),
    the status with an OperationOutcome saying the representation is withheld."""
    kept, _ = gw.release_rule.release(caller, [found])
    if kept:
        return resource_response(kept[0], {}, status)
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
        version_headers(found),
        {"resource": found.id, "patient": found.patient_id},
    )


def _check_patient_references(
    gw: GatewayContext,
    caller: Caller,
    resource_type: str,
    resource: dict[str, Any],
    base_url: str = "",
) -> None:
    """The patients a new resource is about must be registered (test-matrix D7): 422 naming
    the element otherwise. A patient the caller may not see gets the same answer (D8), so the
    check tells nobody which patients exist. The services themselves accept ids they have not
    registered from internal callers (events and stays that predate the registry)."""
    for expression, reference in _patient_references(resource_type, resource):
        if "://" in reference and local_reference(reference, base_url) is None:
            # Another server's patient: never filed under ours by the id it ends with.
            raise http_error(
                422,
                "processing",
                f"{reference[:120]} is a patient of another server: a resource here is about "
                "a patient of this server (Patient/{id})",
                expression,
            )
        patient_id = reference_id(reference, "Patient")
        if not patient_id:
            continue  # not a Patient, or our own base's absolute URL: the services decide
        if caller.principal.role == "patient" and patient_id == caller.patient:
            continue  # the patient's own token (e.g. their consent): notes checks it
        try:
            gw.handler("Patient").read(caller, patient_id)
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
    gw: GatewayContext,
    caller: Caller,
    handler: ResourceHandler,
    resource_id: str,
    resource: dict[str, Any],
    request: FhirRequest,
) -> FhirResponse:
    _same_id(resource, resource_id, handler.type)
    resource = uscore.as_stored(resource)  # what the gateway added on release is not stored
    expected = None
    if request.header("if-match"):
        expected = parse_etag(request.header("if-match"))
        if expected is None:
            raise http_error(400, "value", 'If-Match must be a version ETag such as W/"3"')
    else:
        version_id = resource.get("meta", {}).get("versionId")
        expected = int(version_id) if isinstance(version_id, str) and version_id.isdigit() else None
    if expected is None:
        raise http_error(
            428,
            "required",
            'an update needs the version it is based on: If-Match: W/"n" (or meta.versionId)',
        )
    request_id = _update_request_id(caller, handler.type, resource_id, expected, resource, request)
    try:
        found = handler.update(caller, Change(resource_id, resource, expected, request_id))
    except FhirHttpError as exc:
        if not request_id or exc.reason != "REQUEST_ID_REUSED":
            raise
        # The key holds the body and the version it is based on, so the service keeps another
        # request under it only when the change it was mapped to differs: the resource changed
        # since this PUT was first applied, and the version it is based on is stale.
        raise http_error(
            412, "conflict", f"{handler.type}/{resource_id} changed since this update was applied"
        ) from None
    response = written(gw, caller, found, 200)
    # Where the new version is (clients such as HAPI's read the id and version from here).
    response.headers["Content-Location"] = location(request, handler.type, found)
    return prefer(request, response)


def _update_request_id(
    caller: Caller,
    resource_type: str,
    resource_id: str,
    expected: int,
    resource: dict[str, Any],
    request: FhirRequest,
) -> str:
    """The service request id of an update sent with an `X-Request-Id` (empty without one: the
    version it is based on alone keeps a repeat from being applied twice, and a repeat is 412).

    A client that retries a PUT whose answer it lost sends it again with the same X-Request-Id:
    the service answers with the first result (200, the version it made), not 412. The key
    holds who asks (token subject, launch patient, scopes, as a conditional create's does), the
    resource, the version it is based on and the body: a client that sends one correlation id
    with many requests gets each change applied, never another request's result."""
    given = request.header("x-request-id").strip()
    if not given:
        return ""
    return _digest(
        "update",
        caller.principal.subject,
        caller.patient or "",
        " ".join(sorted(str(s) for s in caller.principal.scopes)),
        resource_type,
        resource_id,
        str(expected),
        json.dumps(resource, sort_keys=True, separators=(",", ":")),
        given,
    )


def prefer(request: FhirRequest, response: FhirResponse) -> FhirResponse:
    prefer = request.header("prefer").replace(" ", "").lower()
    if "return=minimal" in prefer:
        response.body = None
    elif "return=operationoutcome" in prefer:
        response.body = fhir.operation_outcome([fhir.Issue("information", "informational", "done")])
    return response


def location(request: FhirRequest, resource_type: str, found: Found) -> str:
    return f"{request.base_url}/{resource_type}/{found.id}/_history/{found.version}"


def _same_id(resource: dict[str, Any], resource_id: str, resource_type: str) -> None:
    if resource.get("id") != resource_id:
        raise http_error(
            400, "invalid", "the resource's id must equal the id in the URL", f"{resource_type}.id"
        )


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
    "RelatedPerson": "patient",
    "Coverage": "beneficiary",
    "ClaimResponse": "patient",
    "Consent": "patient",
    "CarePlan": "subject",
    "CareTeam": "subject",
    "Goal": "subject",
    "NutritionOrder": "patient",
    "MedicationStatement": "subject",
    "MedicationRequest": "subject",
    "Observation": "subject",
    "Communication": "subject",
    "DocumentReference": "subject",
    "Flag": "subject",
    "QuestionnaireResponse": "subject",
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
            if isinstance(reference, str) and (
                reference.startswith("Patient/") or "/Patient/" in reference
            ):
                found.append((f"Appointment.participant[{index}].actor", reference))
    return found


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
