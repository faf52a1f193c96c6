"""Program intensity (plain Python, no I/O): hours per ISO week against the program's rule.

An IOP is defined by its intensity (ASAM level 2.1: 9 to 19 hours a week for adults, at least 6
for adolescents); a patient who falls below it, or who misses sessions in a row, is at risk of
dropping out, most of all in the first weeks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

#: Attendance that counts as attended.
ATTENDED = frozenset({"arrived", "checked-in", "fulfilled"})
MISSED = "noshow"


@dataclass(frozen=True)
class Rule:
    """Hours a week a program requires: at least `minimum`, at most `maximum` (None: no cap)."""

    minimum: float
    maximum: float | None = None


@dataclass(frozen=True)
class Session:
    """One of the patient's sessions: when, and what became of it for this patient."""

    start: datetime
    end: datetime
    #: None while nothing was recorded; otherwise arrived, checked-in, fulfilled, noshow.
    attendance: str | None
    cancelled: bool

    @property
    def hours(self) -> float:
        return (self.end - self.start).total_seconds() / 3600


@dataclass(frozen=True)
class Week:
    year: int
    week: int
    scheduled_hours: float
    attended_hours: float
    missed: int
    rule: Rule
    ended: bool
    #: The patient was not in the program for the whole week (admitted after its Monday, or not
    #: yet admitted): the week is reported but not judged against the minimum.
    partial: bool = False

    @property
    def label(self) -> str:
        return f"{self.year}-W{self.week:02d}"

    @property
    def below_minimum(self) -> bool:
        """Judged only once the week is over (on Tuesday nobody has attended 9 hours yet), and
        only for a week the patient spent in the program from its Monday: admitted on a
        Thursday, the hours the rule asks for were never on offer."""
        return self.ended and not self.partial and self.attended_hours < self.rule.minimum

    @property
    def above_maximum(self) -> bool:
        return self.rule.maximum is not None and self.scheduled_hours > self.rule.maximum


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def weekly(
    sessions: Iterable[Session],
    first: date,
    last: date,
    rule: Rule,
    zone: ZoneInfo,
    now: datetime,
    *,
    admitted: date | None = None,
) -> list[Week]:
    """One entry per ISO week touching [first, last]; a session counts in the week of its local
    start day. `admitted` is the local day of the patient's first session (None: unknown,
    every week judged): weeks that begin before it are partial."""
    totals: dict[date, list[float]] = {}
    for s in sessions:
        if s.cancelled:
            continue
        monday = week_start(s.start.astimezone(zone).date())
        entry = totals.setdefault(monday, [0.0, 0.0, 0.0])
        entry[0] += s.hours
        if s.attendance in ATTENDED:
            entry[1] += s.hours
        if s.attendance == MISSED:
            entry[2] += 1
    today = now.astimezone(zone).date()
    result = []
    monday = week_start(first)
    while monday <= last:
        scheduled, attended, missed = totals.get(monday, [0.0, 0.0, 0.0])
        iso = monday.isocalendar()
        result.append(
            Week(
                iso.year,
                iso.week,
                round(scheduled, 2),
                round(attended, 2),
                int(missed),
                rule,
                ended=monday + timedelta(days=7) <= today,
                partial=admitted is not None and admitted > monday,
            )
        )
        monday += timedelta(days=7)
    return result


def missed_in_a_row(sessions: Sequence[Session], count: int = 2) -> bool:
    """Whether the patient's last `count` sessions with attendance recorded were all missed
    (a session nobody recorded yet neither breaks nor extends the streak)."""
    recorded = sorted(
        (s for s in sessions if not s.cancelled and s.attendance is not None),
        key=lambda s: s.start,
    )
    tail = recorded[-count:]
    return len(tail) == count and all(s.attendance == MISSED for s in tail)


def missed_streak_start(sessions: Sequence[Session], count: int = 2) -> datetime | None:
    """When the streak of missed sessions the patient is in began, if it is `count` or more long
    (the same sessions as `missed_in_a_row`): one streak, one dropout alert, however long."""
    recorded = sorted(
        (s for s in sessions if not s.cancelled and s.attendance is not None),
        key=lambda s: s.start,
    )
    streak: list[Session] = []
    for s in reversed(recorded):
        if s.attendance != MISSED:
            break
        streak.append(s)
    return streak[-1].start if len(streak) >= count else None
