"""`GET /fhir/Encounter/$export-csv?start=&end=[&patient=]`: the billing CSV of a period over
REST (docs/gateway.md), as a FHIR `Binary` (contentType text/csv, the CSV base64 in `data`).

The rows are built only from the Encounters the release rule lets out to this caller, so a
Part 2 labelled Encounter never leaves in a CSV that it could not leave as FHIR (the CSV carries
no labels); the `X-Withheld-Encounters` header says how many were left out. Program-wide (no
`patient`) for billing staff and administrators, one patient for their care team: scheduling's
ListEncounters decides who, the gateway asks it with the caller's token.
"""

from __future__ import annotations

import base64
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import iopcare.scheduling.contract as scheduling
from iopcare.gateway import release, routing
from iopcare.gateway.client import Caller
from iopcare.gateway.errors import http_error
from iopcare.gateway.http import FhirRequest, FhirResponse, GatewayContext
from iopcare.gateway.resources.base import found_by_meta, pages, timestamp
from iopcare.gateway.search import parse_date_range
from iopcare.kit import scopes
from iopcare.kit.access import EHR_ROLE
from iopcare.kit.settings import Settings
from iopcare.scheduling.v1 import scheduling_service_pb2 as pb

#: Longest period one export covers.
MAX_DAYS = 93


@cache
def _zone() -> ZoneInfo:
    return ZoneInfo(Settings().program_timezone)


def export_csv(
    gateway: GatewayContext, caller: Caller, _: routing.Route, request: FhirRequest
) -> FhirResponse:
    only = gateway.require_scope(caller, "Encounter", scopes.SEARCH)
    if caller.principal.role == EHR_ROLE:
        # A CSV cannot carry the NORDSCLCD label nor the 42 CFR 2.32 notice a consented Part 2
        # disclosure needs: the billing file is the program's, never an outside EHR's (as
        # scheduling's own export refuses it). Outside EHRs search Encounters as FHIR.
        raise http_error(
            403, "forbidden", "the billing CSV is for the program's billing staff, not an EHR"
        )
    query: dict[str, str] = {}
    for name, value in request.query:
        if name not in ("start", "end", "patient"):
            raise http_error(400, "not-supported", f"unknown parameter {name[:40]!r}", name)
        query[name] = value
    for name in ("start", "end"):
        if not query.get(name):
            raise http_error(400, "required", f"{name} is required (a FHIR date)", name)
    low = parse_date_range(query["start"], "start")[0]
    high = parse_date_range(query["end"], "end")[1]  # the end date is included
    if high <= low or (high - low).days > MAX_DAYS:
        raise http_error(
            400, "value", f"the period must be non-empty and at most {MAX_DAYS} days", "end"
        )
    patient_id = query.get("patient", "").removeprefix("Patient/")
    if only is not None and patient_id != only:
        raise http_error(403, "forbidden", "the token opens one patient's Encounters only")
    listing = pb.ListEncountersRequest(
        patient_id=patient_id, start_time=timestamp(low), end_time=timestamp(high), page_size=1000
    )

    def page(token: str) -> Any:
        listing.page_token = token
        return gateway.services.send(caller, "scheduling", listing)

    found = [found_by_meta(e) for e in pages(page, "encounters")]
    released, withheld = gateway.release_rule.release(caller, found)
    body = scheduling.encounters_csv([release.emit_resource(f) for f in released], _zone())
    binary = release.admit_composed(
        {
            "resourceType": "Binary",
            "contentType": "text/csv",
            "data": base64.b64encode(body).decode("ascii"),
        }
    )
    return FhirResponse(
        200,
        binary,
        headers={"X-Withheld-Encounters": str(withheld)},
        audit={
            "resource": "Encounter",
            "patient": patient_id,
            "detail": f"billing export, {len(released)} encounters, {withheld} withheld",
        },
    )
