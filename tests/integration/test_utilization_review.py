"""Utilization review (issue 14 part 4), on both databases with the real Kafka:

- ASAM ratings recorded on admission and on a level change, levels coded with ASAM beside the
  program's;
- a patient's Coverage and an authorization of 12 sessions for the stay, its units counted from
  the attendance scheduling records (its events, through careplan's consumer), raising the team
  task (an `authorization.alert` event carrying a Task) at 3 sessions left, once;
- an authorization that has expired raising its task, judged by an injected clock, once, and
  not again after a restart; notes posts both tasks to the team thread.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest

from iopcare.careplan import codes
from iopcare.careplan.domain.utilization import ASAM_DIMENSIONS
from iopcare.careplan.utilization import Utilization
from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.kit import topics
from iopcare.kit.runtime import ServiceRuntime
from iopcare.kit.settings import Settings
from iopcare.notes.v1 import notes_service_pb2 as nt
from iopcare.notes.v1 import notes_service_pb2_grpc as nt_grpc
from iopcare.scheduling.v1 import scheduling_service_pb2 as sc
from iopcare.scheduling.v1 import scheduling_service_pb2_grpc as sc_grpc
from tests.support import harness
from tests.support.notes import error_reason
from tests.support.plans import new_patient_id
from tests.support.scheduling import future_monday, local, practitioner_schedule, ts
from tests.support.utilization import authorization_example, coverage_example


@pytest.fixture
def scheduling(
    settings: Settings, database_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[ServiceRuntime]:
    if database_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'scheduling.db'}"
    else:
        url = request.getfixturevalue("postgres_server").create_database(
            f"scheduling_{uuid.uuid4().hex[:8]}"
        )
    runtime = harness.build("scheduling", settings, url)
    runtime.start()
    yield runtime
    runtime.stop(grace=0.2)


def _ratings(*values: int) -> list[pb.AsamRating]:
    return [
        pb.AsamRating(dimension=d, rating=v) for d, v in zip(ASAM_DIMENSIONS, values, strict=True)
    ]


def _alerts(settings: Settings, authorization_id: str, expect: int, settle: float = 0) -> list[Any]:
    return harness.read_topic(
        settings.kafka_bootstrap_servers,
        harness.topic(settings, topics.CAREPLAN),
        lambda r: (
            harness.header(r, "ce_type") == codes.EVENT_AUTHORIZATION_ALERT
            and harness.header(r, "ce_subject") == f"ClaimResponse/{authorization_id}"
        ),
        expect=expect,
        settle=settle,
    )


def _stay(stub: pb_grpc.CarePlanServiceStub, settings: Settings) -> tuple[str, pb.EpisodeOfCare]:
    """A patient with their team and an episode admitted to IOP with an ASAM assessment."""
    patient = new_patient_id()
    episode = harness.assign_case_manager(stub, settings, patient)
    harness.create_team_over_grpc(stub, settings, patient)
    me = harness.metadata(settings)
    with pytest.raises(grpc.RpcError) as incomplete:
        stub.AdmitPatient(
            pb.AdmitPatientRequest(
                id=episode.id, expected_version=1, asam_ratings=_ratings(1, 0, 2, 3, 3, 2)[:5]
            ),
            metadata=me,
            timeout=10,
        )
    assert incomplete.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    admitted = stub.AdmitPatient(
        pb.AdmitPatientRequest(
            id=episode.id,
            expected_version=1,
            reason="intake",
            request_id=str(uuid.uuid4()),
            asam_ratings=_ratings(1, 0, 2, 3, 3, 2),
        ),
        metadata=me,
        timeout=10,
    ).episode
    return patient, admitted


def test_asam_ratings_on_admission_and_a_level_change(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings
) -> None:
    _, admitted = _stay(stub, settings)
    assert (admitted.clinical_level, admitted.clinical_asam_level) == ("iop", "2.1")
    assert [r.rating for r in admitted.asam_ratings] == [1, 0, 2, 3, 3, 2]
    changed = stub.ChangeLevelOfCare(
        pb.ChangeLevelOfCareRequest(
            id=admitted.id,
            expected_version=admitted.version,
            clinical_level="php",
            authorized_level="php",
            reason="worsening",
            asam_ratings=_ratings(2, 1, 3, 3, 4, 2),
        ),
        metadata=harness.metadata(settings),
        timeout=10,
    ).episode
    assert (changed.status, changed.clinical_asam_level, changed.authorized_asam_level) == (
        "onhold",
        "2.5",
        "2.5",
    )
    assert [(r.dimension, r.rating) for r in changed.asam_ratings] == list(
        zip(ASAM_DIMENSIONS, [2, 1, 3, 3, 4, 2], strict=True)
    )
    level = next(
        e for e in json.loads(changed.fhir_json)["extension"] if e["url"] == codes.LEVEL_EXTENSION
    )
    assert {
        "url": "clinical-asam",
        "valueCoding": {
            "system": "https://iopcare.org/fhir/CodeSystem/asam-level",
            "code": "2.5",
            "display": "Partial hospitalization services",
        },
    } in level["extension"]
    # The admission's assessment is kept in the history of versions.
    history = stub.ListResourceVersions(
        pb.ListResourceVersionsRequest(resource_type="EpisodeOfCare", id=admitted.id),
        metadata=harness.metadata(settings),
        timeout=10,
    )
    assert len(history.versions) == 3


def test_an_authorization_counts_attendance_and_raises_its_tasks(
    stub: pb_grpc.CarePlanServiceStub,
    settings: Settings,
    careplan: ServiceRuntime,
    scheduling: ServiceRuntime,
    notes: nt_grpc.NotesServiceStub,
) -> None:
    patient, stay = _stay(stub, settings)
    cm = harness.metadata(settings, role="case-manager", practitioner="cm-1")
    request_id = str(uuid.uuid4())
    coverage = stub.CreateCoverage(
        pb.CreateCoverageRequest(
            request_id=request_id, fhir_json=json.dumps(coverage_example(patient))
        ),
        metadata=cm,
        timeout=10,
    ).coverage
    again = stub.CreateCoverage(
        pb.CreateCoverageRequest(
            request_id=request_id, fhir_json=json.dumps(coverage_example(patient))
        ),
        metadata=cm,
        timeout=10,
    ).coverage
    assert again.id == coverage.id  # a retry, not a second coverage
    stranger = harness.metadata(settings, role="therapist", practitioner="th-9")
    with pytest.raises(grpc.RpcError) as denied:
        stub.GetCoverage(pb.GetCoverageRequest(id=coverage.id), metadata=stranger, timeout=10)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED

    today = datetime.now(UTC).date()
    twelve = authorization_example(
        patient, stay.id, coverage.id, today - timedelta(days=1), today + timedelta(days=60)
    )
    authorization = stub.CreateAuthorization(
        pb.CreateAuthorizationRequest(request_id=str(uuid.uuid4()), fhir_json=json.dumps(twelve)),
        metadata=cm,
        timeout=10,
    ).authorization
    assert (authorization.units_authorized, authorization.units_used, authorization.asam_level) == (
        12,
        0,
        "2.1",
    )
    with pytest.raises(grpc.RpcError) as foreign:
        other = authorization_example(new_patient_id(), stay.id, coverage.id, today, today)
        stub.CreateAuthorization(
            pb.CreateAuthorizationRequest(
                request_id=str(uuid.uuid4()), fhir_json=json.dumps(other)
            ),
            metadata=harness.metadata(settings, role="admin", practitioner="adm-1"),
            timeout=10,
        )
    assert error_reason(foreign.value) == "EPISODE_NOT_FOUND"

    # Nine sessions attended (scheduling's attendance events reach careplan's consumer).
    me = harness.metadata(settings)
    day = future_monday(1) + timedelta(days=1)
    with harness.channel(scheduling) as channel:
        sched = sc_grpc.SchedulingServiceStub(channel)
        practitioner_schedule(sched, settings, "th-1")

        def book(hour: int) -> sc.Appointment | None:
            try:  # once scheduling has heard of the team
                return sched.BookAppointment(
                    sc.BookAppointmentRequest(
                        request_id=f"{patient}-{hour}",
                        patient_id=patient,
                        practitioner_ids=["th-1"],
                        start_time=ts(local(day, time(hour), settings.program_timezone)),
                        end_time=ts(local(day, time(hour, 50), settings.program_timezone)),
                        service_type="individual-therapy",
                    ),
                    metadata=me,
                    timeout=10,
                ).appointment
            except grpc.RpcError as exc:
                assert error_reason(exc) == "NOT_ON_CARE_TEAM", exc
                return None

        for hour in range(8, 17):
            session = harness.eventually(lambda hour=hour: book(hour))
            sched.RecordAttendance(
                sc.RecordAttendanceRequest(
                    appointment_id=session.id,
                    expected_version=session.version,
                    status="fulfilled",
                    request_id=str(uuid.uuid4()),
                ),
                metadata=me,
                timeout=10,
            )

    def counted() -> pb.Authorization | None:
        found = stub.GetAuthorization(
            pb.GetAuthorizationRequest(id=authorization.id), metadata=cm, timeout=10
        ).authorization
        return found if found.units_used == 9 and found.tasks else None

    found = harness.eventually(counted)
    assert found.units_remaining == 3
    task = json.loads(found.tasks[0])
    assert task["resourceType"] == "Task" and task["code"]["coding"][0]["code"] == "units-low"
    assert task["focus"] == {"reference": f"ClaimResponse/{authorization.id}"}
    assert "3 of 12 sessions remain" in task["description"]
    (record,) = _alerts(settings, authorization.id, 1, settle=1.0)
    assert record.key.decode() == patient and json.loads(record.value)["id"] == task["id"]

    # The periodic check finds nothing new today: the task is raised once.
    judge = Utilization(
        careplan.db, notify_outbox=careplan.relay.notify if careplan.relay else lambda: None
    )
    assert judge.announce_alerts(today) == 0

    # Expired: judged by an injected clock a day after its end, once, and not after a restart.
    judge.clock = lambda: datetime.combine(today + timedelta(days=62), time(12), UTC)
    assert judge.announce_alerts() == 1
    assert judge.announce_alerts() == 0
    restarted = Utilization(careplan.db)
    assert restarted.announce_alerts(today + timedelta(days=62)) == 0
    records = _alerts(settings, authorization.id, 2)
    kinds = [json.loads(r.value)["code"]["coding"][0]["code"] for r in records]
    assert kinds == ["units-low", "expired"]
    listed = stub.ListAuthorizations(
        pb.ListAuthorizationsRequest(patient_id=patient), metadata=cm, timeout=10
    ).authorizations
    assert [a.id for a in listed] == [authorization.id]

    # The UR packet of the stay, on demand: a document with the ASAM ratings and attendance.
    packet = json.loads(
        stub.GetUtilizationReviewPacket(
            pb.GetUtilizationReviewPacketRequest(
                id=authorization.id, requested_units=8, reason="PHQ-9 still moderate"
            ),
            metadata=cm,
            timeout=10,
        ).fhir_json
    )
    assert packet["type"] == "document"
    sections = {s["title"]: s["text"]["div"] for s in packet["entry"][0]["resource"]["section"]}
    assert "9 used, 3 remaining" in sections["Attendance against the plan"]
    assert "sessions attended: 9" in sections["Attendance against the plan"]
    assert "D4 Readiness to change: 3" in sections["ASAM criteria"]

    # notes posts each task to the team thread (the path review-due notices take).
    def posted() -> list[str] | None:
        thread = notes.ListThread(
            nt.ListThreadRequest(patient_id=patient, page_size=100), metadata=me, timeout=10
        ).messages
        found = [m.text for m in thread if m.text.startswith("Utilization review task")]
        return found if len(found) == 2 else None

    low, expired = harness.eventually(posted)
    assert "3 of 12 sessions remain" in low and "expired on" in expired
