"""Expanding plan activity timings into sessions: local wall-clock times, UTC storage."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iopcare.scheduling.domain.timing import WEEKDAYS, Timing, UnsupportedTiming, expand

NY = ZoneInfo("America/New_York")
MONDAY = datetime(2026, 10, 26, 12, 0, tzinfo=UTC)  # 08:00 in New York


def _mwf() -> Timing:
    return Timing(
        days_of_week=("mon", "wed", "fri"),
        times_of_day=(time(9),),
        duration=3,
        duration_unit="h",
        bounds_duration=timedelta(weeks=12),
    )


def test_group_therapy_three_mornings_a_week_gives_six_sessions_in_two_weeks() -> None:
    sessions = expand(_mwf(), MONDAY, MONDAY + timedelta(days=14), NY, anchor=MONDAY)
    assert len(sessions) == 6
    assert [s.start.astimezone(NY).strftime("%a %H:%M") for s in sessions] == [
        "Mon 09:00",
        "Wed 09:00",
        "Fri 09:00",
    ] * 2
    assert all(s.end - s.start == timedelta(hours=3) for s in sessions)


def test_local_time_holds_across_the_daylight_saving_change() -> None:
    # New York leaves daylight saving time on 2026-11-01: 09:00 local moves from 13:00 to 14:00 UTC.
    sessions = expand(_mwf(), MONDAY, MONDAY + timedelta(days=14), NY, anchor=MONDAY)
    assert {s.start.hour for s in sessions[:3]} == {13}
    assert {s.start.hour for s in sessions[3:]} == {14}


def test_a_weekly_activity_without_days_repeats_on_the_anchor_weekday() -> None:
    sessions = expand(
        Timing(period_unit="wk"), MONDAY, MONDAY + timedelta(days=21), NY, anchor=MONDAY
    )
    assert [s.start.astimezone(NY).weekday() for s in sessions] == [0, 0, 0]


def test_every_other_week_skips_alternate_weeks() -> None:
    timing = Timing(period=2, period_unit="wk", days_of_week=("wed",), times_of_day=(time(13),))
    sessions = expand(timing, MONDAY, MONDAY + timedelta(days=28), NY, anchor=MONDAY)
    assert [s.start.astimezone(NY).date().isoformat() for s in sessions] == [
        "2026-10-28",
        "2026-11-11",
    ]


def test_bounds_and_count_end_the_series() -> None:
    bounded = Timing(days_of_week=("mon",), bounds_end=MONDAY + timedelta(days=8))
    assert len(expand(bounded, MONDAY, MONDAY + timedelta(days=60), NY, anchor=MONDAY)) == 2
    counted = Timing(days_of_week=("mon", "tue"), count=3)
    assert len(expand(counted, MONDAY, MONDAY + timedelta(days=60), NY, anchor=MONDAY)) == 3


def test_count_counts_from_the_start_of_the_series_not_the_window() -> None:
    counted = Timing(days_of_week=("mon",), count=2, bounds_start=MONDAY - timedelta(days=7))
    sessions = expand(counted, MONDAY, MONDAY + timedelta(days=60), NY, anchor=MONDAY)
    assert len(sessions) == 1


@pytest.mark.parametrize(
    "timing",
    [
        Timing(frequency=3, period_unit="wk"),
        Timing(period_unit="mo"),
        Timing(days_of_week=("someday",)),
        Timing(unsupported=("when",)),
        Timing(days_of_week=("mon",), duration=1, duration_unit="mo"),
        Timing(period=0.5, period_unit="d"),
    ],
)
def test_timings_the_scheduler_cannot_honour_are_refused_not_guessed(timing: Timing) -> None:
    with pytest.raises(UnsupportedTiming):
        expand(timing, MONDAY, MONDAY + timedelta(days=14), NY, anchor=MONDAY)


@settings(max_examples=200, deadline=None)
@given(
    days=st.sets(st.sampled_from(WEEKDAYS), min_size=1),
    hours=st.sets(st.integers(min_value=6, max_value=20), min_size=1, max_size=3),
    offset_days=st.integers(min_value=0, max_value=400),
    window_days=st.integers(min_value=1, max_value=60),
    period=st.integers(min_value=1, max_value=3),
)
def test_every_occurrence_is_inside_the_window_on_a_planned_day_and_hour(
    days: set[str], hours: set[int], offset_days: int, window_days: int, period: int
) -> None:
    start = MONDAY + timedelta(days=offset_days)
    end = start + timedelta(days=window_days)
    timing = Timing(
        period=period,
        days_of_week=tuple(sorted(days)),
        times_of_day=tuple(time(h) for h in sorted(hours)),
    )
    sessions = expand(timing, start, end, NY, anchor=start)
    assert sessions == sorted(sessions)
    assert len(set(sessions)) == len(sessions)
    for session in sessions:
        local = session.start.astimezone(NY)
        assert start <= session.start < end
        assert WEEKDAYS[local.weekday()] in days
        assert local.hour in hours
    if period == 1 and window_days >= 7:
        assert len(sessions) >= len(hours) * len(days) * (window_days // 7) - len(hours) * len(days)


WEDNESDAY = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)


def test_every_other_week_counts_calendar_weeks_from_the_first_weeks_monday() -> None:
    timing = Timing(period=2, days_of_week=("mon", "thu"), times_of_day=(time(10),))
    sessions = expand(timing, WEDNESDAY, WEDNESDAY + timedelta(days=28), NY, anchor=WEDNESDAY)
    assert [s.start.astimezone(NY).strftime("%a %d") for s in sessions] == [
        "Thu 05",
        "Mon 16",
        "Thu 19",
        "Mon 30",
    ]


def test_a_series_that_began_years_ago_still_yields_this_windows_sessions() -> None:
    timing = Timing(period_unit="d", bounds_start=date(2020, 1, 1))
    sessions = expand(timing, WEDNESDAY, WEDNESDAY + timedelta(days=7), NY, anchor=WEDNESDAY)
    assert len(sessions) == 7


def test_date_bounds_are_days_in_the_programs_zone_and_the_end_day_is_included() -> None:
    timing = Timing(
        days_of_week=WEEKDAYS,
        times_of_day=(time(8),),
        bounds_start=date(2026, 3, 4),
        bounds_end=date(2026, 3, 6),
    )
    tokyo = ZoneInfo("Asia/Tokyo")
    start = datetime(2026, 3, 1, tzinfo=UTC)
    sessions = expand(timing, start, start + timedelta(days=14), tokyo, anchor=start)
    assert [s.start.astimezone(tokyo).strftime("%d %H:%M") for s in sessions] == [
        "04 08:00",
        "05 08:00",
        "06 08:00",
    ]
