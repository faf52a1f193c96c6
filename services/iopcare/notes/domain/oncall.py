"""After-hours coverage (pure rules): the program's hours, its on-call roster, who answers an
urgent alert at an instant and who is next when nobody acknowledged it.

A roster is a list of shifts; each shift covers [starts, ends) and names its clinicians in the
order of escalation (first the on-call clinician, then their backup, then e.g. the medical
director). Shifts may overlap: at an instant the shift that started last is the one in force
(a one-night swap is entered over the month's roster without cutting it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from iopcare.kit.errors import FieldViolations, InvalidArgument

#: Most shifts one roster holds (a year of daily shifts, with swaps).
MAX_SHIFTS = 1000
#: Most clinicians one shift escalates through.
MAX_CLINICIANS = 5
#: How a missed daily check-in reaches the on-call clinician (IOPCARE_ONCALL_MISSED_CHECKIN).
MISSED_CHECKIN_RULES = ("never", "out-of-hours", "always")

_PRACTITIONER = re.compile(r"^Practitioner/[A-Za-z0-9\-.]{1,64}$")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(
    r"^\s*(?P<first>[a-z]{3})(?:-(?P<last>[a-z]{3}))?\s+"
    r"(?P<opens>\d{2}:\d{2})-(?P<closes>\d{2}:\d{2})\s*$"
)


@dataclass(frozen=True)
class Shift:
    """One on-call period: from `starts` (inclusive) to `ends` (exclusive), aware times, and the
    clinicians (`Practitioner/{id}`) in their order of escalation."""

    starts: datetime
    ends: datetime
    clinicians: tuple[str, ...]


@dataclass(frozen=True)
class ProgramHours:
    """When the program's staff answer alerts in the team thread: weekdays (0 = Monday) from
    `opens` to `closes`, local to `zone`; holidays are closed all day."""

    days: frozenset[int]
    opens: time
    closes: time
    zone: ZoneInfo
    holidays: frozenset[date] = frozenset()


def parse_program_hours(text: str, zone: ZoneInfo, holidays: Iterable[date] = ()) -> ProgramHours:
    """`mon-fri 08:00-18:00` (one day or a range of days, then local opening and closing
    times); ValueError for anything else."""
    match = _HOURS.match(text.lower())
    if match is None:
        raise ValueError(f"program hours {text!r}: expected e.g. 'mon-fri 08:00-18:00'")
    first, last = match["first"], match["last"] or match["first"]
    if first not in _DAYS or last not in _DAYS:
        raise ValueError(f"program hours {text!r}: days are {', '.join(_DAYS)}")
    start, end = _DAYS.index(first), _DAYS.index(last)
    days = (
        frozenset(range(start, end + 1))
        if start <= end
        else frozenset([*range(start, 7), *range(0, end + 1)])
    )
    opens, closes = time.fromisoformat(match["opens"]), time.fromisoformat(match["closes"])
    if closes <= opens:
        raise ValueError(f"program hours {text!r}: closing time is not after opening time")
    return ProgramHours(days, opens, closes, zone, frozenset(holidays))


def in_program_hours(hours: ProgramHours, instant: datetime) -> bool:
    """Whether the program is open at `instant` (an aware time)."""
    local = instant.astimezone(hours.zone)
    if local.date() in hours.holidays or local.weekday() not in hours.days:
        return False
    return hours.opens <= local.time() < hours.closes


def check_roster(shifts: Sequence[Shift]) -> None:
    """What a roster must be to be stored (INVALID_ARGUMENT listing every fault)."""
    problems = FieldViolations()
    if len(shifts) > MAX_SHIFTS:
        problems.add("shifts", f"at most {MAX_SHIFTS} shifts")
    for i, shift in enumerate(shifts[:MAX_SHIFTS]):
        where = f"shifts[{i}]"
        if shift.starts.tzinfo is None or shift.ends.tzinfo is None:
            problems.add(where, "start and end times with a time zone")
        elif shift.ends <= shift.starts:
            problems.add(f"{where}.end_time", "after start_time")
        if not 1 <= len(shift.clinicians) <= MAX_CLINICIANS:
            problems.add(f"{where}.clinicians", f"1 to {MAX_CLINICIANS} clinicians")
        for j, clinician in enumerate(shift.clinicians):
            if not _PRACTITIONER.match(clinician):
                problems.add(f"{where}.clinicians[{j}]", "Practitioner/{id}")
        if len(set(shift.clinicians)) != len(shift.clinicians):
            problems.add(f"{where}.clinicians", "each clinician once")
    problems.raise_if_any("the on-call roster is invalid")


def on_call_at(shifts: Iterable[Shift], instant: datetime) -> tuple[str, ...]:
    """The escalation order in force at `instant`: the clinicians of the covering shift that
    started last (the first listed of equals), or () when no shift covers it."""
    best: Shift | None = None
    for shift in shifts:
        if shift.starts <= instant < shift.ends and (best is None or shift.starts > best.starts):
            best = shift
    return best.clinicians if best is not None else ()


def urgent_route(hours: ProgramHours, shifts: Iterable[Shift], instant: datetime) -> str | None:
    """Who an urgent alert raised at `instant` goes to besides the team thread: outside program
    hours the first clinician on call, else nobody (the team answers in hours)."""
    if in_program_hours(hours, instant):
        return None
    order = on_call_at(shifts, instant)
    return order[0] if order else None


def next_in_order(order: Sequence[str], notified: Iterable[str]) -> str | None:
    """The next clinician to escalate to: the first of `order` not yet notified; None when the
    order is exhausted."""
    done = set(notified)
    return next((clinician for clinician in order if clinician not in done), None)


def escalation_due(notified_at: datetime, now: datetime, after_minutes: float) -> bool:
    """Whether an alert last sent at `notified_at` and still unacknowledged at `now` is due for
    the next clinician."""
    if not math.isfinite(after_minutes) or after_minutes < 0:
        raise ValueError("the escalation delay is a non-negative number of minutes")
    return (now - notified_at).total_seconds() >= after_minutes * 60


def missed_checkin_goes_on_call(rule: str, in_hours: bool) -> bool:
    """Whether a missed daily check-in is also sent to the clinician on call, per the program's
    rule: `never`, `out-of-hours` (only when the program is closed) or `always`."""
    if rule not in MISSED_CHECKIN_RULES:
        raise InvalidArgument(f"unknown missed check-in rule {rule!r}")
    return rule == "always" or (rule == "out-of-hours" and not in_hours)
