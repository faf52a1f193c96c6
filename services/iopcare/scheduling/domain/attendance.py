"""Attendance: what happened to a session, and which changes of its status are allowed."""

from __future__ import annotations

from datetime import datetime, timedelta

from iopcare.kit.errors import FailedPrecondition, FieldViolations

#: Statuses attendance may record (FHIR appointmentstatus).
ATTENDANCE_STATUSES = frozenset({"arrived", "checked-in", "fulfilled", "noshow", "cancelled"})
#: From which statuses each may be recorded: a session that has ended stays ended.
ALLOWED_FROM = {
    "arrived": {"proposed", "pending", "booked"},
    "checked-in": {"proposed", "pending", "booked", "arrived"},
    "fulfilled": {"proposed", "pending", "booked", "arrived", "checked-in"},
    "noshow": {"proposed", "pending", "booked"},
    "cancelled": {"proposed", "pending", "booked"},
}
#: A cancellation this close to the start is a late cancellation (program setting in later work).
LATE_CANCELLATION = timedelta(hours=24)


def check_attendance(current: str, status: str, reason: str) -> None:
    problems = FieldViolations()
    if status not in ATTENDANCE_STATUSES:
        problems.add("status", f"one of {', '.join(sorted(ATTENDANCE_STATUSES))}")
    if status == "cancelled" and not reason.strip():
        problems.add("reason", "a cancellation needs a reason")
    if len(reason) > 500:
        problems.add("reason", "at most 500 characters")
    problems.raise_if_any("the attendance cannot be recorded")
    if current not in ALLOWED_FROM[status]:
        raise FailedPrecondition(
            f"a {current} session cannot become {status}", reason="INVALID_ATTENDANCE"
        )


def is_late_cancellation(start: datetime, cancelled_at: datetime) -> bool:
    return start - cancelled_at < LATE_CANCELLATION
