"""What the holistic patient view summarises: attendance and the headline of a team message."""

from __future__ import annotations

from dataclasses import dataclass

#: Appointment statuses (FHIR appointmentstatus) as attendance.
ATTENDED = frozenset({"arrived", "fulfilled", "checked-in"})
MISSED = frozenset({"noshow"})
CANCELLED = frozenset({"cancelled"})
TITLE_LENGTH = 80


@dataclass(frozen=True)
class Attendance:
    scheduled: int
    attended: int
    missed: int
    cancelled: int


def attendance(past_statuses: list[str]) -> Attendance:
    """Attendance over the sessions whose time has come (future ones are not yet attendance)."""
    return Attendance(
        scheduled=len(past_statuses),
        attended=sum(1 for s in past_statuses if s in ATTENDED),
        missed=sum(1 for s in past_statuses if s in MISSED),
        cancelled=sum(1 for s in past_statuses if s in CANCELLED),
    )


def note_title(text: str) -> str:
    """The first line of a message, shortened: the view lists headlines, never whole notes."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= TITLE_LENGTH else first[: TITLE_LENGTH - 1].rstrip() + "\u2026"


def attendance_by_activity(past: list[tuple[str, str]]) -> dict[str, Attendance]:
    """Attendance per plan activity (its description), from (activity, status) of past sessions:
    how each discipline's part of the plan is going."""
    grouped: dict[str, list[str]] = {}
    for activity, status in past:
        grouped.setdefault(activity, []).append(status)
    return {activity: attendance(statuses) for activity, statuses in sorted(grouped.items())}


def attendance_rate(counts: Attendance) -> float | None:
    """Percent of the sessions with recorded attendance that were attended (None before any):
    cancelled and still-booked sessions do not count either way."""
    counted = counts.attended + counts.missed
    return 100.0 * counts.attended / counted if counted else None
