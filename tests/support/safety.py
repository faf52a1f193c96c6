"""C-SSRS screens and Stanley-Brown safety plans as a clinic records them (issue 12, part 3)."""

from __future__ import annotations

from typing import Any

from iopcare.careplan import codes

CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
SNOMED = "http://snomed.info/sct"
ANSWER = {True: ("373066001", "Yes"), False: ("373067005", "No")}
SAFETY_PLAN_QUESTIONNAIRE = "https://iopcare.org/fhir/Questionnaire/stanley-brown-safety-plan"


def cssrs_screen(
    patient_id: str,
    answers: dict[int, bool],
    *,
    recent: bool | None = None,
    when: str = "2026-11-27T09:00:00Z",
    value: int | None = None,
) -> dict[str, Any]:
    """A C-SSRS screen: `answers` by item number (1-6); `recent` whether item 6's behaviour was
    within the past three months (component cssrs-6-recent, as a valueBoolean)."""
    components: list[dict[str, Any]] = [
        {
            "code": {"coding": [{"system": codes.MEASURE_SYSTEM, "code": f"cssrs-{item}"}]},
            "valueCodeableConcept": {
                "coding": [{"system": SNOMED, "code": ANSWER[yes][0], "display": ANSWER[yes][1]}]
            },
        }
        for item, yes in sorted(answers.items())
    ]
    if recent is not None:
        components.append(
            {
                "code": {"coding": [{"system": codes.MEASURE_SYSTEM, "code": "cssrs-6-recent"}]},
                "valueBoolean": recent,
            }
        )
    body: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY, "code": "survey"}]}],
        "code": {
            "coding": [
                {
                    "system": codes.MEASURE_SYSTEM,
                    "code": codes.CSSRS_SCREEN_RISK,
                    "display": "C-SSRS screen risk level",
                }
            ],
            "text": "C-SSRS screen",
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": when,
        "component": components,
    }
    if value is not None:
        body["valueInteger"] = value
    return body


#: A complete safety plan's answers by section (linkId).
SECTIONS: dict[str, list[str]] = {
    "warning-signs": ["Not sleeping, staying in my room", "Thinking I am a burden"],
    "coping-strategies": ["Go for a run", "Play guitar"],
    "social-distraction": ["Call my cousin Sam", "The coffee shop on Main Street"],
    "help-contacts": ["My sister Ana, 555-0101"],
    "professionals": [
        "Therapist Dr. Lee, 555-0102",
        "988 Suicide & Crisis Lifeline: call or text 988",
    ],
    "environment-safe": ["My brother keeps my medications; no alcohol at home"],
    "reasons-for-living": ["My daughter"],
}


def safety_plan(
    patient_id: str, sections: dict[str, list[str]] | None = None, **extra: Any
) -> dict[str, Any]:
    """A Stanley-Brown safety plan as a QuestionnaireResponse (sections: answers by linkId)."""
    given = SECTIONS if sections is None else sections
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": SAFETY_PLAN_QUESTIONNAIRE,
        "status": "completed",
        "subject": {"reference": f"Patient/{patient_id}"},
        "item": [
            {"linkId": link, "answer": [{"valueString": text} for text in answers]}
            for link, answers in given.items()
        ],
        **extra,
    }
