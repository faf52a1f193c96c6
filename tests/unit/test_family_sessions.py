"""Family sessions and adolescents in scheduling (scheduling.domain.family): who may take part,
whose attendance is recorded, when a minor's session is proposed and by which intensity rule."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from iopcare.kit.errors import FailedPrecondition, FieldViolations, InvalidArgument
from iopcare.scheduling.domain.family import (
    SchoolHours,
    after_school,
    check_family_ids,
    check_family_known,
    family_attendance,
    is_minor,
    program_for,
)

pytestmark = pytest.mark.unit

NY = ZoneInfo("America/New_York")


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=NY).astimezone(UTC)


def test_family_ids_are_ids_once_each_and_few() -> None:
    problems = FieldViolations()
    check_family_ids(["rp-1", "rp-1", "bad id", *[f"x{i}" for i in range(5)]], problems, "ids")
    fields = {v.field for v in problems.items}
    assert fields == {"ids", "ids[2]"}


def test_only_the_patients_own_family_takes_part() -> None:
    check_family_known(["rp-1", "rp-2"], {"rp-1", "rp-2", "rp-3"})
    with pytest.raises(FailedPrecondition) as exc:
        check_family_known(["rp-1", "rp-9"], {"rp-1"})
    assert exc.value.reason == "RELATED_PERSON_UNKNOWN"
    assert "rp-9" in exc.value.message and "rp-1" not in exc.value.message


def test_whoever_came_has_the_sessions_status_the_others_missed_it() -> None:
    assert family_attendance(["mum", "dad"], ["mum"], "fulfilled") == {
        "mum": "fulfilled",
        "dad": "noshow",
    }
    assert family_attendance(["mum", "dad"], [], "noshow") == {}
    assert family_attendance([], [], "fulfilled") == {}


def test_family_attendance_names_participants_of_a_session_that_took_place() -> None:
    with pytest.raises(InvalidArgument):
        family_attendance(["mum"], ["aunt"], "fulfilled")
    with pytest.raises(InvalidArgument):
        family_attendance(["mum"], ["mum"], "noshow")


def test_a_minors_school_day_session_starts_after_school() -> None:
    tuesday = date(2026, 12, 8)
    start, end = after_school(local(tuesday, 10), local(tuesday, 11), NY, SchoolHours())
    assert (start, end) == (local(tuesday, 15, 30), local(tuesday, 16, 30))
    # Already after school, or on a Saturday: unchanged.
    later = (local(tuesday, 16), local(tuesday, 17))
    assert after_school(*later, NY, SchoolHours()) == later
    saturday = date(2026, 12, 12)
    weekend = (local(saturday, 10), local(saturday, 11))
    assert after_school(*weekend, NY, SchoolHours()) == weekend
    # The program's own school end.
    start, _ = after_school(local(tuesday, 14), local(tuesday, 15), NY, SchoolHours(time(15)))
    assert start == local(tuesday, 15)


def test_minors_are_judged_by_the_adolescent_rule_unless_a_program_is_asked_for() -> None:
    day = date(2026, 12, 3)
    assert is_minor(date(2010, 1, 1), day) and not is_minor(date(2008, 12, 3), day)
    assert program_for(date(2010, 1, 1), day, "", "adult", "adolescent") == "adolescent"
    assert program_for(date(1990, 1, 1), day, "", "adult", "adolescent") == "adult"
    assert program_for(None, day, "", "adult", "adolescent") == "adult"
    assert program_for(date(2010, 1, 1), day, "adult", "adult", "adolescent") == "adult"
