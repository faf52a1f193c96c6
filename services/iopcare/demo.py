"""The demo patient `make run` loads: an adult IOP plan with the team's four disciplines."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

SNOMED = "http://snomed.info/sct"
DEMO_PATIENT_ID = "demo-patient-1"


def _activity(
    code: str, display: str, description: str, performer: str, repeat: dict[str, Any]
) -> dict[str, Any]:
    return {
        "detail": {
            "kind": "Appointment",
            "code": {
                "coding": [{"system": SNOMED, "code": code, "display": display}],
                "text": description,
            },
            "status": "scheduled",
            "description": description,
            "performer": [{"reference": performer}],
            "scheduledTiming": {"repeat": repeat},
        }
    }


def demo_care_plan(start: datetime | None = None) -> dict[str, Any]:
    """A 12-week adult IOP plan: group therapy Mon/Wed/Fri 09:00-12:00, weekly individual therapy,
    a weekly psychiatrist visit and a nutrition session every other week."""
    start = start or datetime.now(UTC)
    end = start + timedelta(weeks=12)
    bounds = {"boundsPeriod": {"start": start.date().isoformat(), "end": end.date().isoformat()}}
    return {
        "resourceType": "CarePlan",
        "status": "active",
        "intent": "plan",
        "title": "Adult IOP: depression with alcohol use disorder",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://hl7.org/fhir/us/core/CodeSystem/careplan-category",
                        "code": "assess-plan",
                    }
                ]
            }
        ],
        "text": {
            "status": "generated",
            "div": '<div xmlns="http://www.w3.org/1999/xhtml">Adult intensive outpatient plan: '
            "group therapy three mornings a week, weekly individual therapy, weekly "
            "psychiatrist visit, nutrition counselling.</div>",
        },
        "subject": {"reference": f"Patient/{DEMO_PATIENT_ID}", "display": "Alex Demo"},
        "careTeam": [{"reference": "CareTeam/demo-team", "display": "IOP team A"}],
        "addresses": [{"display": "Major depressive disorder, recurrent; alcohol use disorder"}],
        "goal": [
            {"reference": "Goal/demo-goal-phq9", "display": "PHQ-9 below 10 by week 12"},
            {"reference": "Goal/demo-goal-abstinence", "display": "Abstinent from alcohol"},
        ],
        "period": {"start": start.date().isoformat(), "end": end.date().isoformat()},
        "activity": [
            _activity(
                "76168009",
                "Group psychotherapy",
                "Group therapy (CBT skills)",
                "Practitioner/demo-therapist",
                {
                    **bounds,
                    "frequency": 1,
                    "period": 1,
                    "periodUnit": "wk",
                    "dayOfWeek": ["mon", "wed", "fri"],
                    "timeOfDay": ["09:00:00"],
                    "duration": 3,
                    "durationUnit": "h",
                },
            ),
            _activity(
                "75516001",
                "Psychotherapy",
                "Individual therapy",
                "Practitioner/demo-therapist",
                {
                    **bounds,
                    "frequency": 1,
                    "period": 1,
                    "periodUnit": "wk",
                    "dayOfWeek": ["tue"],
                    "timeOfDay": ["13:00:00"],
                    "duration": 50,
                    "durationUnit": "min",
                },
            ),
            _activity(
                "182836005",
                "Review of medication",
                "Psychiatrist visit",
                "Practitioner/demo-psychiatrist",
                {
                    **bounds,
                    "frequency": 1,
                    "period": 1,
                    "periodUnit": "wk",
                    "dayOfWeek": ["thu"],
                    "timeOfDay": ["10:00:00"],
                    "duration": 30,
                    "durationUnit": "min",
                },
            ),
            _activity(
                "61310001",
                "Nutrition education",
                "Nutrition counselling",
                "Practitioner/demo-dietitian",
                {
                    **bounds,
                    "frequency": 1,
                    "period": 2,
                    "periodUnit": "wk",
                    "dayOfWeek": ["wed"],
                    "timeOfDay": ["13:00:00"],
                    "duration": 45,
                    "durationUnit": "min",
                },
            ),
        ],
    }


def demo_care_plan_json(start: datetime | None = None) -> str:
    return json.dumps(demo_care_plan(start))
