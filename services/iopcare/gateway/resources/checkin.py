"""The patient's daily check-in over REST (issue 12 part 4): the published Questionnaire and the
patient's QuestionnaireResponses to it, which scheduling stores (RecordCheckIn with answers,
ListCheckInResponses). docs/decisions/0021-daily-check-in-as-a-questionnaire-response.md.

A patient's app holds a token of role `patient` with `patient/QuestionnaireResponse.cs` (and
`patient/Questionnaire.r` to read the form) and its launch patient: the gateway pins every call
to that patient and scheduling checks again that the token acts for its own patient only.
"""

from __future__ import annotations

import json
from typing import Any

import iopcare.scheduling.contract as scheduling
from iopcare.gateway.client import Caller
from iopcare.gateway.errors import http_error
from iopcare.gateway.resources.base import (
    Found,
    TableCreate,
    TableHandler,
    TableSearch,
    time_of,
)
from iopcare.gateway.resources.scheduling import SchedulingTable
from iopcare.gateway.search import REFERENCE, SearchParam
from iopcare.scheduling.v1 import scheduling_service_pb2 as pb

_QUESTIONNAIRE_JSON = json.dumps(scheduling.QUESTIONNAIRE, separators=(",", ":"))
QUESTIONNAIRE_ID = str(scheduling.QUESTIONNAIRE["id"])


class QuestionnaireHandler(TableHandler):
    type = "Questionnaire"
    service = "scheduling"
    compartment = False
    reads_old_versions = False
    documentation = (
        f"The daily check-in form, {scheduling.QUESTIONNAIRE_URL} (read "
        f"Questionnaire/{QUESTIONNAIRE_ID}): mood and craving 0-10, hours of sleep, medication "
        "taken, and the safety question (a yes takes the crisis path). Served by the gateway; "
        "no other Questionnaire is kept."
    )

    def read(self, caller: Caller, resource_id: str) -> Found:
        if resource_id != QUESTIONNAIRE_ID:
            raise http_error(404, "not-found", f"Questionnaire/{resource_id[:64]} not found")
        # The form is no one's record; under a patient/ scope it is served as in the launch
        # patient's context (reads.within compares the patient).
        return Found(QUESTIONNAIRE_ID, 1, caller.patient or "", None, _QUESTIONNAIRE_JSON)


class QuestionnaireResponseHandler(SchedulingTable, TableCreate, TableSearch):
    type = "QuestionnaireResponse"
    params = (
        SearchParam("patient", REFERENCE, ("subject",), "the patient"),
        SearchParam("subject", REFERENCE, ("subject",), "the patient"),
    )
    documentation = (
        "The patient's daily check-in answers to Questionnaire/iop-daily-checkin. Create "
        "(RecordCheckIn with answers): status completed, subject the patient, questionnaire "
        f"{scheduling.QUESTIONNAIRE_URL}, one answer per item (mood and craving valueInteger "
        "0-10, sleep-hours valueDecimal 0-24, medication-taken and self-harm-thoughts "
        "valueBoolean). A yes to self-harm-thoughts raises the crisis alert (to the clinician on "
        "call outside program hours) within a second. The patient's own token (role patient, "
        "patient/QuestionnaireResponse.cs, launch context that patient) writes and searches "
        "only their own; the care team reads them too. Search by patient, newest first."
    )
    create_command = scheduling.record_check_in_request
    list_request = pb.ListCheckInResponsesRequest
    field = "response"
    items = "responses"

    def stored(self, message: Any) -> Found:
        return Found(
            message.id, 1, message.patient_id, time_of(message.authored_time), message.fhir_json
        )
