"""A whole IOP course through the care plan API (issue 6, item 10): enrol, admit, plan, measures
improving, step down; the plan completes with the stay, and every step is an event."""

from __future__ import annotations

import json

import grpc
import pytest

from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.kit import topics
from iopcare.kit.settings import Settings
from tests.support import harness
from tests.support.plans import iop_plan, new_patient_id, phq9, phq9_goal


def test_an_iop_course_from_referral_to_step_down(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings, kafka_bootstrap: str
) -> None:
    patient = new_patient_id()
    psychiatrist = harness.metadata(settings)
    # The program accepts the referral: an administrator opens the stay naming cm-1, who then
    # enrols the patient's team (the assignment is what entitles them to).
    episode = stub.CreateEpisode(
        pb.CreateEpisodeRequest(
            request_id="e1",
            fhir_json=json.dumps(
                {
                    "resourceType": "EpisodeOfCare",
                    "status": "planned",
                    "patient": {"reference": f"Patient/{patient}"},
                    "careManager": {"reference": "Practitioner/cm-1"},
                }
            ),
        ),
        metadata=harness.metadata(settings, role="admin", practitioner="adm-1"),
    ).episode
    team_id = harness.create_team_over_grpc(stub, settings, patient)
    assert (episode.status, episode.clinical_level) == ("planned", "")
    episode = stub.AdmitPatient(
        pb.AdmitPatientRequest(id=episode.id, expected_version=1, reason="intake done"),
        metadata=psychiatrist,
    ).episode
    assert (episode.status, episode.clinical_level, episode.authorized_level) == (
        "active",
        "iop",
        "iop",
    )

    goal = stub.CreateGoal(
        pb.CreateGoalRequest(request_id="g1", fhir_json=json.dumps(phq9_goal(patient))),
        metadata=psychiatrist,
    ).goal
    plan_body = iop_plan(patient, team_id)
    plan_body["goal"] = [{"reference": f"Goal/{goal.id}"}]
    # The plan belongs to this stay: the stay's transitions apply to it.
    plan_body["supportingInfo"] = [{"reference": f"EpisodeOfCare/{episode.id}"}]
    plan = stub.CreateCarePlan(
        pb.CreateCarePlanRequest(request_id="p1", fhir_json=json.dumps(plan_body)),
        metadata=psychiatrist,
    ).care_plan
    for week, total in enumerate([18, 12, 7], start=1):
        stub.RecordMeasure(
            pb.RecordMeasureRequest(
                request_id=f"m{week}",
                fhir_json=json.dumps(phq9(patient, total, when=f"2026-0{week}-01T10:00:00Z")),
            ),
            metadata=harness.metadata(settings, role="therapist", practitioner="th-1"),
        )
    achieved = stub.GetGoal(pb.GetGoalRequest(id=goal.id), metadata=psychiatrist).goal
    assert json.loads(achieved.fhir_json)["achievementStatus"]["coding"][0]["code"] == "achieved"

    # A step up to PHP suspends the plan; the return resumes it.
    episode = stub.ChangeLevelOfCare(
        pb.ChangeLevelOfCareRequest(
            id=episode.id, expected_version=2, clinical_level="php", reason="relapse"
        ),
        metadata=psychiatrist,
    ).episode
    assert episode.status == "onhold"
    suspended = stub.GetCarePlan(pb.GetCarePlanRequest(id=plan.id), metadata=psychiatrist)
    assert suspended.care_plan.status == "on-hold"
    episode = stub.ChangeLevelOfCare(
        pb.ChangeLevelOfCareRequest(id=episode.id, expected_version=3, clinical_level="iop"),
        metadata=psychiatrist,
    ).episode
    assert episode.status == "active"
    # The step down to outpatient care ends the stay and completes the plan.
    episode = stub.ChangeLevelOfCare(
        pb.ChangeLevelOfCareRequest(
            id=episode.id,
            expected_version=4,
            clinical_level="outpatient",
            reason="goals met; weekly outpatient therapy",
        ),
        metadata=psychiatrist,
    ).episode
    assert (episode.status, episode.clinical_level) == ("finished", "outpatient")
    resource = json.loads(episode.fhir_json)
    assert [h["status"] for h in resource["statusHistory"]] == [
        "planned",
        "active",
        "onhold",
        "active",
        "finished",
    ]
    assert "end" in resource["period"]
    final = stub.GetCarePlan(pb.GetCarePlanRequest(id=plan.id), metadata=psychiatrist)
    assert final.care_plan.status == "completed"

    types = [
        harness.header(r, "ce_type")
        for r in harness.read_topic(
            kafka_bootstrap,
            harness.topic(settings, topics.CAREPLAN),
            lambda r: (
                r.key == patient.encode()
                and (harness.header(r, "ce_type") or "").startswith("iopcare.careplan.episode.")
            ),
            expect=5,
        )
    ]
    assert types == [
        "iopcare.careplan.episode.created.v1",
        "iopcare.careplan.episode.admitted.v1",
        "iopcare.careplan.episode.stepped-up.v1",
        "iopcare.careplan.episode.returned.v1",
        "iopcare.careplan.episode.stepped-down.v1",
    ]
    with pytest.raises(grpc.RpcError) as caught:
        stub.DischargePatient(
            pb.DischargePatientRequest(id=episode.id, expected_version=5), metadata=psychiatrist
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
