"""The patient's daily check-in answers (pure rules): what a check-in must say, and when it takes
the crisis path."""

from __future__ import annotations

import math
from dataclasses import dataclass

from iopcare.kit.errors import FieldViolations

#: Item link ids of the published Questionnaire, in its order (checkin_form.QUESTIONNAIRE).
MOOD, CRAVING, SLEEP, MEDICATION, SELF_HARM = (
    "mood",
    "craving",
    "sleep-hours",
    "medication-taken",
    "self-harm-thoughts",
)
ITEMS = (MOOD, CRAVING, SLEEP, MEDICATION, SELF_HARM)
#: Most hours of sleep a day can report.
MAX_SLEEP_HOURS = 24.0


@dataclass(frozen=True)
class CheckInAnswers:
    """The five answers; None where the patient gave none."""

    mood: int | None = None
    craving: int | None = None
    sleep_hours: float | None = None
    medication_taken: bool | None = None
    self_harm_thoughts: bool | None = None


def check_answers(answers: CheckInAnswers, prefix: str = "answers.") -> None:
    """Every item answered and in range (INVALID_ARGUMENT naming each item at fault): mood and
    craving 0 to 10, sleep 0 to 24 hours, medication and the safety item yes or no."""
    problems = FieldViolations()
    for name, value in (("mood", answers.mood), ("craving", answers.craving)):
        if value is None or isinstance(value, bool) or not 0 <= value <= 10:
            problems.add(prefix + name, "a whole number from 0 to 10")
    sleep = answers.sleep_hours
    if sleep is None or not math.isfinite(sleep) or not 0 <= sleep <= MAX_SLEEP_HOURS:
        problems.add(prefix + "sleep_hours", "hours of sleep, 0 to 24")
    if answers.medication_taken is None:
        problems.add(prefix + "medication_taken", "yes or no")
    if answers.self_harm_thoughts is None:
        problems.add(prefix + "self_harm_thoughts", "yes or no")
    problems.raise_if_any("the daily check-in is incomplete or out of range")


def takes_crisis_path(answers: CheckInAnswers) -> bool:
    """A yes to "thoughts of harming yourself" is a crisis, whatever the other answers."""
    return answers.self_harm_thoughts is True
