"""The patient's Stanley-Brown safety plan (issue 12, part 3), owned by the notes service: a
QuestionnaireResponse to the published Questionnaire `Questionnaire/stanley-brown-safety-plan`
(docs/decisions/0020-safety-plan-as-questionnaire-response.md). One plan per patient, every
version kept; written by the patient's therapist, psychiatrist or psychologist."""

from __future__ import annotations

import json
from typing import Any

import iopcare.notes.contract as notes_contract
from iopcare.gateway.client import Caller
from iopcare.gateway.errors import http_error
from iopcare.gateway.resources.base import (
    Change,
    Created,
    Found,
    ResourceHandler,
    reference_id,
    require_patient,
    time_of,
)
from iopcare.gateway.search import REFERENCE, TOKEN, SearchParam
from iopcare.notes.v1 import notes_service_pb2 as pb


def _found(plan: Any) -> Found:
    return Found(
        plan.id, int(plan.version), plan.patient_id, time_of(plan.update_time), plan.fhir_json
    )


def _patient_of(resource: dict[str, Any]) -> str:
    subject = resource.get("subject")
    patient = reference_id(
        subject.get("reference") if isinstance(subject, dict) else None, "Patient"
    )
    if not patient:
        raise http_error(
            422,
            "required",
            "a safety plan's subject must reference the Patient (Patient/{id})",
            "QuestionnaireResponse.subject",
        )
    return patient


class QuestionnaireResponseHandler(ResourceHandler):
    type = "QuestionnaireResponse"
    service = "notes"
    params = (
        SearchParam("patient", REFERENCE, ("subject",), "the patient"),
        SearchParam("subject", REFERENCE, ("subject",), "the patient"),
        SearchParam("questionnaire", REFERENCE, ("questionnaire",), "the Questionnaire answered"),
        SearchParam("status", TOKEN, ("status",), "completed | amended"),
    )
    documentation = (
        "The patient's Stanley-Brown safety plan: a QuestionnaireResponse to "
        f"{notes_contract.SAFETY_PLAN_QUESTIONNAIRE} (Questionnaire/"
        f"{notes_contract.SAFETY_PLAN_QUESTIONNAIRE_ID}): one per patient, every version kept. "
        "Create records the first (status completed, subject, an item per step with valueString "
        "answers: warning-signs, coping-strategies, social-distraction, help-contacts, "
        "professionals (with the 988 Lifeline), environment-safe; reasons-for-living optional), "
        "update the next version (If-Match required); written by the patient's therapist, "
        "psychiatrist or psychologist. A crisis makes it due for review; a new version clears "
        "the review. Search by patient returns the current version."
    )

    def read(self, caller: Caller, resource_id: str) -> Found:
        return _found(self.send(caller, pb.GetSafetyPlanRequest(id=resource_id)).plan)

    def vread(self, caller: Caller, resource_id: str, version: int) -> Found:
        request = pb.GetSafetyPlanRequest(id=resource_id, version=version)
        return _found(self.send(caller, request).plan)

    def history(self, caller: Caller, resource_id: str) -> list[Found]:
        response = self.send(caller, pb.ListSafetyPlanVersionsRequest(id=resource_id))
        return [_found(p) for p in response.plans]

    def search(self, caller: Caller, patient_id: str | None, query: dict[str, str]) -> list[Found]:
        patient = require_patient(patient_id, self.type)
        response = self.send(caller, pb.GetPatientSafetyPlanRequest(patient_id=patient))
        return [_found(response.plan)] if response.HasField("plan") else []

    def create(self, caller: Caller, resource: dict[str, Any], request_id: str) -> Created:
        request = pb.SaveSafetyPlanRequest(
            request_id=request_id,
            patient_id=_patient_of(resource),
            fhir_json=json.dumps(resource),
            expected_version=0,
        )
        return Created(_found(self.send(caller, request).plan))

    def update(self, caller: Caller, change: Change) -> Found:
        current = self.send(caller, pb.GetSafetyPlanRequest(id=change.resource_id)).plan
        patient = _patient_of(change.resource)
        if patient != current.patient_id:
            raise http_error(
                422,
                "invariant",
                f"QuestionnaireResponse/{change.resource_id} is the safety plan of another patient",
                "QuestionnaireResponse.subject",
            )
        request = pb.SaveSafetyPlanRequest(
            request_id=change.request_id
            or f"update:{change.resource_id}:{change.expected_version}",
            patient_id=patient,
            fhir_json=json.dumps(change.resource),
            expected_version=change.expected_version,
        )
        return _found(self.send(caller, request).plan)


class QuestionnaireHandler(ResourceHandler):
    type = "Questionnaire"
    service = "notes"
    compartment = False
    reads_old_versions = False
    documentation = (
        "The Questionnaires the program publishes: the Stanley-Brown safety plan "
        f"(Questionnaire/{notes_contract.SAFETY_PLAN_QUESTIONNAIRE_ID})."
    )

    def read(self, caller: Caller, resource_id: str) -> Found:
        if resource_id != notes_contract.SAFETY_PLAN_QUESTIONNAIRE_ID:
            raise http_error(404, "not-found", f"Questionnaire/{resource_id} is not published")
        text = self.send(caller, pb.GetSafetyPlanQuestionnaireRequest()).fhir_json
        return Found(resource_id, 1, "", None, text)
