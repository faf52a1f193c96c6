"""Scheduling's calendars and bookings through the real gRPC server, on SQLite and PostgreSQL
(issue 3, items 1, 2 and 7; test-matrix B3, B4, D11)."""

from __future__ import annotations

import itertools
import json
import os
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta

import grpc
import pytest
from google.type import date_pb2
from sqlalchemy import func, select

from iopcare.kit.runtime import ServiceRuntime
from iopcare.kit.settings import Settings
from iopcare.scheduling import store
from iopcare.scheduling.v1 import scheduling_service_pb2 as sc
from iopcare.scheduling.v1 import scheduling_service_pb2_grpc as sc_grpc
from tests.support import harness
from tests.support.scheduling import (
    admin,
    details,
    future_monday,
    gdate,
    local,
    new_id,
    outcome,
    practitioner_schedule,
    room_schedule,
    ts,
)

#: Simultaneous bookings for the last seat. The issue asks for 1,000; the bench runs that many
#: (bench/scheduling.py), the suite a count a 2-core CI machine finishes in seconds. The test server
#: has 8 workers and admits 256 calls at once (kit.rpc); above that it answers RESOURCE_EXHAUSTED.
LAST_SEAT_CALLERS = int(os.environ.get("IOPCARE_TEST_LAST_SEAT_CALLERS", "200"))


@pytest.fixture
def scheduling(settings: Settings, database_url: str) -> Iterator[ServiceRuntime]:
    runtime = harness.build("scheduling", settings, database_url)
    runtime.start()
    yield runtime
    runtime.stop(grace=0.5)


@pytest.fixture
def stub(scheduling: ServiceRuntime) -> Iterator[sc_grpc.SchedulingServiceStub]:
    with harness.channel(scheduling) as channel:
        yield sc_grpc.SchedulingServiceStub(channel)


def _book(
    stub: sc_grpc.SchedulingServiceStub,
    settings: Settings,
    patient: str,
    practitioner: str,
    start: datetime,
    minutes: int = 60,
    **kwargs: object,
) -> sc.Appointment:
    return stub.BookAppointment(
        sc.BookAppointmentRequest(
            request_id=str(kwargs.pop("request_id", uuid.uuid4())),
            patient_id=patient,
            practitioner_ids=[practitioner],
            start_time=ts(start),
            end_time=ts(start + timedelta(minutes=minutes)),
            service_type="individual-therapy",
            **kwargs,  # type: ignore[arg-type]
        ),
        metadata=admin(settings),
        timeout=30,
    ).appointment


def test_find_slots_is_opening_hours_minus_holidays_minus_bookings_in_local_time(
    stub: sc_grpc.SchedulingServiceStub, settings: Settings
) -> None:
    therapist = new_id("th")
    monday = future_monday()
    tuesday = monday + timedelta(days=1)
    practitioner_schedule(
        stub,
        settings,
        therapist,
        opening_hours=[
            sc.OpeningHours(day_of_week=d, opens="09:00", closes="12:00")
            for d in ("mon", "tue", "wed")
        ],
        closed_dates=[gdate(tuesday)],
    )
    _book(stub, settings, new_id("pat"), therapist, local(monday, time(10, 0)))
    found = stub.FindSlots(
        sc.FindSlotsRequest(
            actor=f"Practitioner/{therapist}",
            start_time=ts(local(monday, time(0, 0))),
            end_time=ts(local(monday + timedelta(days=3), time(0, 0))),
            duration_minutes=60,
        ),
        metadata=admin(settings),
        timeout=10,
    )
    starts = [s.start_time.ToDatetime(tzinfo=UTC) for s in found.slots]
    # Monday 09:00 and 11:00 (10:00 is booked), no Tuesday (holiday), Wednesday 09-12.
    assert starts == [
        local(monday, time(9, 0)),
        local(monday, time(11, 0)),
        local(monday + timedelta(days=2), time(9, 0)),
        local(monday + timedelta(days=2), time(10, 0)),
        local(monday + timedelta(days=2), time(11, 0)),
    ]
    slot = json.loads(found.slots[0].fhir_json)
    assert slot["resourceType"] == "Slot" and slot["status"] == "free"
    assert not found.truncated


def test_practitioner_patient_and_room_are_never_double_booked(
    stub: sc_grpc.SchedulingServiceStub, settings: Settings
) -> None:
    t1, t2, room = new_id("th"), new_id("th"), new_id("room")
    for t in (t1, t2):
        practitioner_schedule(stub, settings, t)
    room_schedule(stub, settings, room, capacity=1)
    patient, other = new_id("pat"), new_id("pat")
    start = local(future_monday(), time(10, 0))
    first = _book(stub, settings, patient, t1, start, location_id=room)
    assert first.status == "booked"
    # The same therapist, half an hour later, for another patient: refused.
    assert outcome(lambda: _book(stub, settings, other, t1, start + timedelta(minutes=30))) == (
        "FAILED_PRECONDITION",
        "DOUBLE_BOOKED",
    )
    # The same patient with another therapist at an overlapping time: refused.
    assert outcome(lambda: _book(stub, settings, patient, t2, start - timedelta(minutes=30))) == (
        "FAILED_PRECONDITION",
        "DOUBLE_BOOKED",
    )
    # The same room: refused.
    assert outcome(lambda: _book(stub, settings, other, t2, start, location_id=room)) == (
        "FAILED_PRECONDITION",
        "DOUBLE_BOOKED",
    )
    # Back to back is no overlap.
    assert _book(stub, settings, other, t1, start + timedelta(minutes=60)).status == "booked"
    # Outside opening hours (08:00-18:00 local): refused.
    assert outcome(
        lambda: _book(stub, settings, other, t2, local(future_monday(), time(19, 0)))
    ) == ("FAILED_PRECONDITION", "OUTSIDE_OPENING_HOURS")


def test_booking_is_idempotent_by_request_id(
    stub: sc_grpc.SchedulingServiceStub, settings: Settings, scheduling: ServiceRuntime
) -> None:
    therapist, patient = new_id("th"), new_id("pat")
    practitioner_schedule(stub, settings, therapist)
    start = local(future_monday(), time(13, 0))
    request_id = str(uuid.uuid4())
    first = _book(stub, settings, patient, therapist, start, request_id=request_id)
    again = _book(stub, settings, patient, therapist, start, request_id=request_id)
    assert again.id == first.id and again.version == 1
    with scheduling.db.read() as conn:
        count = conn.execute(
            select(func.count())
            .select_from(store.occupancy)
            .where(store.occupancy.c.actor == f"Patient/{patient}")
        ).scalar()
    assert count == 1


def test_the_last_seat_goes_to_exactly_one_of_many_simultaneous_callers(
    stub: sc_grpc.SchedulingServiceStub, settings: Settings, scheduling: ServiceRuntime
) -> None:
    room, facilitator = new_id("room"), new_id("fac")
    room_schedule(stub, settings, room, capacity=8)
    practitioner_schedule(stub, settings, facilitator, role="group-facilitator")
    session = stub.CreateGroupSession(
        sc.CreateGroupSessionRequest(
            request_id=str(uuid.uuid4()),
            location_id=room,
            facilitator_ids=[facilitator],
            start_time=ts(local(future_monday(), time(9, 0))),
            end_time=ts(local(future_monday(), time(12, 0))),
            capacity=3,
            service_type="group-therapy",
            description="DBT skills group",
        ),
        metadata=admin(settings),
        timeout=10,
    ).appointment
    for _ in range(2):  # all seats but the last
        stub.JoinGroupSession(
            sc.JoinGroupSessionRequest(
                request_id=str(uuid.uuid4()), appointment_id=session.id, patient_id=new_id("pat")
            ),
            metadata=admin(settings),
            timeout=10,
        )
    metadata = admin(settings)
    barrier = threading.Barrier(LAST_SEAT_CALLERS)
    results: list[tuple[str, str]] = []
    lock = threading.Lock()

    def attempt() -> None:
        request = sc.JoinGroupSessionRequest(
            request_id=str(uuid.uuid4()), appointment_id=session.id, patient_id=new_id("pat")
        )
        barrier.wait()
        result = outcome(lambda: stub.JoinGroupSession(request, metadata=metadata, timeout=120))
        with lock:
            results.append(result)

    threads = [threading.Thread(target=attempt) for _ in range(LAST_SEAT_CALLERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted({code for code, _ in results})
    assert len(results) == LAST_SEAT_CALLERS
    assert sum(1 for code, _ in results if code == "OK") == 1, codes
    assert set(codes) <= {"OK", "FAILED_PRECONDITION", "ALREADY_EXISTS"}, codes
    final = stub.GetAppointment(
        sc.GetAppointmentRequest(id=session.id), metadata=metadata, timeout=10
    )
    assert final.appointment.seats_taken == 3 == final.appointment.capacity
    with scheduling.db.read() as conn:
        seated = conn.execute(
            select(func.count())
            .select_from(store.occupancy)
            .where(
                (store.occupancy.c.appointment_id == session.id)
                & (store.occupancy.c.role == "patient")
            )
        ).scalar()
    assert seated == 3


def test_overlapping_bookings_for_one_clinician_leave_no_overlap(
    stub: sc_grpc.SchedulingServiceStub, settings: Settings, scheduling: ServiceRuntime
) -> None:
    therapist = new_id("th")
    practitioner_schedule(stub, settings, therapist)
    base = local(future_monday(), time(9, 0))
    metadata = admin(settings)
    callers = 100
    barrier = threading.Barrier(callers)
    results: list[tuple[str, str]] = []
    lock = threading.Lock()

    def attempt(i: int) -> None:
        # Starts every 6 minutes, each an hour long: most pairs overlap.
        start = base + timedelta(minutes=6 * (i % 60))
        request = sc.BookAppointmentRequest(
            request_id=str(uuid.uuid4()),
            patient_id=new_id("pat"),
            practitioner_ids=[therapist],
            start_time=ts(start),
            end_time=ts(start + timedelta(hours=1)),
        )
        barrier.wait()
        result = outcome(lambda: stub.BookAppointment(request, metadata=metadata, timeout=120))
        with lock:
            results.append(result)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {code for code, _ in results} <= {"OK", "FAILED_PRECONDITION"}
    with scheduling.db.read() as conn:
        rows = conn.execute(
            select(store.occupancy.c.start, store.occupancy.c.end)
            .where(store.occupancy.c.actor == f"Practitioner/{therapist}")
            .order_by(store.occupancy.c.start)
        ).all()
    assert len(rows) == sum(1 for code, _ in results if code == "OK") >= 1
    for earlier, later in itertools.pairwise(rows):
        assert earlier.end <= later.start


def test_cancel_marks_late_cancellations_and_frees_the_time_and_reschedule_moves_it(
    stub: sc_grpc.SchedulingServiceStub, settings: Settings
) -> None:
    therapist, patient = new_id("th"), new_id("pat")
    practitioner_schedule(stub, settings, therapist)
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    # Open around the clock so "two hours from now" is bookable whatever the time of the run.
    stub.UpdateSchedule(
        sc.UpdateScheduleRequest(
            schedule=sc.Schedule(
                id=stub.ListSchedules(
                    sc.ListSchedulesRequest(actor=f"Practitioner/{therapist}"),
                    metadata=admin(settings),
                )
                .schedules[0]
                .id,
                opening_hours=[
                    sc.OpeningHours(day_of_week=d, opens="00:00", closes="23:59")
                    for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
                ],
            ),
            expected_version=1,
            update_mask={"paths": ["opening_hours"]},
        ),
        metadata=admin(settings),
        timeout=10,
    )
    late = _book(stub, settings, patient, therapist, soon, minutes=30)
    answer = stub.CancelAppointment(
        sc.CancelAppointmentRequest(
            appointment_id=late.id, expected_version=1, reason="patient unwell"
        ),
        metadata=admin(settings),
        timeout=10,
    )
    assert answer.late and answer.appointment.status == "cancelled"
    reason = json.loads(answer.appointment.fhir_json)["cancelationReason"]
    assert reason["coding"][0]["code"] == "late" and reason["text"] == "patient unwell"
    # The time is free again.
    again = _book(stub, settings, patient, therapist, soon, minutes=30)
    start = local(future_monday(), time(10, 0))
    moved = stub.RescheduleAppointment(
        sc.RescheduleAppointmentRequest(
            appointment_id=again.id,
            expected_version=1,
            start_time=ts(start),
            end_time=ts(start + timedelta(minutes=45)),
            reason="clinician in court",
        ),
        metadata=admin(settings),
        timeout=10,
    ).appointment
    assert moved.version == 2 and moved.start_time.ToDatetime(tzinfo=UTC) == start
    # A stale version is refused with the current one.
    assert outcome(
        lambda: stub.RescheduleAppointment(
            sc.RescheduleAppointmentRequest(
                appointment_id=again.id,
                expected_version=1,
                start_time=ts(start),
                end_time=ts(start + timedelta(minutes=45)),
                reason="again",
            ),
            metadata=admin(settings),
            timeout=10,
        )
    ) == ("FAILED_PRECONDITION", "STALE_VERSION")


def test_invalid_requests_get_invalid_argument_naming_every_field(
    stub: sc_grpc.SchedulingServiceStub, settings: Settings
) -> None:
    start = local(future_monday(), time(10, 0))
    with pytest.raises(grpc.RpcError) as caught:
        stub.BookAppointment(
            sc.BookAppointmentRequest(
                request_id=str(uuid.uuid4()),
                patient_id="",
                practitioner_ids=["a", "b", "c"],
                start_time=ts(start),
                end_time=ts(start - timedelta(minutes=1)),
                service_type="no spaces allowed",
            ),
            metadata=admin(settings),
            timeout=10,
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    _, fields = details(caught.value)
    assert {"patient_id", "practitioner_ids", "end_time", "service_type"} <= set(fields)
    with pytest.raises(grpc.RpcError) as caught:
        stub.CreateSchedule(
            sc.CreateScheduleRequest(
                request_id=str(uuid.uuid4()),
                schedule=sc.Schedule(
                    actor="Patient/x",
                    kind="room",
                    capacity=0,
                    opening_hours=[
                        sc.OpeningHours(day_of_week="funday", opens="9", closes="08:00")
                    ],
                    closed_dates=[date_pb2.Date(year=2026, month=2, day=30)],
                ),
            ),
            metadata=admin(settings),
            timeout=10,
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    _, fields = details(caught.value)
    assert {
        "schedule.actor",
        "schedule.capacity",
        "schedule.opening_hours[0].day_of_week",
        "schedule.opening_hours[0].opens",
        "schedule.closed_dates[0]",
    } <= set(fields)
    with pytest.raises(grpc.RpcError) as caught:
        stub.FindSlots(
            sc.FindSlotsRequest(role="therapist", start_time=ts(start)),
            metadata=admin(settings),
            timeout=10,
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert outcome(
        lambda: stub.GetAppointment(
            sc.GetAppointmentRequest(id="nope"), metadata=admin(settings), timeout=10
        )
    ) == ("NOT_FOUND", "NOT_FOUND")


def test_a_clinician_off_the_team_cannot_book_or_see_the_patient(
    stub: sc_grpc.SchedulingServiceStub, settings: Settings
) -> None:
    therapist, patient = new_id("th"), new_id("pat")
    practitioner_schedule(stub, settings, therapist)
    start = local(future_monday(), time(15, 0))
    stranger = harness.metadata(settings, role="therapist", practitioner=therapist)
    assert outcome(
        lambda: stub.BookAppointment(
            sc.BookAppointmentRequest(
                request_id=str(uuid.uuid4()),
                patient_id=patient,
                practitioner_ids=[therapist],
                start_time=ts(start),
                end_time=ts(start + timedelta(hours=1)),
            ),
            metadata=stranger,
            timeout=10,
        )
    ) == ("PERMISSION_DENIED", "NOT_ON_CARE_TEAM")
    booked = _book(stub, settings, patient, therapist, start)
    assert (
        outcome(
            lambda: stub.GetAppointment(
                sc.GetAppointmentRequest(id=booked.id), metadata=stranger, timeout=10
            )
        )[0]
        == "NOT_FOUND"
    )
    # A therapist may list their own calendar; the patient they may not see stays hidden.
    mine = stub.ListAppointments(
        sc.ListAppointmentsRequest(actor=f"Practitioner/{therapist}", statuses=["booked"]),
        metadata=stranger,
        timeout=10,
    ).appointments
    assert [a.id for a in mine] == [booked.id]
    assert mine[0].patient_id == ""
    participants = json.loads(mine[0].fhir_json)["participant"]
    assert not [p for p in participants if p["actor"]["reference"].startswith("Patient/")]


def test_calendars_are_managed_by_administrators_and_searchable_as_fhir_schedules(
    stub: sc_grpc.SchedulingServiceStub, settings: Settings
) -> None:
    from iopcare.kit import fhir

    therapist, room = new_id("th"), new_id("room")
    created = practitioner_schedule(stub, settings, therapist, role="psychologist")
    room_schedule(stub, settings, room, capacity=9)
    schedule = fhir.parse_resource(created.fhir_json, "Schedule")
    assert schedule.actor[0].reference == f"Practitioner/{therapist}"
    assert created.version == 1 and created.active
    # A clinician cannot open or change calendars; the refusal names the rule.
    clinician = harness.metadata(settings, role="therapist", practitioner=therapist)
    assert outcome(
        lambda: stub.CreateSchedule(
            sc.CreateScheduleRequest(
                request_id=str(uuid.uuid4()),
                schedule=sc.Schedule(actor="Practitioner/x", kind="practitioner"),
            ),
            metadata=clinician,
            timeout=10,
        )
    ) == ("PERMISSION_DENIED", "NOT_CALENDAR_ADMIN")
    # One calendar per actor.
    assert outcome(lambda: practitioner_schedule(stub, settings, therapist)) == (
        "ALREADY_EXISTS",
        "SCHEDULE_EXISTS",
    )
    found = stub.ListSchedules(
        sc.ListSchedulesRequest(role="psychologist"), metadata=clinician, timeout=10
    ).schedules
    assert [s.id for s in found] == [created.id]
    rooms = stub.ListSchedules(
        sc.ListSchedulesRequest(service_type="group-therapy", kind="room"),
        metadata=clinician,
        timeout=10,
    ).schedules
    assert [(s.actor, s.capacity) for s in rooms] == [(f"Location/{room}", 9)]
    # A field mask changes only what it names; a stale version changes nothing.
    updated = stub.UpdateSchedule(
        sc.UpdateScheduleRequest(
            schedule=sc.Schedule(id=created.id, active=False, role="ignored-not-in-mask"),
            expected_version=1,
            update_mask={"paths": ["active"]},
        ),
        metadata=admin(settings),
        timeout=10,
    ).schedule
    assert (updated.version, updated.active, updated.role) == (2, False, "psychologist")
    assert outcome(
        lambda: stub.UpdateSchedule(
            sc.UpdateScheduleRequest(
                schedule=sc.Schedule(id=created.id, active=True),
                expected_version=1,
                update_mask={"paths": ["active"]},
            ),
            metadata=admin(settings),
            timeout=10,
        )
    ) == ("FAILED_PRECONDITION", "STALE_VERSION")
    with pytest.raises(grpc.RpcError) as caught:
        stub.UpdateSchedule(
            sc.UpdateScheduleRequest(
                schedule=sc.Schedule(id=created.id),
                expected_version=2,
                update_mask={"paths": ["actor"]},
            ),
            metadata=admin(settings),
            timeout=10,
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details(caught.value)[1] == ["update_mask"]
    # An inactive calendar takes no bookings and offers no slots.
    start = local(future_monday(), time(10))
    assert outcome(lambda: _book(stub, settings, new_id("pat"), therapist, start)) == (
        "FAILED_PRECONDITION",
        "SCHEDULE_INACTIVE",
    )
    assert (
        outcome(
            lambda: stub.FindSlots(
                sc.FindSlotsRequest(
                    schedule_id=created.id,
                    start_time=ts(start),
                    end_time=ts(start + timedelta(days=1)),
                ),
                metadata=admin(settings),
                timeout=10,
            )
        )[0]
        == "NOT_FOUND"
    )
