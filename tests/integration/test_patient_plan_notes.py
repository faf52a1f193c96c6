"""careplan's view of what happens in notes: signed clinical notes (type and author, only for
those notes' privacy rules let read them), retracted messages, and crisis messages that make the
plan due for review (issue 6, items 5, 6 and 8)."""

from __future__ import annotations

import json
import uuid

from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.kit.settings import Settings
from iopcare.notes.v1 import notes_service_pb2 as nt
from iopcare.notes.v1 import notes_service_pb2_grpc as nt_grpc
from tests.support import harness
from tests.support.notes import wait_for_team
from tests.support.plans import iop_plan, new_patient_id, phq9_goal


def _signed(
    notes: nt_grpc.NotesServiceStub,
    me: list[tuple[str, str]],
    patient: str,
    kind: str,
    text: str,
    sensitivity: tuple[str, ...] = (),
) -> nt.Note:
    (draft,) = notes.CreateNote(
        nt.CreateNoteRequest(
            request_id=str(uuid.uuid4()),
            note=nt.NoteInput(patient_id=patient, kind=kind, text=text, sensitivity=sensitivity),
        ),
        metadata=me,
    ).notes
    return notes.SignNote(
        nt.SignNoteRequest(id=draft.id, expected_version=draft.version), metadata=me
    ).note


def _view(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings, patient: str, role: str, who: str
) -> pb.GetPatientPlanResponse:
    return stub.GetPatientPlan(
        pb.GetPatientPlanRequest(patient_id=patient),
        metadata=harness.metadata(settings, role=role, practitioner=who),
    )


def test_signed_notes_appear_by_type_and_author_to_those_who_may_read_them(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings, notes: nt_grpc.NotesServiceStub
) -> None:
    patient = new_patient_id()
    harness.enrol_over_grpc(stub, settings, patient)
    wait_for_team(notes, settings, patient)
    psychiatrist = harness.metadata(settings, role="psychiatrist", practitioner="psy-1")
    therapist = harness.metadata(settings, role="therapist", practitioner="th-1")
    psychiatric = _signed(notes, psychiatrist, patient, "psychiatric", "Sertraline 50 mg, mood up")
    session = _signed(
        notes, therapist, patient, "therapy", "Process notes: shame, family", ("PSYTHPN",)
    )
    sud = _signed(notes, therapist, patient, "progress", "Relapse on day 12", ("ETH",))

    def listed(role: str, who: str, expect: int) -> pb.GetPatientPlanResponse | None:
        view = _view(stub, settings, patient, role, who)
        documents = [n for n in view.latest_notes if n.resource_type == "DocumentReference"]
        return view if len(documents) == expect else None

    # The author of the psychotherapy note sees all three; the text never reaches careplan.
    mine = harness.eventually(lambda: listed("therapist", "th-1", 3), timeout=30)
    by_id = {n.id: n for n in mine.latest_notes}
    assert by_id[psychiatric.id].title == "Psychiatry Progress note"
    assert by_id[psychiatric.id].author == "Practitioner/psy-1"
    assert list(by_id[session.id].security_labels) == ["R", "PSYTHPN"]
    assert list(by_id[sud.id].security_labels) == ["R", "ETH"]
    assert all("Sertraline" not in n.title and "Relapse" not in n.title for n in mine.latest_notes)
    # The psychiatrist: not the psychotherapy note (45 CFR 164.508(a)(2)), the rest yes.
    seen = {n.id for n in _view(stub, settings, patient, "psychiatrist", "psy-1").latest_notes}
    assert {psychiatric.id, sud.id} <= seen and session.id not in seen
    # The dietitian: only their own discipline's notes (minimum necessary), none of these.
    diet = _view(stub, settings, patient, "dietitian", "diet-1").latest_notes
    assert [n for n in diet if n.resource_type == "DocumentReference"] == []


def test_a_retracted_message_leaves_the_view(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings, notes: nt_grpc.NotesServiceStub
) -> None:
    patient = new_patient_id()
    harness.enrol_over_grpc(stub, settings, patient)
    wait_for_team(notes, settings, patient)
    me = harness.metadata(settings)
    message = notes.PostMessage(
        nt.PostMessageRequest(
            request_id=str(uuid.uuid4()), patient_id=patient, text="Wrong patient, sorry"
        ),
        metadata=me,
    ).message

    def has(present: bool) -> bool:
        ids = {n.id for n in _view(stub, settings, patient, "psychiatrist", "psy-1").latest_notes}
        return (message.id in ids) == present

    harness.eventually(lambda: has(True), timeout=30)
    notes.RetractMessage(
        nt.RetractMessageRequest(id=message.id, expected_version=message.version), metadata=me
    )
    harness.eventually(lambda: has(False), timeout=30)


def test_a_crisis_message_in_the_thread_makes_the_plan_due_for_review_today(
    stub: pb_grpc.CarePlanServiceStub,
    settings: Settings,
    notes: nt_grpc.NotesServiceStub,
) -> None:
    patient = new_patient_id()
    team_id = harness.enrol_over_grpc(stub, settings, patient)
    wait_for_team(notes, settings, patient)
    me = harness.metadata(settings)
    stub.CreateGoal(
        pb.CreateGoalRequest(request_id="g", fhir_json=json.dumps(phq9_goal(patient))),
        metadata=me,
    )
    plan = iop_plan(patient, team_id)
    plan["status"] = "active"
    created = stub.CreateCarePlan(
        pb.CreateCarePlanRequest(request_id="p", fhir_json=json.dumps(plan)), metadata=me
    ).care_plan
    notes.PostMessage(
        nt.PostMessageRequest(
            request_id=str(uuid.uuid4()),
            patient_id=patient,
            text="Patient disclosed a plan to overdose tonight",
            category="crisis",
            priority="stat",
        ),
        metadata=harness.metadata(settings, role="therapist", practitioner="th-1"),
    )

    def revised() -> pb.CarePlan | None:
        current = stub.GetCarePlan(pb.GetCarePlanRequest(id=created.id), metadata=me).care_plan
        return current if current.version > created.version else None

    harness.eventually(revised, timeout=30)
    latest = stub.ListResourceVersions(
        pb.ListResourceVersionsRequest(resource_type="CarePlan", id=created.id), metadata=me
    ).versions[0]
    assert (latest.change, latest.reason) == ("review-due", "crisis raised in the team thread")
