"""Defects found in review of the scheduling service, each pinned by a test against the real
service layer on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from iopcare.kit import fhir
from iopcare.kit.auth import Principal
from iopcare.kit.db import Database, UnitOfWork, migrate
from iopcare.kit.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from iopcare.kit.events import Event, ReceivedEvent
from iopcare.scheduling import app, codes, store
from iopcare.scheduling.appointment_reads import Listing
from iopcare.scheduling.bookings import BookingRequest, GroupRequest
from iopcare.scheduling.calendars import CalendarInput
from iopcare.scheduling.service import Scheduling
from tests.support.scheduling import future_monday, local

ZONE = ZoneInfo("America/New_York")
ADMIN = Principal(subject="admin:review", role="admin")
ALL_DAY = tuple((d, "07:00", "20:00") for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"))


@pytest.fixture
def scheduling(database_url: str) -> Iterator[Scheduling]:
    db = Database(database_url)
    migrate(db, app.MIGRATIONS)
    yield Scheduling(db, zone=ZONE, horizon=timedelta(days=14))
    db.dispose()


def _plan(
    plan_id: str, patient: str, version: int, repeat: dict[str, Any], performer: str = ""
) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "status": "scheduled",
        "description": "Group therapy",
        "scheduledTiming": {"repeat": repeat},
    }
    if performer:
        detail["performer"] = [{"reference": performer}]
    return {
        "resourceType": "CarePlan",
        "id": plan_id,
        "meta": {"versionId": str(version)},
        "status": "active",
        "intent": "plan",
        "subject": {"reference": f"Patient/{patient}"},
        "activity": [{"detail": detail}],
    }


def _deliver(s: Scheduling, handler: str, plan: dict[str, Any], at: datetime) -> None:
    data = json.dumps(plan)
    event = Event(type="t", source="test", subject="CarePlan", key="k", data=data, time=at)
    received = ReceivedEvent(event, fhir.parse_resource(data, "CarePlan"), "topic", 0, 0)
    with UnitOfWork(s.db) as uow:
        getattr(s, handler)(uow, received)
        uow.commit()


def _starts(s: Scheduling, patient: str, *, open_only: bool = True) -> list[datetime]:
    with s.db.read() as conn:
        rows = store.patient_sessions(
            conn, patient, datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
        )
    return sorted(start for _, start, _, _, cancelled, _ in rows if not (open_only and cancelled))


def test_a_weekly_activity_without_days_stays_weekly_as_the_horizon_rolls_on(
    scheduling: Scheduling,
) -> None:
    # "Once a week at 10:00", no dayOfWeek and no bounds: the series repeats on the weekday it
    # began. Extending the horizon day by day must not turn it into a daily series.
    patient, plan_id = f"p{uuid.uuid4().hex[:8]}", f"plan-{uuid.uuid4().hex[:8]}"
    began = local(future_monday(), clock(8))
    repeat = {"frequency": 1, "period": 1, "periodUnit": "wk", "timeOfDay": ["10:00:00"]}
    _deliver(scheduling, "on_care_plan_created", _plan(plan_id, patient, 1, repeat), began)
    for day in range(1, 15):
        scheduling.extend_horizons(began + timedelta(days=day))
    starts = _starts(scheduling, patient)
    assert {s.astimezone(ZONE).weekday() for s in starts} == {0}
    assert len(starts) == 4  # weeks 0..3 within began + 28 days


def _calendar(s: Scheduling, actor: str) -> None:
    kind = "room" if actor.startswith("Location/") else "practitioner"
    value = CalendarInput(actor, kind, "", (), 10 if kind == "room" else 0, ALL_DAY, (), True)
    s.calendars.create(ADMIN, str(uuid.uuid4()), value)


def _group(s: Scheduling, room: str, facilitator: str, start: datetime, hours: int) -> str:
    _calendar(s, f"Location/{room}")
    _calendar(s, f"Practitioner/{facilitator}")
    request = GroupRequest(room, (facilitator,), start, start + timedelta(hours=hours), 10, "", "")
    return s.bookings.create_group(ADMIN, str(uuid.uuid4()), request).id


def _in_session(s: Scheduling, appointment_id: str, patient: str) -> bool:
    with s.db.read() as conn:
        return f"Patient/{patient}" in {a for a, _, _ in store.participants(conn, appointment_id)}


def test_a_group_activity_moved_to_an_overlapping_time_joins_the_new_group(
    scheduling: Scheduling,
) -> None:
    # Monday group therapy moves from 09:00-12:00 (led by one therapist) to 10:00-13:00 (led by
    # another): the old seat must be given up before the new one is taken, or the patient's own
    # old seat blocks the new one and they end up in neither.
    tag = uuid.uuid4().hex[:8]
    patient, plan_id = f"p{tag}", f"plan-{tag}"
    monday = future_monday()
    first = _group(scheduling, f"r1{tag}", f"f1{tag}", local(monday, clock(9)), 3)
    second = _group(scheduling, f"r2{tag}", f"f2{tag}", local(monday, clock(10)), 3)
    began = local(monday - timedelta(days=3), clock(8))
    repeat: dict[str, Any] = {
        "frequency": 1,
        "period": 1,
        "periodUnit": "wk",
        "dayOfWeek": ["mon"],
        "timeOfDay": ["09:00:00"],
        "duration": 3,
        "durationUnit": "h",
    }
    plan = _plan(plan_id, patient, 1, repeat, f"Practitioner/f1{tag}")
    _deliver(scheduling, "on_care_plan_created", plan, began)
    assert _in_session(scheduling, first, patient)

    moved = _plan(
        plan_id, patient, 2, {**repeat, "timeOfDay": ["10:00:00"]}, f"Practitioner/f2{tag}"
    )
    _deliver(scheduling, "on_care_plan_changed", moved, began + timedelta(hours=1))
    assert not _in_session(scheduling, first, patient)
    assert _in_session(scheduling, second, patient)


def test_a_late_copy_of_an_older_suspension_leaves_the_resumed_series_alone(
    scheduling: Scheduling,
) -> None:
    tag = uuid.uuid4().hex[:8]
    patient, plan_id = f"p{tag}", f"plan-{tag}"
    began = local(future_monday(), clock(8))
    repeat = {"frequency": 1, "period": 1, "periodUnit": "d", "timeOfDay": ["10:00:00"]}
    _deliver(scheduling, "on_care_plan_created", _plan(plan_id, patient, 1, repeat), began)
    suspended = {**_plan(plan_id, patient, 2, repeat), "status": "on-hold"}
    _deliver(scheduling, "on_care_plan_closed", suspended, began + timedelta(minutes=1))
    assert _starts(scheduling, patient) == []
    resumed = _plan(plan_id, patient, 3, repeat)
    _deliver(scheduling, "on_care_plan_changed", resumed, began + timedelta(minutes=2))
    planned = _starts(scheduling, patient)
    assert planned
    # The suspension (version 2) is delivered again after the resumption (version 3).
    _deliver(scheduling, "on_care_plan_closed", suspended, began + timedelta(minutes=3))
    assert _starts(scheduling, patient) == planned


def test_a_request_id_reused_for_a_different_booking_is_refused_not_answered_with_the_first(
    scheduling: Scheduling,
) -> None:
    tag = uuid.uuid4().hex[:8]
    _calendar(scheduling, f"Practitioner/t{tag}")
    start = local(future_monday(), clock(9))
    request_id = str(uuid.uuid4())

    def booking(patient: str, at: datetime) -> BookingRequest:
        return BookingRequest(patient, (f"t{tag}",), "", at, at + timedelta(hours=1), "", "", "")

    first = scheduling.bookings.book(ADMIN, request_id, booking(f"p{tag}", start))
    # The same request again (a client retry) gets the first result...
    assert scheduling.bookings.book(ADMIN, request_id, booking(f"p{tag}", start)).id == first.id
    # ...but the same id with another body is a client bug, not a retry: answering with the first
    # booking would tell the caller that a booking it never got was made.
    other = booking(f"q{tag}", start + timedelta(hours=2))
    with pytest.raises(InvalidArgument) as refused:
        scheduling.bookings.book(ADMIN, request_id, other)
    assert [v.field for v in refused.value.violations] == ["request_id"]


def test_a_join_request_id_reused_for_another_session_is_refused(scheduling: Scheduling) -> None:
    tag = uuid.uuid4().hex[:8]
    monday = future_monday()
    first = _group(scheduling, f"r1{tag}", f"f1{tag}", local(monday, clock(9)), 1)
    second = _group(scheduling, f"r2{tag}", f"f2{tag}", local(monday, clock(11)), 1)
    request_id = str(uuid.uuid4())
    joined = scheduling.bookings.join(ADMIN, request_id, first, f"p{tag}")
    assert joined.id == first
    assert scheduling.bookings.join(ADMIN, request_id, first, f"p{tag}").id == first
    with pytest.raises(InvalidArgument):
        scheduling.bookings.join(ADMIN, request_id, second, f"p{tag}")
    assert not _in_session(scheduling, second, f"p{tag}")


@pytest.mark.parametrize("year", [1, 9999])
def test_bookings_slots_and_intensity_at_the_ends_of_the_calendar_are_invalid_arguments(
    scheduling: Scheduling, year: int
) -> None:
    tag = uuid.uuid4().hex[:8]
    _calendar(scheduling, f"Practitioner/t{tag}")
    start = datetime(year, 12 if year > 1 else 1, 31 if year > 1 else 1, 12, tzinfo=UTC)
    end = start + timedelta(hours=1)
    with pytest.raises(InvalidArgument):
        request = BookingRequest(f"p{tag}", (f"t{tag}",), "", start, end, "", "", "")
        scheduling.bookings.book(ADMIN, str(uuid.uuid4()), request)
    with pytest.raises(InvalidArgument):
        scheduling.calendars.find_slots(
            schedule_id="",
            actor=f"Practitioner/t{tag}",
            role="",
            service_type="",
            start=start,
            end=end,
            duration_minutes=30,
            page_size=10,
        )
    day = start.date().isoformat()
    with pytest.raises(InvalidArgument):
        scheduling.intensity(ADMIN, f"p{tag}", day, day, "")


def test_no_below_minimum_alert_for_the_partial_week_of_admission(scheduling: Scheduling) -> None:
    tag = uuid.uuid4().hex[:8]
    patient = f"p{tag}"
    _calendar(scheduling, f"Practitioner/t{tag}")
    monday = future_monday()

    def book(day: date) -> None:
        start = local(day, clock(9))
        request = BookingRequest(
            patient, (f"t{tag}",), "", start, start + timedelta(hours=3), "", "", ""
        )
        scheduling.bookings.book(ADMIN, str(uuid.uuid4()), request)

    book(monday + timedelta(days=3))  # admitted on a Thursday: the first session
    book(monday + timedelta(days=7))  # the next week, a whole one, has 3 hours only
    after_first = local(monday + timedelta(days=7), clock(12))
    assert scheduling.check_intensity(after_first) == 0
    after_second = local(monday + timedelta(days=14), clock(12))
    assert scheduling.check_intensity(after_second) == 1
    assert scheduling.check_intensity(after_second) == 0  # once per patient and week


def _audit_rows(s: Scheduling) -> int:
    with s.db.read() as conn:
        return len(conn.execute(select(store.audit_log.c.id)).all())


def test_invalid_intensity_and_listing_requests_are_audited_refusals(
    scheduling: Scheduling,
) -> None:
    # Test-matrix C11: one audit record for every access and every refusal, bad input included
    # (as BookAppointment and CancelAppointment already do).
    before = _audit_rows(scheduling)
    with pytest.raises(InvalidArgument):
        scheduling.intensity(ADMIN, "p1", "not-a-date", "2026-12-01", "")
    assert _audit_rows(scheduling) == before + 1
    with pytest.raises(InvalidArgument):
        scheduling.list_appointments(
            ADMIN,
            Listing(
                patient_id="p1",
                actor="",
                statuses=["no-such-status"],
                start_from=None,
                start_before=None,
                page_size=10,
                page_token="",
            ),
        )
    assert _audit_rows(scheduling) == before + 2


def test_moving_a_group_into_a_clash_does_not_name_the_patient_who_clashes(
    scheduling: Scheduling,
) -> None:
    # The facilitator moves the group; one of its patients is booked elsewhere at the new time.
    # The refusal may say that a patient of the group is busy, not who, nor expose their id in
    # the error details (test-matrix C14: no patient data beyond what the caller may see).
    tag = uuid.uuid4().hex[:8]
    monday = future_monday()
    group = _group(scheduling, f"r{tag}", f"f{tag}", local(monday, clock(9)), 1)
    patient = f"secret{tag}"
    scheduling.bookings.join(ADMIN, str(uuid.uuid4()), group, patient)
    _calendar(scheduling, f"Practitioner/t{tag}")
    elsewhere = local(monday, clock(14))
    individual = BookingRequest(
        patient, (f"t{tag}",), "", elsewhere, elsewhere + timedelta(hours=1), "", "", ""
    )
    scheduling.bookings.book(ADMIN, str(uuid.uuid4()), individual)
    facilitator = Principal(
        subject=f"practitioner:f{tag}", role="group-facilitator", practitioner_id=f"f{tag}"
    )
    with scheduling.db.read() as conn:
        current = store.load_appointment(conn, group)
    assert current is not None
    with pytest.raises(FailedPrecondition) as refused:
        scheduling.changes.reschedule(
            facilitator, group, current.version, elsewhere, elsewhere + timedelta(hours=1), "r"
        )
    assert refused.value.reason == "DOUBLE_BOOKED"
    assert patient not in refused.value.message
    assert patient not in str(refused.value.metadata)
    assert "patient" in refused.value.message


def test_a_late_plan_change_leaves_sessions_that_already_took_place(
    scheduling: Scheduling,
) -> None:
    # A plan change published three days ago reaches scheduling only now (the broker was down,
    # test-matrix A14): sessions of the last three days have taken place and must stay as they
    # were; only those still ahead follow the change (issue 3: "past ones stay").
    tag = uuid.uuid4().hex[:8]
    patient, plan_id = f"p{tag}", f"plan-{tag}"
    began = datetime.now(UTC) - timedelta(days=3)
    repeat = {"frequency": 1, "period": 1, "periodUnit": "d", "timeOfDay": ["10:00:00"]}
    _deliver(scheduling, "on_care_plan_created", _plan(plan_id, patient, 1, repeat), began)
    moved = _plan(plan_id, patient, 2, {**repeat, "timeOfDay": ["15:00:00"]})
    _deliver(scheduling, "on_care_plan_changed", moved, began + timedelta(minutes=1))
    now = datetime.now(UTC)
    with scheduling.db.read() as conn:
        rows = store.patient_sessions(conn, patient, began - timedelta(days=1), now)
    past = [(start, status) for _, start, end, _, _, status in rows if end <= now]
    assert past, "the series proposed sessions in the last three days"
    assert all(status == "proposed" for _, status in past), past


def _events(s: Scheduling, event_type: str, key: str) -> int:
    with s.db.read() as conn:
        rows = conn.execute(
            select(store.outbox.c.id).where(
                (store.outbox.c.event_type == event_type) & (store.outbox.c.key == key)
            )
        ).all()
    return len(rows)


def test_a_streak_of_missed_sessions_raises_the_dropout_alert_once(scheduling: Scheduling) -> None:
    tag = uuid.uuid4().hex[:8]
    patient = f"p{tag}"
    _calendar(scheduling, f"Practitioner/t{tag}")
    today = datetime.now(ZONE).date()
    for days_ago in (4, 3, 2):
        start = local(today - timedelta(days=days_ago), clock(10))
        request = BookingRequest(
            patient, (f"t{tag}",), "", start, start + timedelta(hours=1), "", "", ""
        )
        booked = scheduling.bookings.book(ADMIN, str(uuid.uuid4()), request)
        scheduling.record_attendance(ADMIN, booked.id, booked.version, "noshow", "")
    # Missed, missed (the alert), missed again: still the same streak, still one alert.
    assert _events(scheduling, codes.EVENT_DROPOUT_RISK, patient) == 1


def test_a_plan_finding_the_patient_already_in_its_group_reports_no_conflict(
    scheduling: Scheduling,
) -> None:
    # The coordinator seated the patient by hand before the plan arrived: the plan's occurrence
    # is carried out by that seat, not a conflict (and the plan's later changes follow it).
    tag = uuid.uuid4().hex[:8]
    patient, plan_id = f"p{tag}", f"plan-{tag}"
    monday = future_monday()
    group = _group(scheduling, f"r{tag}", f"f{tag}", local(monday, clock(9)), 3)
    scheduling.bookings.join(ADMIN, str(uuid.uuid4()), group, patient)
    repeat: dict[str, Any] = {
        "frequency": 1,
        "period": 1,
        "periodUnit": "wk",
        "dayOfWeek": ["mon"],
        "timeOfDay": ["09:00:00"],
        "duration": 3,
        "durationUnit": "h",
        "boundsPeriod": {"start": monday.isoformat(), "end": monday.isoformat()},
    }
    plan = _plan(plan_id, patient, 1, repeat, f"Practitioner/f{tag}")
    began = local(monday - timedelta(days=3), clock(8))
    _deliver(scheduling, "on_care_plan_created", plan, began)
    assert _events(scheduling, codes.EVENT_SERIES_CONFLICT, patient) == 0
    # The plan ends the activity: the seat it carried out is given up.
    ended = {k: v for k, v in plan.items() if k != "activity"} | {"meta": {"versionId": "2"}}
    _deliver(scheduling, "on_care_plan_changed", ended, began + timedelta(hours=1))
    assert not _in_session(scheduling, group, patient)


def test_simultaneous_check_ins_of_one_patient_all_succeed_and_one_is_recorded(
    scheduling: Scheduling,
) -> None:
    # A patient taps "check in" on two devices at once: both get an answer (one recorded, the
    # other "already recorded"), never a conflict error.
    patient = f"p{uuid.uuid4().hex[:8]}"
    barrier = threading.Barrier(8)
    answers: list[bool] = []
    errors: list[BaseException] = []

    def check_in() -> None:
        barrier.wait()
        try:
            answers.append(scheduling.record_check_in(ADMIN, patient)[3])
        except BaseException as exc:  # the test reports whatever escaped
            errors.append(exc)

    threads = [threading.Thread(target=check_in) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(answers) == [False] + [True] * 7


def test_an_alert_raised_from_two_places_at_once_is_raised_once_without_error(
    scheduling: Scheduling,
) -> None:
    # Two no-shows of one patient recorded at the same moment both complete the streak; two
    # replicas run the periodic checks at the same moment. One raises the alert, the other
    # learns it was raised; neither fails.
    patient = f"p{uuid.uuid4().hex[:8]}"
    barrier = threading.Barrier(6)
    raised: list[bool] = []
    errors: list[BaseException] = []

    def attempt() -> None:
        barrier.wait()
        try:
            with UnitOfWork(scheduling.db) as uow:
                first = store.raise_alert_once(uow.conn, patient, codes.ALERT_DROPOUT, "streak")
                uow.commit()
            raised.append(first)
        except BaseException as exc:  # the test reports whatever escaped
            errors.append(exc)

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(raised) == [False] * 5 + [True]


def test_simultaneous_calendars_for_one_actor_one_is_created_the_rest_already_exist(
    scheduling: Scheduling,
) -> None:
    actor = f"Practitioner/t{uuid.uuid4().hex[:8]}"
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def attempt() -> None:
        barrier.wait()
        try:
            value = CalendarInput(actor, "practitioner", "", (), 0, ALL_DAY, (), True)
            scheduling.calendars.create(ADMIN, str(uuid.uuid4()), value)
            outcomes.append("OK")
        except AlreadyExists:
            outcomes.append("ALREADY_EXISTS")
        except BaseException as exc:  # the test reports whatever escaped
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ALREADY_EXISTS"] * 5 + ["OK"]
