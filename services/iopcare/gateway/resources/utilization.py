"""Coverage and authorizations (ClaimResponse, preauthorization) of utilization review, owned by
careplan (docs/decisions/0028-utilization-review.md)."""

from __future__ import annotations

from typing import Any, ClassVar

from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.gateway.resources.base import Found, TableCreate, TableRead, TableSearch
from iopcare.gateway.resources.careplan import _fhir_json, found
from iopcare.gateway.search import REFERENCE, SearchParam


class CoverageHandler(TableRead, TableCreate, TableSearch):
    type = "Coverage"
    service: ClassVar[str] = "careplan"
    params = (SearchParam("patient", REFERENCE, ("beneficiary",), "the beneficiary"),)
    includes = ()
    documentation = (
        "A patient's payer coverage: payor (the payer), subscriberId (the member id) and a "
        "class of type plan. Written and read by the patient's care team (the case manager "
        "handles utilization review) and administrators."
    )
    get_request = pb.GetCoverageRequest
    list_request = pb.ListCoveragesRequest
    field = "coverage"
    items = "coverages"

    create_command = _fhir_json(pb.CreateCoverageRequest)

    def stored(self, message: Any) -> Found:
        return found(message)


class ClaimResponseHandler(TableRead, TableCreate, TableSearch):
    type = "ClaimResponse"
    service: ClassVar[str] = "careplan"
    params = (SearchParam("patient", REFERENCE, ("patient",), "the patient"),)
    includes = ()
    documentation = (
        "Payer authorizations of a stay (use preauthorization): preAuthRef the number, "
        "preAuthPeriod the period, one addItem with the level of care (program code and ASAM "
        "level) and the units authorized in its `eligible` adjudication, the stay in the "
        "episode-of-care extension. Units used are counted from attendance over gRPC "
        "(GetAuthorization); see docs/decisions/0028-utilization-review.md."
    )
    get_request = pb.GetAuthorizationRequest
    list_request = pb.ListAuthorizationsRequest
    field = "authorization"
    items = "authorizations"

    create_command = _fhir_json(pb.CreateAuthorizationRequest)

    def stored(self, message: Any) -> Found:
        return found(message)
