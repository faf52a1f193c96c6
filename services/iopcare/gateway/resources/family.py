"""RelatedPerson (family members, guardians, school contacts), owned by careplan."""

from __future__ import annotations

from typing import Any, ClassVar

from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.gateway.resources.base import Found, TableCreate, TableRead, TableSearch
from iopcare.gateway.resources.careplan import _fhir_json, found
from iopcare.gateway.search import REFERENCE, TOKEN, SearchParam


class RelatedPersonHandler(TableRead, TableCreate, TableSearch):
    type = "RelatedPerson"
    service: ClassVar[str] = "careplan"
    params = (
        SearchParam("patient", REFERENCE, ("patient",), "the patient"),
        SearchParam("relationship", TOKEN, ("relationship",), "v3 RoleCode, e.g. GUARD"),
    )
    includes = ("RelatedPerson:patient",)
    documentation = (
        "Family members, guardians and school contacts of a patient. Whether the team may give "
        "them information is the information-sharing extension (basis patient-consent with the "
        "Consent, or guardian-of-minor); see docs/decisions/0024-family-members-and-minors.md."
    )
    get_request = pb.GetRelatedPersonRequest
    list_request = pb.ListRelatedPersonsRequest
    field = "related_person"
    items = "related_persons"

    create_command = _fhir_json(pb.CreateRelatedPersonRequest)

    def stored(self, message: Any) -> Found:
        return found(message)
