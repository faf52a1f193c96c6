"""Attendance rules: which status changes a session allows, and what a late cancellation is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from iopcare.kit.errors import FailedPrecondition, InvalidArgument
from iopcare.scheduling.domain.attendance import check_attendance, is_late_cancellation


@pytest.mark.parametrize(
    ("current", "status"),
    [
        ("booked", "arrived"),
        ("arrived", "fulfilled"),
        ("proposed", "noshow"),
        ("booked", "cancelled"),
    ],
)
def test_a_session_moves_forward(current: str, status: str) -> None:
    check_attendance(current, status, "patient unwell")


@pytest.mark.parametrize(
    ("current", "status"),
    [("fulfilled", "noshow"), ("cancelled", "arrived"), ("noshow", "fulfilled")],
)
def test_an_ended_session_stays_ended(current: str, status: str) -> None:
    with pytest.raises(FailedPrecondition):
        check_attendance(current, status, "")


def test_a_cancellation_needs_a_reason_and_the_status_must_be_attendance() -> None:
    with pytest.raises(InvalidArgument):
        check_attendance("booked", "cancelled", " ")
    with pytest.raises(InvalidArgument):
        check_attendance("booked", "waitlist", "")


def test_a_cancellation_within_24_hours_is_late() -> None:
    start = datetime(2026, 12, 1, 9, tzinfo=UTC)
    assert is_late_cancellation(start, start - timedelta(hours=3))
    assert not is_late_cancellation(start, start - timedelta(days=2))
