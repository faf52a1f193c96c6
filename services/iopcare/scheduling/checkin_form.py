"""The daily check-in as FHIR: the published Questionnaire and the patient's answers as a
QuestionnaireResponse to it (docs/decisions/0021-daily-check-in-as-a-questionnaire-response.md).

Pure mapping, no I/O: scheduling stores what `response` builds; the gateway serves
`QUESTIONNAIRE` and reads a posted QuestionnaireResponse with `answers_from_response`; notes
reads the safety item of scheduling's event with `self_harm_answer`.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from iopcare.kit import fhir
from iopcare.kit.errors import FieldViolation, FieldViolations, InvalidArgument
from iopcare.scheduling.domain.checkin import (
    CRAVING,
    MEDICATION,
    MOOD,
    SELF_HARM,
    SLEEP,
    CheckInAnswers,
)

QUESTIONNAIRE_ID = "iop-daily-checkin"
QUESTIONNAIRE_URL = f"https://iopcare.org/fhir/Questionnaire/{QUESTIONNAIRE_ID}"
QUESTIONNAIRE_VERSION = "1"
#: The canonical a response names (`QuestionnaireResponse.questionnaire`).
CANONICAL = f"{QUESTIONNAIRE_URL}|{QUESTIONNAIRE_VERSION}"

_ITEMS: tuple[tuple[str, str, str, dict[str, Any]], ...] = (
    (MOOD, "How is your mood today? (0 = worst, 10 = best)", "integer", {"min": 0, "max": 10}),
    (
        CRAVING,
        "How strong are your cravings today? (0 = none, 10 = worst)",
        "integer",
        {"min": 0, "max": 10},
    ),
    (SLEEP, "How many hours did you sleep last night?", "decimal", {"min": 0, "max": 24}),
    (MEDICATION, "Did you take your medication as prescribed?", "boolean", {}),
    (SELF_HARM, "Are you having thoughts of harming yourself?", "boolean", {}),
)
_MIN_VALUE = "http://hl7.org/fhir/StructureDefinition/minValue"
_MAX_VALUE = "http://hl7.org/fhir/StructureDefinition/maxValue"


def _bounds(kind: str, bounds: dict[str, Any]) -> list[dict[str, Any]]:
    key = "valueInteger" if kind == "integer" else "valueDecimal"
    found = []
    if "min" in bounds:
        found.append({"url": _MIN_VALUE, key: bounds["min"]})
    if "max" in bounds:
        found.append({"url": _MAX_VALUE, key: bounds["max"]})
    return found


def _item(link_id: str, text: str, kind: str, bounds: dict[str, Any]) -> dict[str, Any]:
    item: dict[str, Any] = {"linkId": link_id, "text": text, "type": kind, "required": True}
    extensions = _bounds(kind, bounds)
    if extensions:
        item["extension"] = extensions
    return item


#: The published Questionnaire (served by the gateway at `Questionnaire/iop-daily-checkin`).
QUESTIONNAIRE: dict[str, Any] = {
    "resourceType": "Questionnaire",
    "id": QUESTIONNAIRE_ID,
    "url": QUESTIONNAIRE_URL,
    "version": QUESTIONNAIRE_VERSION,
    "name": "IopDailyCheckIn",
    "title": "IOP daily check-in",
    "status": "active",
    "subjectType": ["Patient"],
    "description": (
        "The patient's own daily check-in: mood, craving, sleep, medication, and the safety "
        "question (a yes takes the program's crisis path at once)."
    ),
    "item": [_item(*spec) for spec in _ITEMS],
}


def response(
    response_id: str, patient_id: str, answers: CheckInAnswers, authored: datetime, author: str
) -> str:
    """The QuestionnaireResponse JSON of checked answers (version 1), canonical (the model's own
    serialisation, as every stored resource)."""
    values: dict[str, dict[str, Any]] = {
        MOOD: {"valueInteger": answers.mood},
        CRAVING: {"valueInteger": answers.craving},
        SLEEP: {"valueDecimal": answers.sleep_hours},
        MEDICATION: {"valueBoolean": answers.medication_taken},
        SELF_HARM: {"valueBoolean": answers.self_harm_thoughts},
    }
    data = {
        "resourceType": "QuestionnaireResponse",
        "id": response_id,
        "questionnaire": CANONICAL,
        "status": "completed",
        "subject": {"reference": f"Patient/{patient_id}"},
        "authored": _instant(authored),
        "author": {"reference": author},
        "source": {"reference": author},
        "item": [
            {"linkId": link_id, "text": text, "answer": [values[link_id]]}
            for link_id, text, _kind, _bounds in _ITEMS
        ],
    }
    return fhir.with_identity(
        fhir.parse_resource(data, "QuestionnaireResponse"), response_id, 1, authored
    )


def _instant(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _answer(item: dict[str, Any]) -> dict[str, Any] | None:
    answers = item.get("answer")
    if not isinstance(answers, list) or len(answers) != 1 or not isinstance(answers[0], dict):
        return None
    return answers[0]


def answers_from_response(data: dict[str, Any]) -> CheckInAnswers:
    """The answers a posted QuestionnaireResponse gives to the published Questionnaire
    (INVALID_ARGUMENT when it answers another questionnaire or gives an answer of the wrong
    type; ranges are checked by `check_answers`)."""
    canonical = str(data.get("questionnaire") or "")
    if canonical.split("|")[0] != QUESTIONNAIRE_URL:
        raise InvalidArgument(
            "the response does not answer the daily check-in Questionnaire",
            [FieldViolation("questionnaire", QUESTIONNAIRE_URL)],
        )
    problems = FieldViolations()
    found: dict[str, Any] = {}
    kinds = {link_id: kind for link_id, _text, kind, _b in _ITEMS}
    items = data.get("item")
    for i, item in enumerate(items if isinstance(items, list) else []):
        link_id = item.get("linkId") if isinstance(item, dict) else None
        if link_id not in kinds:
            problems.add(f"item[{i}].linkId", f"one of {', '.join(kinds)}")
            continue
        answer = _answer(item)
        key = {"integer": "valueInteger", "decimal": "valueDecimal", "boolean": "valueBoolean"}[
            kinds[link_id]
        ]
        value = answer.get(key) if answer is not None else None
        if answer is None or value is None or (key != "valueBoolean" and isinstance(value, bool)):
            problems.add(f"item[{i}].answer", f"one answer, {key}")
            continue
        if key == "valueInteger" and not isinstance(value, int):
            problems.add(f"item[{i}].answer", "valueInteger")
            continue
        if key == "valueDecimal" and (
            not isinstance(value, (int, float)) or not math.isfinite(float(value))
        ):
            problems.add(f"item[{i}].answer", "valueDecimal")
            continue
        found[link_id] = float(value) if key == "valueDecimal" else value
    problems.raise_if_any("the daily check-in response is invalid")
    return CheckInAnswers(
        mood=found.get(MOOD),
        craving=found.get(CRAVING),
        sleep_hours=found.get(SLEEP),
        medication_taken=found.get(MEDICATION),
        self_harm_thoughts=found.get(SELF_HARM),
    )


def self_harm_answer(resource: Any) -> bool:
    """Whether a stored check-in response (a parsed resource or its JSON dict) answers yes to
    the safety item."""
    data = resource if isinstance(resource, dict) else fhir.to_dict(resource)
    for item in data.get("item") or []:
        if item.get("linkId") == SELF_HARM:
            answer = _answer(item)
            return bool(answer is not None and answer.get("valueBoolean") is True)
    return False


def record_check_in_request(resource: dict[str, Any], request_id: str) -> Any:
    """The RecordCheckIn request a posted QuestionnaireResponse asks for (the gateway's create):
    the patient its subject names and its answers (a FhirError naming the element when it is
    not a response to the daily check-in)."""
    from iopcare.scheduling.v1 import scheduling_service_pb2 as pb

    subject = resource.get("subject")
    reference = subject.get("reference") if isinstance(subject, dict) else None
    patient_id = fhir.loose_reference_id(reference, "Patient")
    if not patient_id:
        raise fhir.refusal("required", "subject must be the Patient/{id} answering", "subject")
    if resource.get("status") != "completed":
        raise fhir.refusal("value", "a daily check-in is posted completed", "status")
    if (resource.get("meta") or {}).get("security"):
        # Never dropped silently: the check-in keeps no labels of a poster's (ADR 0021).
        raise fhir.refusal(
            "not-supported", "a daily check-in carries no security labels", "meta.security"
        )
    try:
        answers = answers_from_response(resource)
    except InvalidArgument as exc:
        first = exc.violations[0].field if exc.violations else "questionnaire"
        raise fhir.refusal("value", str(exc), first) from None
    given = {k: v for k, v in vars(answers).items() if v is not None}
    return pb.RecordCheckInRequest(
        patient_id=patient_id, request_id=request_id, answers=pb.CheckInAnswers(**given)
    )
