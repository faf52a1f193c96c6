"""Calendars: opening hours, holidays and free slots (plain Python, no I/O).

Opening hours and holidays are local to the program (the clinic opens at 08:00 in winter and in
summer), while bookings are stored in UTC. Each day's hours are therefore turned into instants day
by day, in the program's zone: across a daylight-saving change the UTC hours move and the local
ones stay.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from iopcare.kit.errors import FieldViolations

from .timing import WEEKDAYS

KINDS = ("practitioner", "room")
#: A FHIR logical id: what bookings name practitioners and rooms by.
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
#: A room holds at most this many patients (a sanity bound on input, not a clinical rule).
MAX_CAPACITY = 200
#: The longest range FindSlots computes in one call (a quarter).
MAX_SLOT_RANGE = timedelta(days=92)
MIN_SLOT_MINUTES = 5
MAX_SLOT_MINUTES = 720
#: Sessions and searches lie in this window: opening hours are computed day by day around a
#: range, and a range at year 1 or 9999 would overflow the date arithmetic (an internal error).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, order=True)
class Interval:
    """[start, end) in UTC."""

    start: datetime
    end: datetime

    def overlaps(self, other: Interval) -> bool:
        return self.start < other.end and other.start < self.end

    def contains(self, other: Interval) -> bool:
        return self.start <= other.start and other.end <= self.end


@dataclass(frozen=True)
class Hours:
    """Open from `opens` to `closes` (local) on a day of the week."""

    day: str
    opens: time
    closes: time


@dataclass(frozen=True)
class Calendar:
    """When a practitioner or room is available: weekly hours minus closed dates."""

    hours: tuple[Hours, ...]
    closed_dates: frozenset[date] = field(default_factory=frozenset)

    def open_intervals(self, start: datetime, end: datetime, zone: ZoneInfo) -> list[Interval]:
        """The open intervals that meet [start, end), clipped to it, in UTC and in order."""
        by_day: dict[str, list[Hours]] = {}
        for h in self.hours:
            by_day.setdefault(h.day, []).append(h)
        result: list[Interval] = []
        # One day of margin on each side: a local day can begin before `start` in UTC.
        day = start.astimezone(zone).date() - timedelta(days=1)
        last = end.astimezone(zone).date() + timedelta(days=1)
        while day <= last:
            if day not in self.closed_dates:
                for h in sorted(by_day.get(WEEKDAYS[day.weekday()], ()), key=lambda h: h.opens):
                    opens = datetime.combine(day, h.opens, tzinfo=zone).astimezone(UTC)
                    closes = datetime.combine(day, h.closes, tzinfo=zone).astimezone(UTC)
                    lo, hi = max(opens, start), min(closes, end)
                    if lo < hi:
                        result.append(Interval(lo, hi))
            day += timedelta(days=1)
        return result

    def is_open(self, wanted: Interval, zone: ZoneInfo) -> bool:
        """Whether the whole interval lies inside one opening (clipping to the interval leaves
        it whole only then)."""
        return wanted in self.open_intervals(wanted.start, wanted.end, zone)


def subtract(free: Iterable[Interval], busy: Iterable[Interval]) -> list[Interval]:
    """`free` minus every busy interval (both in any order); the result sorted, non-empty parts."""
    busy_sorted = sorted(busy)
    result: list[Interval] = []
    for interval in sorted(free):
        pieces = [interval]
        for b in busy_sorted:
            if b.start >= interval.end:
                break
            next_pieces = []
            for p in pieces:
                if not p.overlaps(b):
                    next_pieces.append(p)
                    continue
                if p.start < b.start:
                    next_pieces.append(Interval(p.start, b.start))
                if b.end < p.end:
                    next_pieces.append(Interval(b.end, p.end))
            pieces = next_pieces
        result.extend(pieces)
    return result


def slots(free: Iterable[Interval], length: timedelta) -> Iterator[Interval]:
    """Back-to-back slots of `length` from the start of each free interval."""
    for interval in free:
        at = interval.start
        while at + length <= interval.end:
            yield Interval(at, at + length)
            at += length


def check_calendar(
    kind: str,
    actor: str,
    capacity: int,
    hours: Iterable[tuple[str, str, str]],
    closed_dates: Iterable[str],
    problems: FieldViolations,
    prefix: str = "schedule",
) -> Calendar:
    """Validates a calendar as the API sends it (text times and dates); collects every problem."""
    if kind not in KINDS:
        problems.add(f"{prefix}.kind", "practitioner or room")
    expected_type = "Location" if kind == "room" else "Practitioner"
    parts = actor.split("/")
    if len(parts) != 2 or parts[0] != expected_type or not _ID.fullmatch(parts[1]):
        problems.add(f"{prefix}.actor", f"a reference {expected_type}/{{id}}")
    if kind == "room" and not 1 <= capacity <= MAX_CAPACITY:
        problems.add(f"{prefix}.capacity", f"a room holds 1 to {MAX_CAPACITY} patients")
    if kind == "practitioner" and capacity:
        problems.add(f"{prefix}.capacity", "only rooms have a capacity")
    parsed: list[Hours] = []
    for i, (day, opens, closes) in enumerate(hours):
        path = f"{prefix}.opening_hours[{i}]"
        if day not in WEEKDAYS:
            problems.add(f"{path}.day_of_week", "one of mon, tue, wed, thu, fri, sat, sun")
        o, c = _time(opens), _time(closes)
        if o is None:
            problems.add(f"{path}.opens", "a local time HH:MM")
        if c is None:
            problems.add(f"{path}.closes", "a local time HH:MM")
        if o is not None and c is not None:
            if c <= o:
                problems.add(f"{path}.closes", "after opens (same day)")
            elif day in WEEKDAYS:
                clash = [p for p in parsed if p.day == day and p.opens < c and o < p.closes]
                if clash:
                    problems.add(path, "overlaps other opening hours of the same day")
                parsed.append(Hours(day, o, c))
    dates: set[date] = set()
    for i, text in enumerate(closed_dates):
        try:
            dates.add(date.fromisoformat(text))
        except ValueError:
            problems.add(f"{prefix}.closed_dates[{i}]", "a date YYYY-MM-DD")
    return Calendar(tuple(parsed), frozenset(dates))


def _time(text: str) -> time | None:
    try:
        value = time.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo is None and len(text) == 5 else None


def check_range(
    start: datetime | None,
    end: datetime | None,
    problems: FieldViolations,
    *,
    longest: timedelta,
    start_field: str = "start_time",
    end_field: str = "end_time",
) -> Interval | None:
    if start is None:
        problems.add(start_field, "required")
    if end is None:
        problems.add(end_field, "required")
    if start is None or end is None:
        return None
    outside = [
        (name, value)
        for name, value in ((start_field, start), (end_field, end))
        if not EARLIEST <= value <= LATEST
    ]
    for name, _ in outside:
        problems.add(name, f"between {EARLIEST.year} and {LATEST.year}")
    if outside:
        return None
    if end <= start:
        problems.add(end_field, "after start_time")
        return None
    if end - start > longest:
        problems.add(end_field, f"at most {longest} after start_time")
        return None
    return Interval(start, end)
