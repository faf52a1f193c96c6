"""The demo patient `make run` loads: an adult IOP plan with the team's four disciplines."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
DEMO_PATIENT_ID = "demo-patient-1"


def _concept(system: str, code: str, display: str = "", **more: Any) -> dict[str, Any]:
    """A CodeableConcept of one coding (with its display, if given), and any other elements."""
    coding = {"system": system, "code": code, **({"display": display} if display else {})}
    return {"coding": [coding], **more}


def _activity(
    code: str, display: str, description: str, performer: str, repeat: dict[str, Any]
) -> dict[str, Any]:
    return {
        "detail": {
            "kind": "Appointment",
            "code": _concept(SNOMED, code, display, text=description),
            "status": "scheduled",
            "description": description,
            "performer": [{"reference": performer}],
            "scheduledTiming": {"repeat": repeat},
        }
    }


#: The demo team: practitioner id -> our role name (SNOMED codes come from careplan.codes).
DEMO_TEAM = {
    "demo-psychiatrist": "psychiatrist",
    "demo-therapist": "therapist",
    "demo-dietitian": "dietitian",
    "demo-physician": "physician",
    "demo-case-manager": "case-manager",
}


def demo_care_team(
    patient_id: str = DEMO_PATIENT_ID, members: dict[str, str] | None = None
) -> dict[str, Any]:
    """An active IOP care team for the patient: the four disciplines, a case manager and the
    patient, with SNOMED CT role codes."""
    from iopcare.careplan.codes import SNOMED, TEAM_ROLES

    def participant(reference: str, role: str) -> dict[str, Any]:
        code, display = TEAM_ROLES[role]
        return {
            "role": [_concept(SNOMED, code, display)],
            "member": {"reference": reference},
        }

    return {
        "resourceType": "CareTeam",
        "status": "active",
        "name": "IOP team A",
        "category": [
            _concept(LOINC, "LA28865-6", "Longitudinal care-coordination focused care team")
        ],
        "subject": {"reference": f"Patient/{patient_id}"},
        "participant": [
            *(participant(f"Practitioner/{p}", role) for p, role in (members or DEMO_TEAM).items()),
            participant(f"Patient/{patient_id}", "patient"),
        ],
    }


def demo_goal(patient_id: str = DEMO_PATIENT_ID) -> dict[str, Any]:
    """The measurable goal the plan serves: PHQ-9 below 10 within the 12 weeks."""
    due = (datetime.now(UTC) + timedelta(weeks=12)).date().isoformat()
    return {
        "resourceType": "Goal",
        "lifecycleStatus": "active",
        "description": {"text": "PHQ-9 below 10 by week 12"},
        "subject": {"reference": f"Patient/{patient_id}"},
        "target": [
            {
                "measure": _concept(LOINC, "44261-6"),
                "detailQuantity": {
                    "value": 10,
                    "comparator": "<",
                    "unit": "{score}",
                    "system": "http://unitsofmeasure.org",
                    "code": "{score}",
                },
                "dueDate": due,
            }
        ],
    }


def demo_episode(patient_id: str = DEMO_PATIENT_ID, team_id: str | None = None) -> dict[str, Any]:
    """The referral accepted: a planned IOP stay, managed by the case manager the program assigns
    (which is what lets that case manager enrol the patient's first team)."""
    episode: dict[str, Any] = {
        "resourceType": "EpisodeOfCare",
        "status": "planned",
        "patient": {"reference": f"Patient/{patient_id}"},
        "careManager": {"reference": "Practitioner/demo-case-manager"},
    }
    if team_id:
        episode["team"] = [{"reference": f"CareTeam/{team_id}"}]
    return episode


def demo_phq9(patient_id: str = DEMO_PATIENT_ID, total: int = 17) -> dict[str, Any]:
    """The intake PHQ-9 (moderately severe), item 9 answered "not at all"."""
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": _concept(LOINC, "44261-6", "PHQ-9 total score", text="PHQ-9"),
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": datetime.now(UTC).isoformat(timespec="seconds"),
        "valueQuantity": {
            "value": total,
            "unit": "{score}",
            "system": "http://unitsofmeasure.org",
            "code": "{score}",
        },
        "component": [
            {
                "code": _concept(LOINC, "44260-8"),
                "valueInteger": 0,
            }
        ],
    }


def demo_monitoring(patient_id: str = DEMO_PATIENT_ID) -> list[dict[str, Any]]:
    """The physician's first-week monitoring after detox (issue 12): blood pressure, heart rate
    and a CIWA-Ar total, all below the program's alert thresholds."""
    when = datetime.now(UTC).isoformat(timespec="seconds")

    def observation(category: str, code: dict[str, Any], **value: Any) -> dict[str, Any]:
        return {
            "resourceType": "Observation",
            "status": "final",
            "category": [
                _concept("http://terminology.hl7.org/CodeSystem/observation-category", category)
            ],
            "code": code,
            "subject": {"reference": f"Patient/{patient_id}"},
            "effectiveDateTime": when,
            **value,
        }

    def quantity(value: float, unit: str) -> dict[str, Any]:
        return {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}

    return [
        observation(
            "vital-signs",
            _concept(LOINC, "85354-9", "Blood pressure panel", text="Blood pressure"),
            component=[
                {
                    "code": _concept(LOINC, "8480-6", "Systolic blood pressure"),
                    "valueQuantity": quantity(138, "mm[Hg]"),
                },
                {
                    "code": _concept(LOINC, "8462-4", "Diastolic blood pressure"),
                    "valueQuantity": quantity(88, "mm[Hg]"),
                },
            ],
        ),
        observation(
            "vital-signs",
            _concept(LOINC, "8867-4", "Heart rate", text="Heart rate"),
            valueQuantity=quantity(92, "/min"),
        ),
        observation(
            "survey",
            _concept(
                "https://iopcare.org/fhir/CodeSystem/measure",
                "ciwa-ar-total",
                "CIWA-Ar total score",
                text="CIWA-Ar",
            ),
            valueQuantity=quantity(6, "{score}"),
        ),
    ]


def demo_inbound_medications(patient_id: str = DEMO_PATIENT_ID) -> list[dict[str, Any]]:
    """What the detox unit discharged the patient on (issue 12): contained in the plan they
    arrive with, each becomes a reconciliation item the psychiatrist resolves."""
    rxnorm = "http://www.nlm.nih.gov/research/umls/rxnorm"

    def statement(local_id: str, code: str, display: str, mg: float) -> dict[str, Any]:
        return {
            "resourceType": "MedicationStatement",
            "id": local_id,
            "status": "active",
            "medicationCodeableConcept": _concept(rxnorm, code, display),
            "subject": {"reference": f"Patient/{patient_id}"},
            "dosage": [
                {
                    "text": f"{mg:g} mg by mouth once daily",
                    "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                    "route": {"text": "oral"},
                    "doseAndRate": [
                        {
                            "doseQuantity": {
                                "value": mg,
                                "unit": "mg",
                                "system": "http://unitsofmeasure.org",
                                "code": "mg",
                            }
                        }
                    ],
                }
            ],
        }

    return [
        statement("inbound-1", "312940", "sertraline 50 MG Oral Tablet", 50),
        statement("inbound-2", "197446", "chlordiazepoxide hydrochloride 25 MG Oral Capsule", 25),
    ]


def _demo_plan_activities(bounds: dict[str, Any]) -> list[dict[str, Any]]:
    """The demo plan's four activities, each repeating within `bounds` (a boundsPeriod)."""
    return [
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
    ]


def demo_care_plan(
    start: datetime | None = None,
    team_id: str = "demo-team",
    goal_id: str = "demo-goal-phq9",
    episode_id: str | None = None,
) -> dict[str, Any]:
    """A 12-week adult IOP plan: group therapy Mon/Wed/Fri 09:00-12:00, weekly individual therapy,
    a weekly psychiatrist visit and a nutrition session every other week."""
    start = start or datetime.now(UTC)
    end = start + timedelta(weeks=12)
    bounds = {"boundsPeriod": {"start": start.date().isoformat(), "end": end.date().isoformat()}}
    plan: dict[str, Any] = {
        "resourceType": "CarePlan",
        "status": "active",
        "intent": "plan",
        "title": "Adult IOP: depression with alcohol use disorder",
        "category": [
            _concept("http://hl7.org/fhir/us/core/CodeSystem/careplan-category", "assess-plan")
        ],
        "text": {
            "status": "generated",
            "div": '<div xmlns="http://www.w3.org/1999/xhtml">Adult intensive outpatient plan: '
            "group therapy three mornings a week, weekly individual therapy, weekly "
            "psychiatrist visit, nutrition counselling.</div>",
        },
        "subject": {"reference": f"Patient/{DEMO_PATIENT_ID}", "display": "Alex Demo"},
        "careTeam": [{"reference": f"CareTeam/{team_id}", "display": "IOP team A"}],
        "addresses": [{"display": "Major depressive disorder, recurrent; alcohol use disorder"}],
        "goal": [{"reference": f"Goal/{goal_id}", "display": "PHQ-9 below 10 by week 12"}],
        "period": {"start": start.date().isoformat(), "end": end.date().isoformat()},
        "activity": _demo_plan_activities(bounds),
    }
    if episode_id:
        # The plan belongs to this IOP stay: the stay's transitions apply to it.
        plan["supportingInfo"] = [{"reference": f"EpisodeOfCare/{episode_id}"}]
    return plan


def demo_care_plan_json(
    start: datetime | None = None,
    team_id: str = "demo-team",
    goal_id: str = "demo-goal-phq9",
    episode_id: str | None = None,
) -> str:
    return json.dumps(demo_care_plan(start, team_id, goal_id, episode_id))


#: The hospital MRN of the demo step-down patient (a fixed identifier: running the demo again
#: matches the same patient, and the same bundle returns the first handoff's result).
DEMO_HANDOFF_MRN = "MRN-0042"


#: The demo hand-over's patient, as its bundle names it.
_HANDOFF_PATIENT = "urn:uuid:9a1c4e5e-3f62-4a7e-9d1b-2f3c0d9e0001"
#: The security label of records under 42 CFR Part 2 (substance use disorder).
_SUD_LABEL = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
    "code": "ETH",
    "display": "substance abuse information sensitivity",
}


def _handoff_condition(patient: str, code: str, display: str, labelled: bool) -> dict[str, Any]:
    """An active ICD-10-CM diagnosis of the hand-over's patient; SUD-labelled if `labelled`."""
    resource: dict[str, Any] = {
        "resourceType": "Condition",
        "clinicalStatus": _concept(
            "http://terminology.hl7.org/CodeSystem/condition-clinical", "active"
        ),
        "code": _concept("http://hl7.org/fhir/sid/icd-10-cm", code, display),
        "subject": {"reference": patient},
    }
    if labelled:
        resource["meta"] = {"security": [_SUD_LABEL]}
    return resource


def demo_handoff_bundle() -> dict[str, Any]:
    """A detox unit's discharge summary for a patient stepping down into the IOP: the patient,
    an SUD diagnosis labelled under 42 CFR Part 2, depression, a medication, an allergy and the
    referral."""
    patient = _HANDOFF_PATIENT
    rxnorm = "http://www.nlm.nih.gov/research/umls/rxnorm"
    resources = [
        {
            "resourceType": "Patient",
            "identifier": [
                {"system": "urn:oid:2.16.840.1.113883.3.72.5.20", "value": DEMO_HANDOFF_MRN}
            ],
            "name": [{"family": "Okafor", "given": ["Jordan"]}],
            "birthDate": "1988-04-12",
        },
        _handoff_condition(patient, "F10.20", "Alcohol dependence, uncomplicated", True),
        _handoff_condition(
            patient, "F32.1", "Major depressive disorder, single episode, moderate", False
        ),
        {
            "resourceType": "MedicationRequest",
            "meta": {"security": [_SUD_LABEL]},
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": _concept(rxnorm, "1483744", "naltrexone 50 MG"),
            "subject": {"reference": patient},
        },
        {
            "resourceType": "AllergyIntolerance",
            "code": _concept(rxnorm, "7980", "penicillin G"),
            "patient": {"reference": patient},
        },
        {
            "resourceType": "ServiceRequest",
            "identifier": [{"system": "urn:oid:2.16.840.1.113883.3.72.5.21", "value": "REF-0042"}],
            "status": "active",
            "intent": "order",
            "code": {"text": "Intensive outpatient program, step-down after detox"},
            "subject": {"reference": patient},
        },
    ]
    return {
        "resourceType": "Bundle",
        "identifier": {"system": "urn:oid:2.16.840.1.113883.3.72.5.9", "value": "DC-0042"},
        "type": "collection",
        "entry": [
            {
                "fullUrl": patient
                if r["resourceType"] == "Patient"
                else f"urn:uuid:{i:08d}-0000-4000-8000-000000000000",
                "resource": r,
            }
            for i, r in enumerate(resources)
        ],
    }


def rest_demo(base_url: str, token: str) -> None:
    """What an inpatient unit's EHR does: hands the patient over through the FHIR gateway, then
    reads the draft plan back (plain HTTP; no client library needed)."""
    import urllib.request

    def call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            f"{base_url}{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/fhir+json",
                "Accept": "application/fhir+json",
            },
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read())

    print(f"\nan inpatient unit hands a patient over: POST {base_url}/$handoff")
    result = call("POST", "/$handoff", demo_handoff_bundle())
    patient_id = episode_id = ""
    for parameter in result["parameter"]:
        if parameter["name"] in ("created", "matched"):
            reference = parameter["valueReference"]["reference"]
            print(f"  {parameter['name']}: {reference}")
            if reference.startswith("Patient/"):
                patient_id = reference.split("/")[1]
            if reference.startswith("EpisodeOfCare/"):
                episode_id = reference.split("/")[1]
        else:
            for issue in parameter["resource"]["issue"]:
                if issue["severity"] == "warning":
                    print(f"  warning: {issue['diagnostics']}")
    print(f"GET {base_url}/CarePlan?patient={patient_id}&_include=CarePlan:subject")
    found = call("GET", f"/CarePlan?patient={patient_id}&_include=CarePlan:subject")
    for entry in found.get("entry", []):
        resource = entry["resource"]
        if resource["resourceType"] == "OperationOutcome":
            # The plan was drawn from SUD-labelled records: it stays in the program until a
            # consent can be checked (42 CFR Part 2), and the EHR is told so.
            for issue in resource["issue"]:
                print(f"  {issue['severity']}: {issue['diagnostics']}")
        else:
            print(f"  {entry['search']['mode']}: {resource['resourceType']}/{resource['id']}")
    if episode_id:
        print(f"GET {base_url}/EpisodeOfCare/{episode_id}/$handoff-summary")
        document = call("GET", f"/EpisodeOfCare/{episode_id}/$handoff-summary")
        composition = document["entry"][0]["resource"]
        print(f"  {composition['title']}: {', '.join(s['title'] for s in composition['section'])}")


def demo_safety_plan(patient_id: str = DEMO_PATIENT_ID) -> dict[str, Any]:
    """The demo patient's Stanley-Brown safety plan, written with the therapist at intake."""
    steps = {
        "warning-signs": ["Craving after a fight at home", "Staying in bed, not answering calls"],
        "coping-strategies": ["Walk around the block", "Breathing exercise from group"],
        "social-distraction": ["Call my cousin", "The NA meeting on Tuesday evenings"],
        "help-contacts": ["My sister, 555-0101", "My sponsor, 555-0199"],
        "professionals": [
            "IOP therapist, 555-0102 (program hours)",
            "988 Suicide & Crisis Lifeline: call or text 988",
        ],
        "environment-safe": ["My sister keeps my medications; no alcohol at home"],
        "reasons-for-living": ["My son"],
    }
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": "https://iopcare.org/fhir/Questionnaire/stanley-brown-safety-plan",
        "status": "completed",
        "subject": {"reference": f"Patient/{patient_id}"},
        "item": [
            {"linkId": link, "answer": [{"valueString": text} for text in answers]}
            for link, answers in steps.items()
        ],
    }
