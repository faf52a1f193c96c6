"""GetPatientPlan: the whole picture of one patient from careplan alone (issue 6, item 6)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.kit.runtime import ServiceRuntime
from iopcare.kit.settings import Settings
from tests.support import harness
from tests.support.plans import iop_plan, new_patient_id, phq9, phq9_goal


@pytest.fixture
def others(
    settings: Settings, database_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[dict[str, ServiceRuntime]]:
    """scheduling and notes beside the careplan fixture, on the same kind of database."""
    runtimes = {}
    for name in ("scheduling", "notes"):
        if database_url.startswith("sqlite"):
            url = f"sqlite:///{tmp_path / (name + '.db')}"
        else:
            url = request.getfixturevalue("postgres_server").create_database(
                f"{name}_{uuid.uuid4().hex[:8]}"
            )
        runtimes[name] = harness.build(name, settings, url)
        runtimes[name].start()
    yield runtimes
    for runtime in runtimes.values():
        runtime.stop(grace=0.2)


def test_the_patient_plan_gathers_stay_plan_team_goals_sessions_and_notes(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings, others: dict[str, ServiceRuntime]
) -> None:
    patient = new_patient_id()
    me = harness.metadata(settings)
    team_id = harness.enrol_over_grpc(stub, settings, patient)
    episode = stub.CreateEpisode(
        pb.CreateEpisodeRequest(
            request_id="e",
            fhir_json=json.dumps(
                {
                    "resourceType": "EpisodeOfCare",
                    "status": "planned",
                    "patient": {"reference": f"Patient/{patient}"},
                }
            ),
        ),
        metadata=me,
    ).episode
    stub.AdmitPatient(pb.AdmitPatientRequest(id=episode.id, expected_version=1), metadata=me)
    goal = stub.CreateGoal(
        pb.CreateGoalRequest(request_id="g", fhir_json=json.dumps(phq9_goal(patient))),
        metadata=me,
    ).goal
    plan = stub.CreateCarePlan(
        pb.CreateCarePlanRequest(request_id="p", fhir_json=json.dumps(iop_plan(patient, team_id))),
        metadata=me,
    ).care_plan
    stub.RecordMeasure(
        pb.RecordMeasureRequest(request_id="m", fhir_json=json.dumps(phq9(patient, 16))),
        metadata=me,
    )

    def complete() -> pb.GetPatientPlanResponse | None:
        view = stub.GetPatientPlan(pb.GetPatientPlanRequest(patient_id=patient), metadata=me)
        return view if view.upcoming_sessions and len(view.latest_notes) >= 2 else None

    view = harness.eventually(complete, timeout=30)
    assert (view.episode.status, view.episode.clinical_level) == ("active", "iop")
    assert view.care_plan.id == plan.id
    assert [t.id for t in view.care_teams] == [team_id]
    (progress,) = view.goals
    assert (progress.goal.id, progress.measure_code, progress.latest_value) == (
        goal.id,
        "44261-6",
        16.0,
    )
    assert progress.achievement == "in-progress"
    assert all(s.care_plan_id == plan.id for s in view.upcoming_sessions)
    starts = [s.start_time.ToDatetime() for s in view.upcoming_sessions]
    assert starts == sorted(starts)
    assert {n.category for n in view.latest_notes} == {"system"}
    assert all(len(n.title) <= 80 for n in view.latest_notes)
    assert view.attendance.scheduled == 0


def test_the_patient_plan_is_only_for_the_team(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings
) -> None:
    import grpc

    patient = new_patient_id()
    harness.enrol_over_grpc(stub, settings, patient)
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetPatientPlan(
            pb.GetPatientPlanRequest(patient_id=patient),
            metadata=harness.metadata(settings, role="dietitian", practitioner="diet-9"),
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_attendance_recorded_in_scheduling_reaches_the_patient_plan(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings, others: dict[str, ServiceRuntime]
) -> None:
    from iopcare.scheduling.v1 import scheduling_service_pb2 as sc
    from iopcare.scheduling.v1 import scheduling_service_pb2_grpc as sc_grpc

    patient = new_patient_id()
    me = harness.metadata(settings)
    team_id = harness.enrol_over_grpc(stub, settings, patient)
    stub.CreateCarePlan(
        pb.CreateCarePlanRequest(request_id="p", fhir_json=json.dumps(iop_plan(patient, team_id))),
        metadata=me,
    )
    with harness.channel(others["scheduling"]) as channel:
        scheduling = sc_grpc.SchedulingServiceStub(channel)

        def sessions() -> list[sc.Appointment] | None:
            try:
                found = scheduling.ListAppointments(
                    sc.ListAppointmentsRequest(patient_id=patient), metadata=me
                ).appointments
            except grpc.RpcError:
                return None
            return list(found) or None

        first = harness.eventually(sessions)[0]
        cancelled = scheduling.RecordAttendance(
            sc.RecordAttendanceRequest(
                appointment_id=first.id,
                expected_version=1,
                status="cancelled",
                reason="patient has the flu",
            ),
            metadata=me,
        ).appointment
        assert cancelled.version == 2
        reason = json.loads(cancelled.fhir_json)["cancelationReason"]
        assert reason["text"] == "patient has the flu"
        with pytest.raises(grpc.RpcError) as caught:
            scheduling.RecordAttendance(
                sc.RecordAttendanceRequest(
                    appointment_id=first.id, expected_version=2, status="arrived"
                ),
                metadata=me,
            )
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    def cancelled_in_view() -> bool:
        view = stub.GetPatientPlan(pb.GetPatientPlanRequest(patient_id=patient), metadata=me)
        return any(
            s.appointment_id == first.id and s.status == "cancelled" for s in view.upcoming_sessions
        )

    harness.eventually(cancelled_in_view, timeout=30)


def test_attendance_per_activity_counts_the_sessions_that_have_happened(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings, careplan: ServiceRuntime
) -> None:
    from datetime import UTC, datetime, timedelta

    from iopcare.careplan import store

    patient = new_patient_id()
    harness.enrol_over_grpc(stub, settings, patient)
    now = datetime.now(UTC)
    rows = [
        ("Group therapy", "fulfilled", -3),
        ("Group therapy", "noshow", -2),
        ("Nutrition counselling", "cancelled", -1),
        ("Group therapy", "booked", 2),
    ]
    with careplan.db.write() as conn:
        for description, status, day in rows:
            start = now + timedelta(days=day)
            conn.execute(
                store.session_view.insert().values(
                    appointment_id=str(uuid.uuid4()),
                    patient_id=patient,
                    care_plan_id=None,
                    start=start,
                    end=start + timedelta(hours=1),
                    status=status,
                    description=description,
                    version=1,
                )
            )
    view = stub.GetPatientPlan(
        pb.GetPatientPlanRequest(patient_id=patient), metadata=harness.metadata(settings)
    )
    counts = {a.activity: a.attendance for a in view.activity_attendance}
    assert (counts["Group therapy"].scheduled, counts["Group therapy"].attended) == (2, 1)
    assert counts["Group therapy"].missed == 1
    assert counts["Nutrition counselling"].cancelled == 1
    assert (view.attendance.scheduled, len(view.upcoming_sessions)) == (3, 1)


def test_when_the_plan_completes_its_future_sessions_are_cancelled(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings, others: dict[str, ServiceRuntime]
) -> None:
    from google.protobuf.field_mask_pb2 import FieldMask
    from sqlalchemy import select

    from iopcare.scheduling import store as scheduling_store

    patient = new_patient_id()
    me = harness.metadata(settings)
    team_id = harness.enrol_over_grpc(stub, settings, patient)
    plan = stub.CreateCarePlan(
        pb.CreateCarePlanRequest(request_id="p", fhir_json=json.dumps(iop_plan(patient, team_id))),
        metadata=me,
    ).care_plan

    def statuses() -> list[str]:
        a = scheduling_store.appointment.c
        with others["scheduling"].db.read() as conn:
            return list(conn.execute(select(a.status).where(a.patient_id == patient)).scalars())

    proposed = harness.eventually(statuses)
    assert set(proposed) == {"proposed"}
    stub.UpdateCarePlan(
        pb.UpdateCarePlanRequest(
            id=plan.id,
            expected_version=1,
            fhir_json=json.dumps({"resourceType": "CarePlan", "status": "completed"}),
            update_mask=FieldMask(paths=["status"]),
        ),
        metadata=me,
    )
    cancelled = harness.eventually(lambda: (s := statuses()) and set(s) == {"cancelled"} and s)
    assert len(cancelled) == len(proposed)


def test_attendance_recorded_in_scheduling_moves_an_attendance_goal(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings, others: dict[str, ServiceRuntime]
) -> None:
    from iopcare.scheduling.v1 import scheduling_service_pb2 as sc
    from iopcare.scheduling.v1 import scheduling_service_pb2_grpc as sc_grpc

    patient = new_patient_id()
    me = harness.metadata(settings)
    team_id = harness.enrol_over_grpc(stub, settings, patient)
    goal = stub.CreateGoal(
        pb.CreateGoalRequest(
            request_id="g",
            fhir_json=json.dumps(
                {
                    "resourceType": "Goal",
                    "lifecycleStatus": "active",
                    "description": {"text": "Attends at least 80% of IOP sessions"},
                    "subject": {"reference": f"Patient/{patient}"},
                    "target": [
                        {
                            "measure": {
                                "coding": [
                                    {
                                        "system": "https://iopcare.org/fhir/CodeSystem/measure",
                                        "code": "attendance-rate",
                                    }
                                ]
                            },
                            "detailQuantity": {"value": 80, "comparator": ">=", "unit": "%"},
                        }
                    ],
                }
            ),
        ),
        metadata=me,
    ).goal
    stub.CreateCarePlan(
        pb.CreateCarePlanRequest(request_id="p", fhir_json=json.dumps(iop_plan(patient, team_id))),
        metadata=me,
    )
    with harness.channel(others["scheduling"]) as channel:
        scheduling = sc_grpc.SchedulingServiceStub(channel)

        def sessions() -> list[sc.Appointment] | None:
            try:
                found = scheduling.ListAppointments(
                    sc.ListAppointmentsRequest(patient_id=patient), metadata=me
                ).appointments
            except grpc.RpcError:
                return None  # scheduling has not seen the team yet
            return list(found) if len(found) >= 2 else None

        first, second = harness.eventually(sessions)[:2]
        for session, status in ((first, "fulfilled"), (second, "noshow")):
            scheduling.RecordAttendance(
                sc.RecordAttendanceRequest(
                    appointment_id=session.id, expected_version=session.version, status=status
                ),
                metadata=me,
            )

    def measured() -> list[float] | None:
        found = stub.ListMeasures(
            pb.ListMeasuresRequest(patient_id=patient, code="attendance-rate"), metadata=me
        ).fhir_json
        values = [json.loads(o)["valueQuantity"]["value"] for o in found]
        return values if len(values) == 2 else None

    # Oldest first: 1 of 1 attended, then 1 of 2.
    assert harness.eventually(measured, timeout=30) == [100.0, 50.0]
    current = stub.GetGoal(pb.GetGoalRequest(id=goal.id), metadata=me).goal
    assert json.loads(current.fhir_json)["achievementStatus"]["coding"][0]["code"] == "worsening"
