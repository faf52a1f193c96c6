"""Program intensity: hours per ISO week against the program's rule, and missed sessions in a
row (issue 3, item 5)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from iopcare.scheduling.domain.intensity import Rule, Session, missed_in_a_row, weekly

NEW_YORK = ZoneInfo("America/New_York")
ADULT = Rule(9, 19)


def session(day: date, hours: float, attendance: str | None, cancelled: bool = False) -> Session:
    start = datetime(day.year, day.month, day.day, 14, tzinfo=UTC)
    return Session(start, start + timedelta(hours=hours), attendance, cancelled)


def test_weeks_count_scheduled_and_attended_hours_against_the_rule() -> None:
    monday = date(2026, 11, 16)
    sessions = [
        session(monday, 3, "fulfilled"),
        session(monday + timedelta(days=2), 3, "noshow"),
        session(monday + timedelta(days=4), 3, "fulfilled"),
        session(monday + timedelta(days=4), 2, None, cancelled=True),
        session(monday + timedelta(days=7), 3, "fulfilled"),
    ]
    weeks = weekly(
        sessions,
        monday,
        monday + timedelta(days=8),
        ADULT,
        NEW_YORK,
        datetime(2026, 12, 1, tzinfo=UTC),
    )
    assert [w.label for w in weeks] == ["2026-W47", "2026-W48"]
    first = weeks[0]
    assert (first.scheduled_hours, first.attended_hours, first.missed) == (9, 6, 1)
    assert first.below_minimum and not first.above_maximum


def test_a_week_in_progress_is_not_yet_below_the_minimum() -> None:
    monday = date(2026, 11, 23)
    weeks = weekly([], monday, monday, ADULT, NEW_YORK, datetime(2026, 11, 25, tzinfo=UTC))
    assert not weeks[0].below_minimum


def test_adolescents_need_six_hours_and_have_no_maximum() -> None:
    monday = date(2026, 11, 16)
    sessions = [session(monday + timedelta(days=d), 3, "fulfilled") for d in range(3)]
    later = datetime(2026, 12, 1, tzinfo=UTC)
    (week,) = weekly(sessions, monday, monday, Rule(6), NEW_YORK, later)
    assert not week.below_minimum and not week.above_maximum
    (adult,) = weekly(sessions * 3, monday, monday, ADULT, NEW_YORK, later)
    assert adult.above_maximum


def test_two_missed_in_a_row_is_a_dropout_risk_and_attendance_breaks_the_streak() -> None:
    d = date(2026, 11, 16)
    missed = [session(d, 3, "noshow"), session(d + timedelta(days=2), 3, "noshow")]
    assert missed_in_a_row(missed)
    assert not missed_in_a_row([*missed, session(d + timedelta(days=4), 3, "fulfilled")])
    # A session nobody recorded yet neither breaks nor extends the streak.
    assert missed_in_a_row([*missed, session(d + timedelta(days=4), 3, None)])
    assert not missed_in_a_row(missed[:1])


def test_the_week_of_admission_and_the_weeks_before_it_are_not_judged_below_the_minimum() -> None:
    # Admitted on a Thursday: 3 hours that week is all the program could offer, and the week
    # before the patient was in no program at all. Only whole weeks in the program are judged.
    monday = date(2026, 11, 16)
    thursday = monday + timedelta(days=3)
    sessions = [session(thursday, 3, "fulfilled"), session(monday + timedelta(days=7), 3, None)]
    later = datetime(2026, 12, 8, tzinfo=UTC)
    weeks = weekly(
        sessions,
        monday - timedelta(days=7),
        monday + timedelta(days=7),
        ADULT,
        NEW_YORK,
        later,
        admitted=thursday,
    )
    assert [w.below_minimum for w in weeks] == [False, False, True]
    assert [w.partial for w in weeks] == [True, True, False]
