"""Realistic care plans and teams for tests (a new patient per call, so tests sharing a topic
never mix)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from iopcare.demo import demo_care_plan, demo_care_team
from iopcare.kit.auth import Principal

#: The clinicians tests act as; all of them are on every team `care_team()` builds.
TEAM = {
    "psy-1": "psychiatrist",
    "th-1": "therapist",
    "diet-1": "dietitian",
    "doc-1": "physician",
    "cm-1": "case-manager",
}
CASE_MANAGER = Principal(subject="practitioner:cm-1", role="case-manager", practitioner_id="cm-1")
ADMIN = Principal(subject="practitioner:adm-1", role="admin", practitioner_id="adm-1")


def new_patient_id() -> str:
    return f"pat-{uuid.uuid4().hex[:12]}"


def assigned_episode(patient_id: str, case_manager: str = "cm-1") -> dict[str, Any]:
    """A planned IOP stay naming the case manager the program assigned to the patient."""
    return {
        "resourceType": "EpisodeOfCare",
        "status": "planned",
        "patient": {"reference": f"Patient/{patient_id}"},
        "careManager": {"reference": f"Practitioner/{case_manager}"},
    }


def care_team(patient_id: str) -> dict[str, Any]:
    return demo_care_team(patient_id, TEAM)


def iop_plan(
    patient_id: str | None = None, team_id: str = "unknown-team", start: datetime | None = None
) -> dict[str, Any]:
    plan = demo_care_plan(start or datetime.now(UTC), team_id)
    plan["subject"] = {"reference": f"Patient/{patient_id or new_patient_id()}"}
    return plan


def iop_plan_json(patient_id: str | None = None, team_id: str = "unknown-team") -> str:
    return json.dumps(iop_plan(patient_id, team_id))


def assign(db: Any, patient_id: str) -> None:
    """The program assigns cm-1 to the patient (an episode naming them as care manager): only an
    assigned case manager enrols a patient's first team."""
    from iopcare.careplan.episodes import Episodes

    Episodes(db).create(ADMIN, str(uuid.uuid4()), json.dumps(assigned_episode(patient_id)))


def enrol(db: Any, patient_id: str, *, assigned: bool = False) -> str:
    """Creates the patient's active care team in a careplan database (assigning cm-1 first unless
    `assigned`); returns its id."""
    from iopcare.careplan.care_teams import CareTeams

    if not assigned:
        assign(db, patient_id)
    team = CareTeams(db).create(CASE_MANAGER, str(uuid.uuid4()), json.dumps(care_team(patient_id)))
    return team.id


def enrolled_plan_json(db: Any, patient_id: str | None = None) -> tuple[str, str]:
    """(patient id, plan JSON) for a new patient whose team exists in the careplan database."""
    patient = patient_id or new_patient_id()
    return patient, iop_plan_json(patient, enrol(db, patient))


def phq9(
    patient_id: str, total: int, item9: int = 0, when: str = "2026-11-27T10:00:00Z"
) -> dict[str, Any]:
    """A PHQ-9 as a clinic records it: the total, and item 9 as its LOINC answer."""
    answers = ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"]
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "survey",
                    }
                ]
            }
        ],
        "code": {
            "coding": [
                {
                    "system": "http://loinc.org",
                    "code": "44261-6",
                    "display": "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]",
                }
            ],
            "text": "PHQ-9",
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": when,
        "valueQuantity": {
            "value": total,
            "unit": "{score}",
            "system": "http://unitsofmeasure.org",
            "code": "{score}",
        },
        "component": [
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": "44260-8"}]},
                "valueCodeableConcept": {
                    "coding": [{"system": "http://loinc.org", "code": answers[item9]}]
                },
            }
        ],
    }


def phq9_goal(patient_id: str) -> dict[str, Any]:
    return {
        "resourceType": "Goal",
        "lifecycleStatus": "active",
        "description": {"text": "PHQ-9 below 10 by week 12"},
        "subject": {"reference": f"Patient/{patient_id}"},
        "target": [
            {
                "measure": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]},
                "detailQuantity": {
                    "value": 10,
                    "comparator": "<",
                    "unit": "{score}",
                    "system": "http://unitsofmeasure.org",
                    "code": "{score}",
                },
                "dueDate": "2027-02-19",
            }
        ],
    }
