"""Edges of the care plan service found in review: each is a rule a real clinic would hit."""

from __future__ import annotations

import json

import grpc
import pytest

from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.kit.settings import Settings
from tests.support import harness
from tests.support.plans import care_team, iop_plan, new_patient_id, phq9, phq9_goal


def _code(call: object) -> str:
    try:
        call()  # type: ignore[operator]
    except grpc.RpcError as exc:
        return str(exc.code().name)
    return "OK"


def test_a_case_manager_off_the_team_cannot_add_themselves(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings
) -> None:
    patient = new_patient_id()
    team_id = harness.enrol_over_grpc(stub, settings, patient)
    team = stub.GetCareTeam(pb.GetCareTeamRequest(id=team_id), metadata=harness.metadata(settings))
    body = json.loads(team.care_team.fhir_json)
    body["participant"].append({"member": {"reference": "Practitioner/cm-9"}})
    outsider = harness.metadata(settings, role="case-manager", practitioner="cm-9")
    request = pb.UpdateCareTeamRequest(id=team_id, expected_version=1, fhir_json=json.dumps(body))
    assert _code(lambda: stub.UpdateCareTeam(request, metadata=outsider)) == "PERMISSION_DENIED"


def test_partial_dates_are_read_or_refused_never_an_internal_error(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings
) -> None:
    patient = new_patient_id()
    team = care_team(patient)
    team["participant"][0]["period"] = {"start": "2024", "end": "2030-05"}
    harness.assign_case_manager(stub, settings, patient, "cm-1")
    created = stub.CreateCareTeam(
        pb.CreateCareTeamRequest(request_id="t", fhir_json=json.dumps(team)),
        metadata=harness.metadata(settings, role="case-manager", practitioner="cm-1"),
    )
    assert created.care_team.version == 1
    measure = phq9(patient, 12)
    measure["effectiveDateTime"] = "2024-02"
    request = pb.RecordMeasureRequest(request_id="m", fhir_json=json.dumps(measure))
    assert (
        _code(lambda: stub.RecordMeasure(request, metadata=harness.metadata(settings)))
        == "INVALID_ARGUMENT"
    )


def test_attestations_must_come_from_the_team_and_plans_from_one_patient(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings
) -> None:
    me = harness.metadata(settings)
    patient, other = new_patient_id(), new_patient_id()
    team_id = harness.enrol_over_grpc(stub, settings, patient)
    harness.enrol_over_grpc(stub, settings, other)
    others_goal = stub.CreateGoal(
        pb.CreateGoalRequest(request_id="g", fhir_json=json.dumps(phq9_goal(other))), metadata=me
    ).goal
    plan = iop_plan(patient, team_id)
    plan["goal"] = [{"reference": f"Goal/{others_goal.id}"}]
    request = pb.CreateCarePlanRequest(request_id="bad", fhir_json=json.dumps(plan))
    assert _code(lambda: stub.CreateCarePlan(request, metadata=me)) == "INVALID_ARGUMENT"
    created = stub.CreateCarePlan(
        pb.CreateCarePlanRequest(request_id="p", fhir_json=json.dumps(iop_plan(patient, team_id))),
        metadata=me,
    ).care_plan
    forged = pb.RecordPlanReviewRequest(
        id=created.id,
        expected_version=1,
        outcome="continue",
        summary="fine",
        attestations=[
            pb.ReviewAttestation(practitioner_id="diet-9", role="dietitian", agrees=True)
        ],
    )
    assert _code(lambda: stub.RecordPlanReview(forged, metadata=me)) == "INVALID_ARGUMENT"


def test_a_cancelled_referral_and_another_stay_leave_the_plan_alone(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings
) -> None:
    me = harness.metadata(settings)
    patient = new_patient_id()
    team_id = harness.enrol_over_grpc(stub, settings, patient)

    def episode(request_id: str) -> pb.EpisodeOfCare:
        return stub.CreateEpisode(
            pb.CreateEpisodeRequest(
                request_id=request_id,
                fhir_json=json.dumps(
                    {
                        "resourceType": "EpisodeOfCare",
                        "status": "planned",
                        "patient": {"reference": f"Patient/{patient}"},
                        "period": {"start": "2030-01-01"},
                    }
                ),
            ),
            metadata=me,
        ).episode

    stay, duplicate = episode("e1"), episode("e2")
    assert "period" not in json.loads(stay.fhir_json)  # the server keeps the period
    stub.AdmitPatient(pb.AdmitPatientRequest(id=stay.id, expected_version=1), metadata=me)
    plan = iop_plan(patient, team_id)
    plan["supportingInfo"] = [{"reference": f"EpisodeOfCare/{stay.id}"}]
    created = stub.CreateCarePlan(
        pb.CreateCarePlanRequest(request_id="p", fhir_json=json.dumps(plan)), metadata=me
    ).care_plan
    cancelled = stub.DischargePatient(
        pb.DischargePatientRequest(id=duplicate.id, expected_version=1), metadata=me
    ).episode
    assert cancelled.status == "cancelled"
    current = stub.GetCarePlan(pb.GetCarePlanRequest(id=created.id), metadata=me).care_plan
    assert current.status == "active"
    with pytest.raises(grpc.RpcError):  # a cancelled stay has no level to change
        stub.ChangeLevelOfCare(
            pb.ChangeLevelOfCareRequest(id=duplicate.id, expected_version=2, clinical_level="php"),
            metadata=me,
        )
