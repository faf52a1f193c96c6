"""Measurement-based care rules: crisis detection and goal achievement from the trend."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from iopcare.careplan.domain.measures import (
    Measure,
    Target,
    achievement,
    check_measure,
    crisis_reasons,
)
from iopcare.kit.errors import InvalidArgument

NOW = datetime(2026, 11, 27, 10, tzinfo=UTC)


def _phq9(total: float | None, item9: int | None = None) -> Measure:
    return Measure("p1", "44261-6", "final", total, NOW, item9)


@pytest.mark.parametrize(
    ("total", "item9", "crisis"),
    [(5, 0, False), (19, 0, False), (20, 0, True), (27, None, True), (3, 1, True), (12, 3, True)],
)
def test_a_phq9_is_a_crisis_when_item_9_is_above_0_or_the_total_is_severe(
    total: float, item9: int | None, crisis: bool
) -> None:
    assert bool(crisis_reasons(_phq9(total, item9))) is crisis


def test_other_measures_never_raise_a_crisis_by_themselves() -> None:
    assert crisis_reasons(Measure("p1", "70274-6", "final", 21, NOW)) == []


def test_crisis_reasons_say_what_was_found() -> None:
    assert crisis_reasons(_phq9(22, 2)) == [
        "PHQ-9 item 9 (thoughts of self-harm) scored 2",
        "PHQ-9 total 22 (severe)",
    ]


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        ([18], "in-progress"),
        ([18, 14], "improving"),
        ([14, 18], "worsening"),
        ([14, 14], "no-change"),
        ([18, 14, 9], "achieved"),
        ([], None),
    ],
)
def test_a_lower_is_better_goal_follows_the_phq9_trend(
    history: list[float], expected: str | None
) -> None:
    assert achievement(Target("44261-6", "<", 10), history) == expected


def test_a_higher_is_better_goal_reads_the_trend_the_other_way() -> None:
    weight = Target("29463-7", ">=", 52.0)
    assert achievement(weight, [48.0, 49.5]) == "improving"
    assert achievement(weight, [49.5, 48.0]) == "worsening"
    assert achievement(weight, [49.5, 52.5]) == "achieved"


def test_without_a_comparator_the_direction_comes_from_the_baseline() -> None:
    assert achievement(Target("x", None, 3), [10, 8]) == "improving"
    assert achievement(Target("x", None, 30), [10, 12]) == "improving"


def test_a_measure_needs_a_patient_a_code_a_value_a_time_and_a_sane_score() -> None:
    check_measure(_phq9(14, 1))
    with pytest.raises(InvalidArgument) as caught:
        check_measure(Measure(None, None, "draft", None, None))
    assert len(caught.value.violations) == 5
    with pytest.raises(InvalidArgument):
        check_measure(_phq9(31))


def test_attendance_rate_counts_only_sessions_with_recorded_attendance() -> None:
    from iopcare.careplan.domain.progress import attendance, attendance_rate

    assert attendance_rate(attendance([])) is None
    assert attendance_rate(attendance(["booked", "cancelled", "proposed"])) is None
    assert attendance_rate(attendance(["fulfilled", "noshow", "cancelled", "booked"])) == 50.0
    assert attendance_rate(attendance(["arrived", "checked-in", "fulfilled"])) == 100.0


def test_the_attendance_measure_is_valid_r4_and_reads_back_as_a_measure() -> None:
    from datetime import UTC, datetime

    from iopcare.careplan import codes, fhir_map
    from iopcare.kit import fhir

    observation = fhir_map.attendance_observation("p-1", 66.666, 3, datetime.now(UTC))
    again = fhir.parse_resource(fhir.to_json(observation), "Observation")
    measure = fhir_map.measure_from_fhir(again)
    assert (measure.code, measure.value, measure.patient_id) == (
        codes.ATTENDANCE_RATE,
        66.7,
        "p-1",
    )
