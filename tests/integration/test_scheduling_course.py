"""From a plan activity to a week of attended sessions and the intensity report (issue 3, items
3 to 5), and a group session's life: patients join, attend one by one, leave and free the seat."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import grpc
import pytest

from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.kit import topics
from iopcare.kit.runtime import ServiceRuntime
from iopcare.kit.settings import Settings
from iopcare.scheduling import codes
from iopcare.scheduling.v1 import scheduling_service_pb2 as sc
from iopcare.scheduling.v1 import scheduling_service_pb2_grpc as sc_grpc
from tests.support import harness
from tests.support.plans import iop_plan, new_patient_id
from tests.support.scheduling import (
    admin,
    future_monday,
    gdate,
    local,
    new_id,
    outcome,
    practitioner_schedule,
    room_schedule,
    ts,
)


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


def test_a_plan_activity_becomes_a_week_of_sessions_attended_and_reported(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings, scheduling: ServiceRuntime
) -> None:
    patient = new_patient_id()
    me = harness.metadata(settings)  # the psychiatrist on the patient's team
    team_id = harness.enrol_over_grpc(stub, settings, patient)
    stub.CreateCarePlan(
        pb.CreateCarePlanRequest(
            request_id=str(uuid.uuid4()), fhir_json=json.dumps(iop_plan(patient, team_id))
        ),
        metadata=me,
        timeout=10,
    )
    zone = ZoneInfo(settings.program_timezone)
    monday = datetime.now(zone).date()
    monday += timedelta(days=7 - monday.weekday())  # next week, inside the 14-day horizon
    week_start = datetime.combine(monday, time(0), tzinfo=zone)
    with harness.channel(scheduling) as channel:
        sched = sc_grpc.SchedulingServiceStub(channel)

        def next_week() -> list[sc.Appointment] | None:
            try:
                found = sched.ListAppointments(
                    sc.ListAppointmentsRequest(
                        patient_id=patient,
                        start_time=ts(week_start),
                        end_time=ts(week_start + timedelta(days=7)),
                    ),
                    metadata=me,
                    timeout=10,
                ).appointments
            except grpc.RpcError:
                return None  # the team has not reached scheduling yet
            return list(found) or None

        week = harness.eventually(next_week)
        # Group therapy Mon/Wed/Fri 09:00-12:00 local, individual therapy Tuesday 13:00, ...
        group = [a for a in week if "Group therapy" in a.fhir_json]
        assert [a.start_time.ToDatetime(tzinfo=UTC).astimezone(zone).time() for a in group] == [
            time(9, 0)
        ] * 3
        hours = {a.id: (a.end_time.seconds - a.start_time.seconds) / 3600 for a in week}
        missed = [a.id for a in week[-2:]]
        for a in week:
            status = "noshow" if a.id in missed else "fulfilled"
            sched.RecordAttendance(
                sc.RecordAttendanceRequest(
                    appointment_id=a.id, expected_version=a.version, status=status
                ),
                metadata=me,
                timeout=10,
            )
        report = sched.GetIntensity(
            sc.GetIntensityRequest(
                patient_id=patient,
                start_date=gdate(monday),
                end_date=gdate(monday + timedelta(days=6)),
            ),
            metadata=me,
            timeout=10,
        )
    (entry,) = report.weeks
    assert entry.iso_week == f"{monday.isocalendar().year}-W{monday.isocalendar().week:02d}"
    assert entry.scheduled_hours == pytest.approx(sum(hours.values()), abs=0.01)
    assert entry.attended_hours == pytest.approx(
        sum(h for i, h in hours.items() if i not in missed), abs=0.01
    )
    assert entry.missed_sessions == 2
    assert (entry.minimum_hours, entry.maximum_hours) == (9, 19)
    assert report.missed_two_in_a_row
    flags = harness.read_topic(
        settings.kafka_bootstrap_servers,
        harness.topic(settings, topics.SCHEDULING),
        lambda r: (
            harness.header(r, "ce_type") == codes.EVENT_DROPOUT_RISK and r.key.decode() == patient
        ),
        settle=1.0,
    )
    assert len(flags) == 1
    flag = json.loads(flags[0].value)
    assert flag["resourceType"] == "Flag" and flag["subject"]["reference"] == f"Patient/{patient}"


def test_a_group_session_seats_patients_records_each_ones_attendance_and_frees_a_seat(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings, scheduling: ServiceRuntime
) -> None:
    with harness.channel(scheduling) as channel:
        sched = sc_grpc.SchedulingServiceStub(channel)
        room, facilitator = new_id("room"), new_id("fac")
        room_schedule(sched, settings, room, capacity=2)
        practitioner_schedule(sched, settings, facilitator, role="group-facilitator")
        day: date = future_monday()
        session = sched.CreateGroupSession(
            sc.CreateGroupSessionRequest(
                request_id=str(uuid.uuid4()),
                location_id=room,
                facilitator_ids=[facilitator],
                start_time=ts(local(day, time(9))),
                end_time=ts(local(day, time(12))),
                service_type="group-therapy",
            ),
            metadata=admin(settings),
            timeout=10,
        ).appointment
        assert (session.capacity, session.seats_taken, session.kind) == (2, 0, "group")
        # It is offered as a slot with seats left.
        slots = sched.FindSlots(
            sc.FindSlotsRequest(
                service_type="group-therapy",
                start_time=ts(local(day, time(0))),
                end_time=ts(local(day + timedelta(days=1), time(0))),
            ),
            metadata=admin(settings),
            timeout=10,
        ).slots
        assert [(s.appointment_id, s.seats_left) for s in slots if s.appointment_id] == [
            (session.id, 2)
        ]
        a, b, c = new_id("pat"), new_id("pat"), new_id("pat")
        for patient in (a, b):
            session = sched.JoinGroupSession(
                sc.JoinGroupSessionRequest(
                    request_id=str(uuid.uuid4()), appointment_id=session.id, patient_id=patient
                ),
                metadata=admin(settings),
                timeout=10,
            ).appointment
        join_c = sc.JoinGroupSessionRequest(
            request_id=str(uuid.uuid4()), appointment_id=session.id, patient_id=c
        )
        assert outcome(
            lambda: sched.JoinGroupSession(join_c, metadata=admin(settings), timeout=10)
        ) == ("FAILED_PRECONDITION", "SESSION_FULL")
        again = sc.JoinGroupSessionRequest(
            request_id=str(uuid.uuid4()), appointment_id=session.id, patient_id=a
        )
        assert outcome(
            lambda: sched.JoinGroupSession(again, metadata=admin(settings), timeout=10)
        ) == ("ALREADY_EXISTS", "ALREADY_JOINED")
        # One attendance record per patient.
        session = sched.RecordAttendance(
            sc.RecordAttendanceRequest(
                appointment_id=session.id,
                expected_version=session.version,
                status="fulfilled",
                patient_id=a,
            ),
            metadata=admin(settings),
            timeout=10,
        ).appointment
        participants = {
            p["actor"]["reference"]: p for p in json.loads(session.fhir_json)["participant"]
        }
        assert participants[f"Patient/{a}"]["extension"][0]["valueCode"] == "fulfilled"
        assert "extension" not in participants[f"Patient/{b}"]
        # b leaves; the seat frees and c gets it.
        left = sched.CancelAppointment(
            sc.CancelAppointmentRequest(
                appointment_id=session.id,
                expected_version=session.version,
                reason="starts a job",
                patient_id=b,
            ),
            metadata=admin(settings),
            timeout=10,
        ).appointment
        assert left.status == "booked" and left.seats_taken == 1
        joined = sched.JoinGroupSession(join_c, metadata=admin(settings), timeout=10).appointment
        assert joined.seats_taken == 2
        mine = sched.ListAppointments(
            sc.ListAppointmentsRequest(patient_id=c), metadata=admin(settings), timeout=10
        ).appointments
        assert [m.id for m in mine] == [session.id]
    answers = harness.read_topic(
        settings.kafka_bootstrap_servers,
        harness.topic(settings, topics.SCHEDULING),
        lambda r: (
            harness.header(r, "ce_type") == codes.EVENT_APPOINTMENT_RESPONSE and r.key.decode() == b
        ),
        expect=2,
    )
    assert sorted(json.loads(r.value)["participantStatus"] for r in answers) == [
        "accepted",
        "declined",
    ]

    # careplan's holistic view: each patient sees the session with their own attendance.
    def statuses() -> dict[str, list[str]] | None:
        seen = {
            patient: [
                s.status
                for s in stub.GetPatientPlan(
                    pb.GetPatientPlanRequest(patient_id=patient), metadata=admin(settings)
                ).upcoming_sessions
                if s.appointment_id == session.id
            ]
            for patient in (a, b, c)
        }
        return seen if seen == {a: ["fulfilled"], b: ["cancelled"], c: ["booked"]} else None

    harness.eventually(statuses, timeout=30)


def test_a_missed_daily_check_in_is_reported_once_after_the_cutoff(
    settings: Settings, scheduling: ServiceRuntime
) -> None:
    from iopcare.scheduling.service import Scheduling

    zone = ZoneInfo(settings.program_timezone)
    runner = Scheduling(scheduling.db, zone=zone, checkin_cutoff=time(10, 0))
    day = future_monday()
    with harness.channel(scheduling) as channel:
        sched = sc_grpc.SchedulingServiceStub(channel)
        therapist = new_id("th")
        practitioner_schedule(sched, settings, therapist)
        came, missed = new_id("pat"), new_id("pat")
        for i, patient in enumerate((came, missed)):
            start = local(day, time(13 + i))
            sched.BookAppointment(
                sc.BookAppointmentRequest(
                    request_id=str(uuid.uuid4()),
                    patient_id=patient,
                    practitioner_ids=[therapist],
                    start_time=ts(start),
                    end_time=ts(start + timedelta(hours=1)),
                ),
                metadata=admin(settings),
                timeout=10,
            )
        # Checking in today through the API: once, then the same answer.
        first = sched.RecordCheckIn(
            sc.RecordCheckInRequest(patient_id=came), metadata=admin(settings), timeout=10
        )
        again = sched.RecordCheckIn(
            sc.RecordCheckInRequest(patient_id=came), metadata=admin(settings), timeout=10
        )
        assert not first.already_recorded and again.already_recorded
        assert again.check_in_time == first.check_in_time
    from iopcare.kit.auth import Principal

    desk = Principal(subject="admin:ops", role="admin")
    runner.record_check_in(desk, came, now=local(day, time(9, 30)))
    assert runner.check_missed_check_ins(local(day, time(9, 59))) == 0  # before the cutoff
    assert runner.check_missed_check_ins(local(day, time(10, 1))) == 1
    assert runner.check_missed_check_ins(local(day, time(10, 2))) == 0  # once a day
    alerts = harness.read_topic(
        settings.kafka_bootstrap_servers,
        harness.topic(settings, topics.SCHEDULING),
        lambda r: harness.header(r, "ce_type") == codes.EVENT_CHECKIN_MISSED,
        settle=1.0,
    )
    assert [r.key.decode() for r in alerts] == [missed]


def test_a_week_below_the_minimum_is_reported_once_when_it_has_ended(
    settings: Settings, scheduling: ServiceRuntime
) -> None:
    from iopcare.scheduling.domain.intensity import Rule
    from iopcare.scheduling.service import Scheduling

    zone = ZoneInfo(settings.program_timezone)
    runner = Scheduling(scheduling.db, zone=zone, rules={"adult": Rule(9, 19)})
    today = datetime.now(zone).date()
    last_monday = today - timedelta(days=today.weekday() + 7)
    patient, therapist = new_id("pat"), new_id("th")
    with harness.channel(scheduling) as channel:
        sched = sc_grpc.SchedulingServiceStub(channel)
        practitioner_schedule(sched, settings, therapist)
        for offset in range(3):  # three 3-hour sessions last week, one attended
            start = local(last_monday + timedelta(days=offset), time(9))
            booked = sched.BookAppointment(
                sc.BookAppointmentRequest(
                    request_id=str(uuid.uuid4()),
                    patient_id=patient,
                    practitioner_ids=[therapist],
                    start_time=ts(start),
                    end_time=ts(start + timedelta(hours=3)),
                ),
                metadata=admin(settings),
                timeout=10,
            ).appointment
            sched.RecordAttendance(
                sc.RecordAttendanceRequest(
                    appointment_id=booked.id,
                    expected_version=1,
                    status="fulfilled" if offset == 0 else "noshow",
                ),
                metadata=admin(settings),
                timeout=10,
            )
        report = sched.GetIntensity(
            sc.GetIntensityRequest(
                patient_id=patient,
                start_date=gdate(last_monday),
                end_date=gdate(today),
            ),
            metadata=admin(settings),
            timeout=10,
        )
    assert [(w.scheduled_hours, w.attended_hours, w.below_minimum) for w in report.weeks] == [
        (9, 3, True),
        (0, 0, False),  # this week has not ended
    ]
    assert runner.check_intensity() == 1
    assert runner.check_intensity() == 0
    flags = harness.read_topic(
        settings.kafka_bootstrap_servers,
        harness.topic(settings, topics.SCHEDULING),
        lambda r: harness.header(r, "ce_type") == codes.EVENT_INTENSITY_BELOW_MINIMUM,
        settle=1.0,
    )
    assert [r.key.decode() for r in flags] == [patient]
    assert "below the program's minimum of 9 h" in json.loads(flags[0].value)["code"]["text"]
