"""Expanding a plan activity's timing (FHIR Timing.repeat, in domain terms) into sessions.

Times are local to the program (a group meets at 09:00 on Mondays, winter and summer alike) and
stored in UTC, so each occurrence is built as a local wall-clock time in the program's zone and then
converted: across a daylight-saving change the UTC hour moves and the local hour stays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_UNIT_SECONDS = {"s": 1, "min": 60, "h": 3600, "d": 86400, "wk": 7 * 86400}
#: Upper bound on occurrences one expansion may produce, whatever the input says.
MAX_OCCURRENCES = 2000


class UnsupportedTiming(ValueError):
    """A timing the scheduler cannot turn into sessions (reported, never silently dropped)."""


@dataclass(frozen=True)
class Timing:
    """The parts of FHIR Timing.repeat the scheduler understands."""

    frequency: int = 1
    period: float = 1
    period_unit: str = "wk"
    days_of_week: tuple[str, ...] = ()
    times_of_day: tuple[time, ...] = ()
    duration: float | None = None
    duration_unit: str | None = None
    #: A datetime, or a date (then the start of that day in the program's zone).
    bounds_start: datetime | date | None = None
    #: A datetime (exclusive), or a date (inclusive: the series runs through that day).
    bounds_end: datetime | date | None = None
    bounds_duration: timedelta | None = None
    count: int | None = None
    unsupported: tuple[str, ...] = field(default=())


@dataclass(frozen=True, order=True)
class Occurrence:
    start: datetime  # UTC
    end: datetime  # UTC


def duration_of(value: float | None, unit: str | None, default: timedelta) -> timedelta:
    if value is None or unit is None:
        return default
    if unit not in _UNIT_SECONDS:
        raise UnsupportedTiming(f"duration unit {unit!r} is not supported")
    if value <= 0:
        raise UnsupportedTiming("duration must be positive")
    return timedelta(seconds=value * _UNIT_SECONDS[unit])


def expand(
    timing: Timing,
    window_start: datetime,
    window_end: datetime,
    zone: ZoneInfo,
    *,
    anchor: datetime,
    default_time: time = time(9, 0),
    default_duration: timedelta = timedelta(hours=1),
) -> list[Occurrence]:
    """Occurrences of `timing` starting in [window_start, window_end), in UTC, sorted.

    `anchor` is when the series begins if the timing has no bounds (usually when the plan
    activity was created); a weekly series without days of the week repeats on the anchor's
    weekday.
    """
    if timing.unsupported:
        raise UnsupportedTiming(f"unsupported Timing elements: {', '.join(timing.unsupported)}")
    if window_start.tzinfo is None or window_end.tzinfo is None or anchor.tzinfo is None:
        raise ValueError("window and anchor must be time-zone aware")
    bad_days = [d for d in timing.days_of_week if d not in WEEKDAYS]
    if bad_days:
        raise UnsupportedTiming(f"unknown days of the week: {', '.join(bad_days)}")
    length = duration_of(timing.duration, timing.duration_unit, default_duration)
    start_bound = _instant(timing.bounds_start, zone) if timing.bounds_start else anchor
    end_bound = _instant(timing.bounds_end, zone, inclusive_day=True) if timing.bounds_end else None
    if end_bound is None and timing.bounds_duration is not None:
        end_bound = start_bound + timing.bounds_duration
    lo = max(window_start, start_bound)
    hi = window_end if end_bound is None else min(window_end, end_bound)
    if lo >= hi:
        return []
    times = timing.times_of_day or (default_time,)
    # With a count, occurrences are numbered from the start of the series, so generation starts
    # there; without one it can start at the window, which keeps a years-old series cheap.
    generate_from = start_bound if timing.count is not None else lo
    starts = _candidate_starts(timing, start_bound, generate_from, hi, zone, times)
    result: list[Occurrence] = []
    for index, start in enumerate(starts):
        if timing.count is not None and index >= timing.count:
            break
        if lo <= start < hi:
            result.append(Occurrence(start, start + length))
    return result


def _instant(value: datetime | date, zone: ZoneInfo, inclusive_day: bool = False) -> datetime:
    """A bound as an instant: a date means that day in the program's zone (FHIR dates have no
    zone; the program's day is what the team meant), and an end date includes its day."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    day = value + timedelta(days=1) if inclusive_day else value
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def _local(day: date, at: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def _candidate_starts(
    timing: Timing,
    series_start: datetime,
    generate_from: datetime,
    hi: datetime,
    zone: ZoneInfo,
    times: tuple[time, ...],
) -> list[datetime]:
    """Starts from `generate_from` up to `hi`, in the cycle anchored at the series' start."""
    first_day = series_start.astimezone(zone).date()
    last_day = hi.astimezone(zone).date()
    unit = timing.period_unit
    if unit not in {"d", "wk"}:
        raise UnsupportedTiming(f"period unit {unit!r} is not supported (use d or wk)")
    if timing.period <= 0 or timing.frequency <= 0:
        raise UnsupportedTiming("frequency and period must be positive")
    period_days = int(timing.period * (7 if unit == "wk" else 1))
    if period_days != timing.period * (7 if unit == "wk" else 1) or period_days < 1:
        raise UnsupportedTiming("the period must be a whole number of days")
    if timing.days_of_week:
        days = set(timing.days_of_week)
    elif unit == "wk":
        if timing.frequency > 1:
            # "Three times a week" without saying which days is a plan the team must complete;
            # guessing days would book sessions nobody agreed to.
            raise UnsupportedTiming("a weekly frequency above 1 needs dayOfWeek")
        days = {WEEKDAYS[first_day.weekday()]}
    else:
        days = set(WEEKDAYS)
    if unit == "d" and timing.frequency > len(times):
        raise UnsupportedTiming("a daily frequency above 1 needs as many timeOfDay values")
    # Weekly cycles are counted in calendar weeks from the Monday of the series' first week:
    # "Mon and Thu every other week" starting on a Wednesday means that week's Thursday, then
    # the Monday and Thursday two weeks later, never a Monday one week later.
    cycle_origin = first_day - timedelta(days=first_day.weekday()) if unit == "wk" else first_day
    starts: list[datetime] = []
    day = max(first_day, generate_from.astimezone(zone).date() - timedelta(days=1))
    while day <= last_day and len(starts) < MAX_OCCURRENCES:
        in_cycle = (day - cycle_origin).days % period_days
        # For weekly periods above one week, sessions happen in the first week of each period.
        active = in_cycle < 7 if unit == "wk" else in_cycle == 0
        if active and WEEKDAYS[day.weekday()] in days:
            for at in sorted(times):
                start = _local(day, at, zone)
                if start >= series_start:
                    starts.append(start)
        day += timedelta(days=1)
    return starts
