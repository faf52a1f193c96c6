"""C-SSRS screener rules (issue 12, part 3): answers, triage risk levels and the alerts they
raise. Pure functions, no I/O."""

from __future__ import annotations

from typing import Any

import pytest

from iopcare.careplan import fhir_map
from iopcare.careplan.domain import cssrs
from iopcare.careplan.domain.measures import check_measure, screening
from iopcare.kit import fhir
from iopcare.kit.errors import InvalidArgument
from tests.support.safety import cssrs_screen

NO = dict.fromkeys(range(1, 7), False)


def _screen(body: dict[str, Any]) -> tuple[float | None, list[Any]]:
    measure = fhir_map.measure_from_fhir(fhir.parse_resource(body, "Observation"))
    check_measure(measure)
    return screening(measure)


def _problems(body: dict[str, Any]) -> list[str]:
    with pytest.raises(InvalidArgument) as caught:
        _screen(body)
    return [f"{v.field}: {v.description}" for v in caught.value.violations]


@pytest.mark.parametrize(
    ("answers", "recent", "level"),
    [
        ({}, None, cssrs.Risk.NONE),
        ({1: True}, None, cssrs.Risk.LOW),
        ({2: True, 3: False, 4: False, 5: False}, None, cssrs.Risk.LOW),
        ({2: True, 3: True, 4: False, 5: False}, None, cssrs.Risk.MODERATE),
        ({6: True}, False, cssrs.Risk.MODERATE),
        ({2: True, 4: True}, None, cssrs.Risk.HIGH),
        ({2: True, 5: True}, None, cssrs.Risk.HIGH),
        ({6: True}, True, cssrs.Risk.HIGH),
        ({1: True, 2: True, 3: True, 6: True}, True, cssrs.Risk.HIGH),
    ],
)
def test_the_triage_level_is_the_highest_that_applies(
    answers: dict[int, bool], recent: bool | None, level: cssrs.Risk
) -> None:
    found, _ = _screen(cssrs_screen("p1", {**NO, **answers}, recent=recent))
    assert found == float(level)


def test_high_risk_is_a_crisis_and_moderate_an_alert_to_psychiatrist_and_therapist() -> None:
    _, (high,) = _screen(cssrs_screen("p1", {**NO, 2: True, 5: True}))
    assert (high.kind, high.severity, high.value) == ("psychiatric", "urgent", 3.0)
    assert high.roles == ("psychiatrist", "therapist")
    assert "specific plan and intent" in high.reason
    _, (moderate,) = _screen(cssrs_screen("p1", {**NO, 2: True, 3: True}))
    assert moderate.severity == "moderate" and "moderate risk" in moderate.reason
    assert _screen(cssrs_screen("p1", {**NO, 1: True}))[1] == []


def test_items_3_to_5_may_be_skipped_after_a_no_to_item_2() -> None:
    found, alerts = _screen(cssrs_screen("p1", {1: True, 2: False, 6: False}))
    assert found == 1.0 and alerts == []


def test_a_level_alone_is_accepted_and_alerts_like_the_answers() -> None:
    body = cssrs_screen("p1", {}, value=3)
    body.pop("component")
    found, (alert,) = _screen(body)
    assert found == 3.0 and alert.severity == "urgent"


def test_item_6_yes_needs_whether_it_was_recent() -> None:
    (problem,) = _problems(cssrs_screen("p1", {**NO, 6: True}))
    assert "cssrs-6-recent" in problem


def test_missing_required_items_are_each_named() -> None:
    problems = _problems(cssrs_screen("p1", {3: True}))
    assert len(problems) == 3
    assert all(any(f"cssrs-{n}" in p for p in problems) for n in (1, 2, 6))


def test_an_answer_that_is_not_yes_or_no_is_refused() -> None:
    body = cssrs_screen("p1", NO)
    body["component"][0]["valueCodeableConcept"]["coding"][0]["code"] = "10828004"
    (problem,) = _problems(body)
    assert problem.startswith("fhir_json.Observation.component[0].value[x]")


def test_an_unknown_or_repeated_item_is_refused() -> None:
    body = cssrs_screen("p1", NO)
    body["component"].append(dict(body["component"][0]))
    body["component"].append(
        {
            "code": {"coding": [{"system": "http://loinc.org", "code": "44260-8"}]},
            "valueBoolean": True,
        }
    )
    problems = _problems(body)
    assert any("answered twice" in p for p in problems)
    assert any("not a C-SSRS screener item" in p for p in problems)


def test_a_value_contradicting_the_answers_is_refused() -> None:
    (problem,) = _problems(cssrs_screen("p1", {**NO, 4: True}, value=1))
    assert "risk level 3 (high), not 1" in problem


def test_loinc_answer_codes_are_read() -> None:
    body = cssrs_screen("p1", NO)
    body["component"][3]["valueCodeableConcept"] = {
        "coding": [{"system": "http://loinc.org", "code": "LA33-6"}]
    }
    assert _screen(body)[0] == 3.0  # item 4: yes
