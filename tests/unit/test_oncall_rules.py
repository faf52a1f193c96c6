"""After-hours coverage rules (notes.domain.oncall): program hours, who is on call at an instant,
the escalation order, the missed check-in rule."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from iopcare.kit.errors import InvalidArgument
from iopcare.notes.domain import oncall as rules

NY = ZoneInfo("America/New_York")
HOURS = rules.parse_program_hours("mon-fri 08:00-18:00", NY, [date(2026, 12, 25)])


def local(y: int, m: int, d: int, h: int, minute: int = 0) -> datetime:
    return datetime(y, m, d, h, minute, tzinfo=NY)


def test_program_hours_are_local_weekdays_and_closed_on_holidays() -> None:
    assert rules.in_program_hours(HOURS, local(2026, 12, 2, 9))  # Wednesday morning
    assert rules.in_program_hours(HOURS, local(2026, 12, 2, 8))  # opening is inclusive
    assert not rules.in_program_hours(HOURS, local(2026, 12, 2, 18))  # closing is not
    assert not rules.in_program_hours(HOURS, local(2026, 12, 2, 23))
    assert not rules.in_program_hours(HOURS, local(2026, 12, 5, 12))  # Saturday
    assert not rules.in_program_hours(HOURS, local(2026, 12, 25, 10))  # a holiday
    # An instant in UTC is read in the program's zone: 13:30 UTC is 08:30 in New York.
    assert rules.in_program_hours(HOURS, datetime(2026, 12, 2, 13, 30, tzinfo=UTC))
    assert not rules.in_program_hours(HOURS, datetime(2026, 12, 2, 12, 30, tzinfo=UTC))


def test_program_hours_parse_one_day_ranges_and_wrapping_ranges() -> None:
    assert rules.parse_program_hours("sat 09:00-12:00", NY).days == frozenset({5})
    assert rules.parse_program_hours("fri-mon 09:00-12:00", NY).days == frozenset({4, 5, 6, 0})
    for bad in ("weekdays", "mon-fri 18:00-08:00", "xyz 08:00-09:00", "mon-fri 8-18"):
        with pytest.raises(ValueError):
            rules.parse_program_hours(bad, NY)


MONTH = rules.Shift(
    local(2026, 12, 1, 18), local(2026, 12, 31, 8), ("Practitioner/a", "Practitioner/b")
)
SWAP = rules.Shift(local(2026, 12, 3, 18), local(2026, 12, 4, 8), ("Practitioner/c",))


def test_the_shift_that_started_last_is_in_force() -> None:
    roster = [MONTH, SWAP]
    assert rules.on_call_at(roster, local(2026, 12, 2, 23)) == ("Practitioner/a", "Practitioner/b")
    assert rules.on_call_at(roster, local(2026, 12, 3, 23)) == ("Practitioner/c",)
    assert rules.on_call_at(list(reversed(roster)), local(2026, 12, 3, 23)) == ("Practitioner/c",)
    assert rules.on_call_at(roster, local(2026, 12, 4, 8)) == MONTH.clinicians  # end exclusive
    assert rules.on_call_at(roster, local(2026, 11, 30, 23)) == ()


def test_urgent_alerts_go_on_call_only_outside_program_hours() -> None:
    roster = [MONTH]
    assert rules.urgent_route(HOURS, roster, local(2026, 12, 2, 23)) == "Practitioner/a"
    assert rules.urgent_route(HOURS, roster, local(2026, 12, 2, 10)) is None
    assert rules.urgent_route(HOURS, [], local(2026, 12, 2, 23)) is None


def test_escalation_follows_the_order_and_stops_at_its_end() -> None:
    order = ("Practitioner/a", "Practitioner/b", "Practitioner/c")
    assert rules.next_in_order(order, ["Practitioner/a"]) == "Practitioner/b"
    assert rules.next_in_order(order, ["Practitioner/a", "Practitioner/b"]) == "Practitioner/c"
    assert rules.next_in_order(order, order) is None
    # A clinician swapped in (not in the order) does not stop the order.
    assert rules.next_in_order(order, ["Practitioner/x"]) == "Practitioner/a"
    sent = local(2026, 12, 2, 23)
    assert not rules.escalation_due(sent, sent + timedelta(minutes=9, seconds=59), 10)
    assert rules.escalation_due(sent, sent + timedelta(minutes=10), 10)
    with pytest.raises(ValueError):
        rules.escalation_due(sent, sent, -1)


def test_a_roster_is_checked_whole() -> None:
    rules.check_roster([MONTH, SWAP])
    bad = [
        rules.Shift(local(2026, 12, 2, 8), local(2026, 12, 2, 8), ("Practitioner/a",)),
        rules.Shift(local(2026, 12, 2, 8), local(2026, 12, 3, 8), ()),
        rules.Shift(local(2026, 12, 2, 8), local(2026, 12, 3, 8), ("Patient/p", "Practitioner/a")),
        rules.Shift(local(2026, 12, 2, 8), local(2026, 12, 3, 8), ("Practitioner/a",) * 2),
        rules.Shift(datetime(2026, 12, 2), datetime(2026, 12, 3), ("Practitioner/a",)),
    ]
    with pytest.raises(InvalidArgument) as refused:
        rules.check_roster(bad)
    fields = [v.field for v in refused.value.violations]
    assert fields == [
        "shifts[0].end_time",
        "shifts[1].clinicians",
        "shifts[2].clinicians[0]",
        "shifts[3].clinicians",
        "shifts[4]",
    ]
    with pytest.raises(InvalidArgument):
        rules.check_roster([MONTH] * (rules.MAX_SHIFTS + 1))


def test_the_missed_check_in_rule() -> None:
    assert not rules.missed_checkin_goes_on_call("never", in_hours=False)
    assert rules.missed_checkin_goes_on_call("out-of-hours", in_hours=False)
    assert not rules.missed_checkin_goes_on_call("out-of-hours", in_hours=True)
    assert rules.missed_checkin_goes_on_call("always", in_hours=True)
    with pytest.raises(InvalidArgument):
        rules.missed_checkin_goes_on_call("sometimes", in_hours=True)


def test_bad_coverage_settings_stop_notes_at_start(tmp_path: Path) -> None:
    from iopcare.kit.settings import ConfigurationError, Settings
    from iopcare.notes.app import coverage_of

    coverage = coverage_of(Settings(data_dir=tmp_path))
    assert coverage.escalation_minutes == 10 and coverage.missed_checkin_rule == "out-of-hours"
    with pytest.raises(ConfigurationError, match="IOPCARE_ONCALL_PROGRAM_HOURS"):
        coverage_of(Settings(data_dir=tmp_path, oncall_program_hours="weekdays"))
    with pytest.raises(ConfigurationError, match="IOPCARE_ONCALL_MISSED_CHECKIN"):
        coverage_of(Settings(data_dir=tmp_path, oncall_missed_checkin="sometimes"))
