"""Booking and calendar rules without I/O: overlap, capacity, opening hours across DST, slots
(issue 3, items 1 and 2), with property-based tests of the invariants."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given, settings
from hypothesis import strategies as st

from iopcare.kit import fhir
from iopcare.kit.errors import AlreadyExists, FailedPrecondition, FieldViolations, InvalidArgument
from iopcare.scheduling import fhir_map
from iopcare.scheduling.api import instant
from iopcare.scheduling.domain.booking import Busy, check_no_overlap, check_seat
from iopcare.scheduling.domain.calendar import (
    MAX_SLOT_RANGE,
    Calendar,
    Hours,
    Interval,
    check_calendar,
    check_range,
    slots,
    subtract,
)
from iopcare.scheduling.v1 import scheduling_service_pb2 as pb

NEW_YORK = ZoneInfo("America/New_York")
BASE = datetime(2026, 3, 2, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return BASE + timedelta(minutes=minutes)


intervals = st.builds(
    lambda start, length: Interval(at(start), at(start + length)),
    st.integers(0, 24 * 60),
    st.integers(1, 240),
)


@given(st.lists(intervals, max_size=40))
@settings(max_examples=200, deadline=None)
def test_accepting_bookings_one_by_one_never_yields_an_overlap(wanted: list[Interval]) -> None:
    accepted: list[Busy] = []
    for i, interval in enumerate(wanted):
        try:
            check_no_overlap(interval, accepted)
        except FailedPrecondition as exc:
            assert exc.reason == "DOUBLE_BOOKED"
            assert any(b.interval.overlaps(interval) for b in accepted)
            continue
        accepted.append(Busy("Practitioner/p", interval, str(i)))
    ordered = sorted(b.interval for b in accepted)
    for earlier, later in itertools.pairwise(ordered):
        assert earlier.end <= later.start


@given(st.integers(1, 30), st.lists(st.integers(0, 60), max_size=120))
def test_a_group_never_holds_more_than_its_capacity(capacity: int, arrivals: list[int]) -> None:
    seated: list[str] = []
    for n in arrivals:
        patient = f"Patient/{n}"
        try:
            check_seat(capacity, seated, patient)
        except AlreadyExists:
            assert patient in seated
            continue
        except FailedPrecondition as exc:
            assert exc.reason == "SESSION_FULL" and len(seated) == capacity
            continue
        seated.append(patient)
    assert len(seated) <= capacity
    assert len(set(seated)) == len(seated)
    assert len(seated) == min(capacity, len(set(f"Patient/{n}" for n in arrivals)))


@given(st.lists(intervals, max_size=10), st.lists(intervals, max_size=20))
@settings(max_examples=200, deadline=None)
def test_free_time_is_open_time_minus_busy_time(free: list[Interval], busy: list[Interval]) -> None:
    result = subtract(free, busy)
    for piece in result:
        assert piece.start < piece.end
        assert any(f.contains(piece) for f in free)
        assert not any(b.overlaps(piece) for b in busy)
    # Every minute open and not busy is in the result.
    for minute in range(0, 26 * 60, 7):
        instant = Interval(at(minute), at(minute) + timedelta(seconds=1))
        expected = any(f.contains(instant) for f in free) and not any(
            b.overlaps(instant) for b in busy
        )
        assert expected == any(p.contains(instant) for p in result)


def test_back_to_back_sessions_do_not_overlap() -> None:
    check_no_overlap(Interval(at(60), at(120)), [Busy("Patient/a", Interval(at(0), at(60)), "x")])


def test_moving_a_session_does_not_collide_with_its_own_old_time() -> None:
    own = [Busy("Patient/a", Interval(at(0), at(60)), "self")]
    check_no_overlap(Interval(at(30), at(90)), own, ignore="self")
    with pytest.raises(FailedPrecondition):
        check_no_overlap(Interval(at(30), at(90)), own)


def test_opening_hours_stay_local_across_the_daylight_saving_change() -> None:
    # US clocks go forward on 2026-03-08: 09:00 New York is 14:00 UTC before, 13:00 UTC after.
    calendar = Calendar((Hours("fri", time(9), time(12)), Hours("mon", time(9), time(12))))
    opened = calendar.open_intervals(
        datetime(2026, 3, 6, tzinfo=UTC), datetime(2026, 3, 10, tzinfo=UTC), NEW_YORK
    )
    assert [i.start for i in opened] == [
        datetime(2026, 3, 6, 14, tzinfo=UTC),
        datetime(2026, 3, 9, 13, tzinfo=UTC),
    ]
    assert all(i.end - i.start == timedelta(hours=3) for i in opened)


def test_closed_dates_have_no_opening_and_sessions_must_fit_inside_one() -> None:
    calendar = Calendar(
        (Hours("mon", time(9), time(12)), Hours("tue", time(9), time(12))),
        frozenset({date(2026, 3, 3)}),
    )
    opened = calendar.open_intervals(
        datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 4, 6, tzinfo=UTC), NEW_YORK
    )
    assert len(opened) == 1
    monday_ten = datetime(2026, 3, 2, 15, tzinfo=UTC)  # 10:00 EST
    assert calendar.is_open(Interval(monday_ten, monday_ten + timedelta(hours=1)), NEW_YORK)
    assert not calendar.is_open(Interval(monday_ten, monday_ten + timedelta(hours=3)), NEW_YORK)
    holiday = datetime(2026, 3, 3, 15, tzinfo=UTC)
    assert not calendar.is_open(Interval(holiday, holiday + timedelta(hours=1)), NEW_YORK)


def test_slots_are_cut_back_to_back_from_each_free_interval() -> None:
    cut = list(slots([Interval(at(0), at(150)), Interval(at(200), at(260))], timedelta(hours=1)))
    assert cut == [
        Interval(at(0), at(60)),
        Interval(at(60), at(120)),
        Interval(at(200), at(260)),
    ]


def test_every_calendar_problem_is_reported_at_once() -> None:
    problems = FieldViolations()
    check_calendar(
        "room",
        "Practitioner/x",
        0,
        [("mon", "09:00", "12:00"), ("mon", "11:00", "13:00"), ("xyz", "25:00", "08:00")],
        ["2026-13-01"],
        problems,
    )
    fields = {v.field for v in problems.items}
    assert fields == {
        "schedule.actor",
        "schedule.capacity",
        "schedule.opening_hours[1]",
        "schedule.opening_hours[2].day_of_week",
        "schedule.opening_hours[2].opens",
        "schedule.closed_dates[0]",
    }


def test_computed_slots_and_booked_appointments_are_valid_r4() -> None:
    start = datetime(2026, 3, 2, 14, tzinfo=UTC)
    fhir.parse_resource(
        fhir.load_json(fhir_map.slot_json("s1", start, start + timedelta(hours=1), 3)), "Slot"
    )
    group = fhir_map.booked_appointment(
        "a1",
        kind="group",
        patients=[],
        practitioners=["f1", "f2"],
        location="room-1",
        start=start,
        end=start + timedelta(hours=3),
        service_type="group-therapy",
        description="DBT skills",
        care_plan_id="",
        capacity=10,
        at=start,
    )
    joined = fhir_map.revised_appointment(group, 2, start, add_patient="p1")
    attended = fhir_map.with_participant_attendance(joined, "p1", "fulfilled", 3, start)
    parsed = fhir.parse_resource(fhir.load_json(attended), "Appointment")
    assert parsed.meta.versionId == "3"
    patient = next(p for p in parsed.participant if p.actor.reference == "Patient/p1")
    assert patient.extension[0].valueCode == "fulfilled"
    hidden = fhir_map.visible_to(joined, {"p1"})
    assert "Patient/p1" not in hidden


@pytest.mark.parametrize(
    "start",
    [datetime(9999, 12, 31, 20, tzinfo=UTC), datetime(1, 1, 1, 1, tzinfo=UTC)],
)
def test_instants_at_the_ends_of_the_calendar_are_refused_as_invalid(start: datetime) -> None:
    # Opening hours are computed day by day around the range; a range at year 1 or 9999 must be
    # refused with field violations, not overflow the date arithmetic into an internal error.
    problems = FieldViolations()
    assert check_range(start, start + timedelta(hours=1), problems, longest=MAX_SLOT_RANGE) is None
    assert problems
    hours = Calendar((Hours("mon", time(8), time(18)),))
    wanted = Interval(datetime(2026, 3, 2, 14, tzinfo=UTC), datetime(2026, 3, 2, 15, tzinfo=UTC))
    assert hours.is_open(wanted, NEW_YORK)


@pytest.mark.parametrize("seconds", [2**62, -(2**62), 253402300800])
def test_a_timestamp_protobuf_cannot_represent_is_an_invalid_argument(seconds: int) -> None:
    request = pb.FindSlotsRequest(start_time=Timestamp(seconds=seconds))
    with pytest.raises(InvalidArgument) as refused:
        instant(request, "start_time")
    assert [v.field for v in refused.value.violations] == ["start_time"]


@pytest.mark.parametrize("actor", ["Practitioner/a b", "Practitioner/é%", "Location/x_y"])
def test_a_calendar_actor_must_be_a_valid_fhir_reference(actor: str) -> None:
    # Bookings name practitioners and rooms by FHIR id; a calendar under any other name can never
    # be booked, and its Schedule would carry an invalid R4 reference.
    problems = FieldViolations()
    kind = "room" if actor.startswith("Location/") else "practitioner"
    check_calendar(kind, actor, 5 if kind == "room" else 0, (), (), problems)
    assert "schedule.actor" in {v.field for v in problems.items}
