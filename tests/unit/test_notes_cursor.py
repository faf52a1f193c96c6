"""notes' page tokens for lists in (time, id) order, and the crisis wording rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from iopcare.kit import paging
from iopcare.kit.errors import InvalidArgument
from iopcare.notes import cursor
from iopcare.notes.domain.messages import acknowledged_text, crisis_priority, escalation_text


def test_a_page_token_names_the_last_item_and_reads_back_as_utc() -> None:
    at = datetime(2026, 12, 3, 9, 30, 0, 123456, tzinfo=timezone(timedelta(hours=-5)))
    items = [(at, "a"), (at, "b"), (at + timedelta(seconds=1), "c")]
    page, token = cursor.page(items, 2, lambda item: item)
    assert page == items[:2]
    assert cursor.position_after(token) == (at.astimezone(UTC), "b")
    assert cursor.page(items, 3, lambda item: item) == (items, "")
    assert cursor.position_after("") is None


@pytest.mark.parametrize(
    "token",
    [
        "not-a-token",
        paging.encode({"seq": 1}),
        paging.encode({"at": "yesterday", "id": "x"}),
        paging.encode({"at": "2026-12-03T09:30:00", "id": "x"}),  # no time zone
        paging.encode({"at": "2026-12-03T09:30:00+00:00", "id": "x" * 65}),
    ],
)
def test_forged_page_tokens_are_invalid_arguments(token: str) -> None:
    with pytest.raises(InvalidArgument):
        cursor.position_after(token)


def test_a_crisis_message_is_at_least_urgent_and_the_escalation_names_the_wait() -> None:
    assert [crisis_priority(p) for p in ("routine", "urgent", "asap", "stat")] == [
        "urgent",
        "urgent",
        "asap",
        "stat",
    ]
    assert escalation_text(15).startswith("CRISIS NOT ACKNOWLEDGED after 15 minutes")
    assert acknowledged_text("Practitioner/psy-1", "") == (
        "Crisis alert acknowledged by Practitioner/psy-1."
    )
    assert acknowledged_text("Practitioner/psy-1", "Called him.").endswith(". Called him.")
