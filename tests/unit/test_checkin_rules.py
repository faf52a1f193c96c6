"""The daily check-in's rules (scheduling.domain.checkin) and its FHIR form (checkin_form)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest

from iopcare.kit import fhir
from iopcare.kit.errors import InvalidArgument
from iopcare.scheduling import checkin_form
from iopcare.scheduling.domain.checkin import CheckInAnswers, check_answers, takes_crisis_path

GOOD = CheckInAnswers(
    mood=6, craving=3, sleep_hours=7.5, medication_taken=True, self_harm_thoughts=False
)


def violations(answers: CheckInAnswers) -> list[str]:
    with pytest.raises(InvalidArgument) as refused:
        check_answers(answers)
    return [v.field for v in refused.value.violations]


def test_a_complete_check_in_in_range_is_accepted() -> None:
    check_answers(GOOD)
    check_answers(CheckInAnswers(0, 10, 0.0, False, True))
    check_answers(CheckInAnswers(10, 0, 24.0, True, False))


def test_every_item_is_required_and_each_fault_is_named() -> None:
    assert violations(CheckInAnswers()) == [
        "answers.mood",
        "answers.craving",
        "answers.sleep_hours",
        "answers.medication_taken",
        "answers.self_harm_thoughts",
    ]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"mood": 11}, "answers.mood"),
        ({"mood": -1}, "answers.mood"),
        ({"craving": 42}, "answers.craving"),
        ({"sleep_hours": 24.5}, "answers.sleep_hours"),
        ({"sleep_hours": -0.5}, "answers.sleep_hours"),
        ({"sleep_hours": math.nan}, "answers.sleep_hours"),
        ({"sleep_hours": math.inf}, "answers.sleep_hours"),
    ],
)
def test_out_of_range_answers_are_refused(change: dict[str, Any], field: str) -> None:
    assert violations(CheckInAnswers(**{**vars(GOOD), **change})) == [field]


def test_only_a_yes_to_the_safety_item_takes_the_crisis_path() -> None:
    assert not takes_crisis_path(GOOD)
    assert takes_crisis_path(CheckInAnswers(**{**vars(GOOD), "self_harm_thoughts": True}))
    # However good the other answers are.
    assert takes_crisis_path(CheckInAnswers(10, 0, 8.0, True, True))


def test_the_questionnaire_is_valid_r4_and_the_response_round_trips() -> None:
    fhir.parse_resource(checkin_form.QUESTIONNAIRE, "Questionnaire")
    link_ids = [item["linkId"] for item in checkin_form.QUESTIONNAIRE["item"]]
    answers = CheckInAnswers(**{**vars(GOOD), "self_harm_thoughts": True})
    at = datetime(2026, 12, 2, 23, 0, tzinfo=UTC)
    text = checkin_form.response("r1", "p1", answers, at, "Patient/p1")
    data = json.loads(text)
    assert data["questionnaire"] == checkin_form.CANONICAL
    assert [item["linkId"] for item in data["item"]] == link_ids
    assert data["subject"] == {"reference": "Patient/p1"}
    assert checkin_form.answers_from_response(data) == answers
    assert checkin_form.self_harm_answer(data) is True
    assert checkin_form.self_harm_answer(fhir.parse_resource(data, "QuestionnaireResponse"))
    assert not checkin_form.self_harm_answer(
        json.loads(checkin_form.response("r2", "p1", GOOD, at, "Patient/p1"))
    )


def test_a_posted_response_to_another_questionnaire_or_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(InvalidArgument):
        checkin_form.answers_from_response({"questionnaire": "https://example.org/Q/phq9"})
    with pytest.raises(InvalidArgument) as refused:
        checkin_form.answers_from_response(
            {
                "questionnaire": checkin_form.QUESTIONNAIRE_URL,
                "item": [
                    {"linkId": "mood", "answer": [{"valueString": "fine"}]},
                    {"linkId": "craving", "answer": [{"valueInteger": True}]},
                    {"linkId": "sleep-hours", "answer": [{"valueDecimal": "7"}]},
                    {"linkId": "unknown", "answer": [{"valueBoolean": True}]},
                ],
            }
        )
    assert [v.field for v in refused.value.violations] == [
        "item[0].answer",
        "item[1].answer",
        "item[2].answer",
        "item[3].linkId",
    ]
    # Missing items are not refused here: check_answers names them.
    partial = checkin_form.answers_from_response(
        {"questionnaire": checkin_form.CANONICAL, "item": []}
    )
    assert partial == CheckInAnswers()
