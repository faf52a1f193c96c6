"""Safety plans and C-SSRS screening (issue 12, part 3), on both databases with the real broker:
a C-SSRS screen at high risk takes the crisis path (the urgent alert to the psychiatrist and the
therapist, a safety Flag) and makes the patient's safety plan due for review; recording a new
version of the plan clears it; every version is kept; moderate risk alerts without a review; bad
input and the wrong writers are refused with nothing written."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import grpc
import pytest

from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.kit.settings import Settings
from iopcare.notes.v1 import notes_service_pb2 as nt
from iopcare.notes.v1 import notes_service_pb2_grpc as nt_grpc
from tests.support import harness
from tests.support.notes import as_, error_reason, field_violations
from tests.support.plans import iop_plan
from tests.support.safety import SECTIONS, cssrs_screen, safety_plan

NO = dict.fromkeys(range(1, 7), False)
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def _screen(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings, body: dict[str, Any]
) -> pb.RecordMeasureResponse:
    response: pb.RecordMeasureResponse = stub.RecordMeasure(
        pb.RecordMeasureRequest(request_id=str(uuid.uuid4()), fhir_json=json.dumps(body)),
        metadata=harness.metadata(settings, role="psychiatrist", practitioner="psy-1"),
    )
    return response


def _crisis_messages(notes: nt_grpc.NotesServiceStub, who: Any, patient: str) -> list[nt.Message]:
    thread = notes.ListThread(nt.ListThreadRequest(patient_id=patient), metadata=who).messages
    return [m for m in thread if m.category == "crisis"]


def _save(
    notes: nt_grpc.NotesServiceStub,
    who: Any,
    patient: str,
    body: dict[str, Any],
    version: int = 0,
    request_id: str | None = None,
) -> nt.SafetyPlan:
    saved: nt.SafetyPlan = notes.SaveSafetyPlan(
        nt.SaveSafetyPlanRequest(
            request_id=request_id or str(uuid.uuid4()),
            patient_id=patient,
            fhir_json=json.dumps(body),
            expected_version=version,
        ),
        metadata=who,
    ).plan
    return saved


def _view(notes: nt_grpc.NotesServiceStub, who: Any, patient: str) -> Any:
    return notes.GetPatientSafetyPlan(
        nt.GetPatientSafetyPlanRequest(patient_id=patient), metadata=who
    )


def test_a_high_risk_cssrs_takes_the_crisis_path_and_a_new_plan_version_clears_the_review(
    stub: pb_grpc.CarePlanServiceStub,
    notes: nt_grpc.NotesServiceStub,
    settings: Settings,
    patient: str,
) -> None:
    therapist = as_(settings, "therapist", "th-1")
    plan = _save(notes, therapist, patient, safety_plan(patient))
    assert (plan.version, plan.status) == (1, "completed")
    stored = json.loads(plan.fhir_json)
    assert stored["author"] == {"reference": "Practitioner/th-1"}
    assert [i["linkId"] for i in stored["item"]] == list(SECTIONS)
    assert not _view(notes, therapist, patient).HasField("review")

    # Yes to item 4 (active ideation with some intent to act): high risk.
    recorded = _screen(stub, settings, cssrs_screen(patient, {**NO, 2: True, 4: True}))
    assert list(recorded.crisis_reasons) == [
        "C-SSRS screen high risk: non-specific active suicidal thoughts, active suicidal "
        "ideation with some intent to act"
    ]
    observation = json.loads(
        stub.GetMeasure(
            pb.GetMeasureRequest(id=recorded.observation_id),
            metadata=harness.metadata(settings, role="psychiatrist", practitioner="psy-1"),
        ).fhir_json
    )
    assert observation["valueInteger"] == 3  # the risk level, computed from the answers
    (alert,) = harness.eventually(
        lambda: _crisis_messages(notes, therapist, patient) or None, timeout=20, interval=0.02
    )
    assert alert.priority == "urgent" and alert.text.startswith("SUICIDE RISK, HIGH")
    recipients = sorted(r["reference"] for r in json.loads(alert.fhir_json)["recipient"])
    assert recipients == ["Practitioner/psy-1", "Practitioner/th-1"]
    (flag,) = notes.ListFlags(nt.ListFlagsRequest(patient_id=patient), metadata=therapist).flags
    # The crisis made the safety plan due for review: on the plan and on the therapist's list.
    review = _view(notes, therapist, patient).review
    assert review.flag_id == flag.id and review.crises == 1
    assert "SUICIDE RISK, HIGH" in review.reason
    worklist = notes.ListSafetyPlanReviews(nt.ListSafetyPlanReviewsRequest(), metadata=therapist)
    assert [r.patient_id for r in worklist.reviews] == [patient]
    dietitian = as_(settings, "dietitian", "diet-1")
    assert (
        notes.ListSafetyPlanReviews(nt.ListSafetyPlanReviewsRequest(), metadata=dietitian).reviews
        == []
    )

    # Reviewed with the patient: a new version, and the review is cleared (a retry changes
    # nothing more and answers with the same version).
    revised = SECTIONS | {"warning-signs": [*SECTIONS["warning-signs"], "Giving things away"]}
    request_id = str(uuid.uuid4())
    body = safety_plan(patient, revised, status="amended")
    second = _save(notes, therapist, patient, body, version=1, request_id=request_id)
    assert (second.id, second.version, second.status) == (plan.id, 2, "amended")
    again = _save(notes, therapist, patient, body, version=1, request_id=request_id)
    assert (again.version, again.fhir_json) == (2, second.fhir_json)
    assert not _view(notes, therapist, patient).HasField("review")
    assert (
        notes.ListSafetyPlanReviews(
            nt.ListSafetyPlanReviewsRequest(patient_id=patient), metadata=therapist
        ).reviews
        == []
    )

    # Every version is kept; the whole team reads the plan.
    versions = notes.ListSafetyPlanVersions(
        nt.ListSafetyPlanVersionsRequest(id=plan.id), metadata=dietitian
    ).plans
    assert [v.version for v in versions] == [2, 1]
    first = notes.GetSafetyPlan(nt.GetSafetyPlanRequest(id=plan.id, version=1), metadata=dietitian)
    assert first.plan.fhir_json == plan.fhir_json

    # A clinician's crisis message makes it due again; moderate risk alerts without a review.
    notes.PostMessage(
        nt.PostMessageRequest(
            request_id=str(uuid.uuid4()),
            patient_id=patient,
            text="Called the program: says she has pills saved up.",
            category="crisis",
        ),
        metadata=as_(settings, "case-manager", "cm-1"),
    )
    assert _view(notes, therapist, patient).review.crises == 1
    _save(notes, therapist, patient, safety_plan(patient), version=2)
    moderate = _screen(stub, settings, cssrs_screen(patient, {**NO, 6: True}, recent=False))
    assert "C-SSRS screen moderate risk" in moderate.crisis_reasons[0]
    harness.eventually(
        lambda: any(
            m.text.startswith("SUICIDE RISK, MODERATE")
            for m in _crisis_messages(notes, therapist, patient)
        ),
        timeout=20,
        interval=0.02,
    )
    assert not _view(notes, therapist, patient).HasField("review")


def _refused(call: Any, code: grpc.StatusCode) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    assert caught.value.code() == code, caught.value.details()
    return caught.value


def test_bad_safety_plans_and_screens_are_refused_with_nothing_written(
    stub: pb_grpc.CarePlanServiceStub,
    notes: nt_grpc.NotesServiceStub,
    settings: Settings,
    patient: str,
) -> None:
    therapist = as_(settings, "therapist", "th-1")
    incomplete = {k: v for k, v in SECTIONS.items() if k not in ("warning-signs", "help-contacts")}
    incomplete["professionals"] = ["Therapist Dr. Lee"]
    error = _refused(
        lambda: _save(notes, therapist, patient, safety_plan(patient, incomplete)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    problems = field_violations(error)
    assert len(problems) == 3, problems
    assert all(p.startswith("fhir_json.QuestionnaireResponse.item") for p in problems)
    other = safety_plan("someone-else")
    error = _refused(
        lambda: _save(notes, therapist, patient, other), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert field_violations(error) == ["fhir_json.QuestionnaireResponse.subject"]
    # Not a writer: the dietitian on the team, a psychiatrist not on it, an administrator.
    for who in (
        as_(settings, "dietitian", "diet-1"),
        as_(settings, "psychiatrist", "psy-9"),
        harness.metadata(settings, role="admin", practitioner=""),
    ):
        error = _refused(
            lambda who=who: _save(notes, who, patient, safety_plan(patient)),
            grpc.StatusCode.PERMISSION_DENIED,
        )
        assert error_reason(error) in ("NOT_A_SAFETY_PLAN_WRITER", "NOT_ON_CARE_TEAM")
    assert not _view(notes, therapist, patient).HasField("plan")

    # Two first versions at once (the therapist and the psychiatrist): one is recorded, the
    # other told the patient has a plan (never an internal error).
    outcomes: list[Any] = []

    def first(who: Any) -> None:
        try:
            outcomes.append(_save(notes, who, patient, safety_plan(patient)))
        except grpc.RpcError as exc:
            outcomes.append(error_reason(exc))

    workers = [
        threading.Thread(target=first, args=(who,))
        for who in (therapist, as_(settings, "psychiatrist", "psy-1"))
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    (plan,) = [o for o in outcomes if isinstance(o, nt.SafetyPlan)]
    assert [o for o in outcomes if isinstance(o, str)] == ["SAFETY_PLAN_EXISTS"]
    error = _refused(
        lambda: _save(notes, therapist, patient, safety_plan(patient), version=7),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert error_reason(error) == "STALE_VERSION"
    assert notes.GetSafetyPlan(nt.GetSafetyPlanRequest(id=plan.id), metadata=therapist).plan == plan
    # The patient reads their own plan, not another patient's; a clinician off the team nothing.
    assert _view(notes, _patient_token(settings, patient), patient).plan.id == plan.id
    _refused(
        lambda: _view(notes, _patient_token(settings, "someone-else"), patient),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    _refused(
        lambda: _view(notes, as_(settings, "therapist", "th-9"), patient),
        grpc.StatusCode.PERMISSION_DENIED,
    )

    # The patient's care plan is an SUD program's (a 42 CFR Part 2 record): once notes has seen
    # it, the next version of the safety plan carries its labels (and is restricted).
    team = stub.ListCareTeams(
        pb.ListCareTeamsRequest(patient_id=patient), metadata=harness.metadata(settings)
    ).care_teams[0]
    sud = iop_plan(patient, team.id)
    sud["meta"] = {"security": [{"system": ACT_CODE, "code": "SUD"}]}
    stub.CreateCarePlan(
        pb.CreateCarePlanRequest(request_id=str(uuid.uuid4()), fhir_json=json.dumps(sud)),
        metadata=harness.metadata(settings),
    )
    harness.eventually(
        lambda: any(
            m.category == "system"
            for m in notes.ListThread(
                nt.ListThreadRequest(patient_id=patient), metadata=therapist
            ).messages
        ),
        timeout=20,
        interval=0.02,
    )
    labelled = _save(notes, therapist, patient, safety_plan(patient), version=1)
    security = {s["code"] for s in json.loads(labelled.fhir_json)["meta"]["security"]}
    assert security == {"R", "SUD"}

    # A C-SSRS screen with item 6 yes but not whether it was recent: refused, nothing stored,
    # nothing raised.
    error = _refused(
        lambda: _screen(stub, settings, cssrs_screen(patient, {**NO, 6: True})),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert any("cssrs-6-recent" in d for d in _descriptions(error))
    assert _crisis_messages(notes, therapist, patient) == []
    assert not _view(notes, therapist, patient).HasField("review")


def _patient_token(settings: Settings, patient: str) -> list[tuple[str, str]]:
    from iopcare.kit import auth
    from iopcare.kit.rpc import bearer

    return bearer(
        auth.mint_token(
            settings, subject=f"patient:{patient}", role="patient", patient_context=patient
        )
    )


def _descriptions(error: grpc.RpcError) -> list[str]:
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    status = rpc_status.from_call(error)
    found = []
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            found += [v.description for v in bad.field_violations]
    return found
