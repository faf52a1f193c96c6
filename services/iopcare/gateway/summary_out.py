"""`GET [base]/EpisodeOfCare/{id}/$handoff-summary`: the document the next provider gets when
the patient leaves the IOP (step down or up).

A FHIR document Bundle, Composition first: the IOP course and level-of-care history (the
episode's versions), the plan and goals with progress, measures over time, attendance, current
medications (those the plan holds as supporting information), the care team (who to call).

Privacy: every resource in the document passes the gateway's one release rule (release.py): 42
CFR Part 2 (SUD), R and psychotherapy content leaves only as the patient's Consent allows, with
the no-redisclosure notice (42 CFR 2.32); V never. What it withholds is counted in a "Withheld"
section. The summary's own lines are derived data and inherit the labels of what they come from
(reliability C7): the level-of-care course is released only with the episode, goal and measure
lines only with their resources, and attendance (sessions of the plan's series, named after its
activities) only with the plan.
"""

from __future__ import annotations

import html
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.gateway import release, scopes
from iopcare.gateway.client import Caller
from iopcare.gateway.http import FhirRequest, FhirResponse, GatewayContext
from iopcare.gateway.resources.base import Found
from iopcare.gateway.resources.careplan import found
from iopcare.kit import fhir, labels

LOINC = "http://loinc.org"
READS = ("Patient", "EpisodeOfCare", "CarePlan", "CareTeam", "Goal", "Observation")


def _div(lines: list[str]) -> dict[str, str]:
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines) or "<li>none</li>"
    return {
        "status": "generated",
        "div": f'<div xmlns="http://www.w3.org/1999/xhtml"><ul>{items}</ul></div>',
    }


def handoff_summary(
    gateway: GatewayContext, caller: Caller, episode_id: str, request: FhirRequest
) -> FhirResponse:
    for resource_type in READS:
        gateway.require_all_patients(caller, resource_type, scopes.READ)
    services = gateway.services
    episode = services.call(
        caller, services.careplan.GetEpisode, pb.GetEpisodeRequest(id=episode_id)
    ).episode
    patient_id = episode.patient_id
    # The document is about the patient: without the Patient (withheld: 403 suppressed, as a
    # read of it) there is nothing to send.
    patient_found = gateway.release_rule.require(
        caller,
        found(
            services.call(
                caller, services.careplan.GetPatient, pb.GetPatientRequest(id=patient_id)
            ).patient
        ),
    )
    history = services.call(
        caller,
        services.careplan.ListResourceVersions,
        pb.ListResourceVersionsRequest(resource_type="EpisodeOfCare", id=episode_id),
    ).versions
    view = services.call(
        caller, services.careplan.GetPatientPlan, pb.GetPatientPlanRequest(patient_id=patient_id)
    )
    measures = [
        Found(str(json.loads(text).get("id", "")), 1, patient_id, None, text)
        for text in services.call(
            caller, services.careplan.ListMeasures, pb.ListMeasuresRequest(patient_id=patient_id)
        ).fhir_json
    ]
    withheld = 0

    def released(item: Found) -> dict[str, Any] | None:
        """The resource as the release rule lets it out, or None (counted as withheld)."""
        nonlocal withheld
        kept, refused = gateway.release_rule.release(caller, [item])
        withheld += refused
        return release.emit_resource(kept[0]) if kept else None

    entries: list[tuple[str, dict[str, Any]]] = []

    def add(resource: dict[str, Any]) -> dict[str, str]:
        # A resource of ours under its own URL, so the relative references between them resolve
        # inside the document (FHIR's fullUrl rules); a copy without an id gets a urn:uuid.
        url = (
            f"{request.base_url}/{resource['resourceType']}/{resource['id']}"
            if resource.get("id")
            else f"urn:uuid:{uuid.uuid4()}"
        )
        entries.append((url, resource))
        return {"reference": url}

    patient_ref = add(release.emit_resource(patient_found))
    episode_json = released(found(episode))
    # The course is the episode's history: derived from it, released with it.
    course_lines = (
        [
            f"level of care: {episode.clinical_level or 'not admitted'}",
            *(
                f"version {v.version} ({v.update_time.ToDatetime(tzinfo=UTC).date()}): "
                f"status {v.status}"
                for v in sorted(history, key=lambda v: v.version)
            ),
        ]
        if episode_json is not None
        else ["withheld with the episode it comes from (see Withheld)"]
    )
    sections: list[dict[str, Any]] = []
    course_entries = [add(episode_json)] if episode_json is not None else []
    sections.append(
        {
            "title": "IOP course and level of care",
            "code": {
                "coding": [{"system": LOINC, "code": "46240-8", "display": "History of encounters"}]
            },
            "text": _div(course_lines),
            **({"entry": course_entries} if course_entries else {}),
        }
    )
    plan_entries = []
    medications: list[dict[str, Any]] = []
    plan_released = not view.HasField("care_plan")
    if view.HasField("care_plan"):
        plan = released(found(view.care_plan, patient_id))
        if plan is not None:
            plan_released = True
            plan_entries.append(add(plan))
            plan_labels = plan.get("meta", {}).get("security", [])
            for contained in plan.get("contained", []):
                if contained.get("resourceType") in ("MedicationRequest", "MedicationStatement"):
                    # Taken out of the released plan, the copy carries the plan's labels too (the
                    # obligations of its release, NORDSCLCD, included: 42 CFR 2.32).
                    security = labels.union(
                        contained.get("meta", {}).get("security", []), plan_labels
                    )
                    medications.append(
                        {**contained, "meta": {**contained.get("meta", {}), "security": security}}
                        if security
                        else contained
                    )
    goal_lines = []
    for progress in view.goals:
        goal = released(found(progress.goal, patient_id))
        if goal is not None:
            plan_entries.append(add(goal))
            latest = f"{progress.latest_value:g}" if progress.has_latest_value else "none yet"
            goal_lines.append(
                f"{goal.get('description', {}).get('text', 'goal')}: latest {latest} "
                f"({progress.achievement or 'in-progress'})"
            )
    sections.append(
        {
            "title": "Plan of treatment and goals",
            "code": {
                "coding": [{"system": LOINC, "code": "18776-5", "display": "Plan of care note"}]
            },
            "text": _div(goal_lines),
            **({"entry": plan_entries} if plan_entries else {}),
        }
    )
    shown_measures = [m for m in (released(item) for item in measures) if m is not None]
    measure_entries = [add(m) for m in shown_measures]
    sections.append(
        {
            "title": "Measures over time",
            "code": {
                "coding": [
                    {
                        "system": LOINC,
                        "code": "30954-2",
                        "display": "Relevant diagnostic tests/laboratory data",
                    }
                ]
            },
            "text": _div([_measure_line(m) for m in shown_measures]),
            **({"entry": measure_entries} if measure_entries else {}),
        }
    )
    a = view.attendance
    # Attendance is counted over the sessions of the plan's series and named after its
    # activities ("Group therapy (relapse prevention)"): derived from the plan, it carries the
    # plan's labels and leaves only with it (reliability C7; 42 CFR 2.12: it identifies the
    # patient as in SUD treatment as surely as the plan does).
    attendance_lines = (
        [
            f"{a.attended} of {a.scheduled} sessions attended, {a.missed} missed, "
            f"{a.cancelled} cancelled",
            *(
                f"{x.activity}: {x.attendance.attended} of {x.attendance.scheduled}"
                for x in view.activity_attendance
            ),
        ]
        if plan_released
        else ["withheld with the plan it derives from (see Withheld)"]
    )
    sections.append({"title": "Attendance", "text": _div(attendance_lines)})
    medication_entries = []
    for medication in medications:
        # Contained in a plan the rule released (with its contained resources' labels counted).
        copy = {k: v for k, v in medication.items() if k != "id"}
        if copy.get("subject", {}).get("reference") == f"Patient/{patient_id}":
            # The copy has no URL of ours: its relative reference would not resolve.
            copy["subject"] = {**copy["subject"], **patient_ref}
        medication_entries.append(add(release.admit_composed(copy)))
    sections.append(
        {
            "title": "Current medications",
            "code": {
                "coding": [
                    {"system": LOINC, "code": "10160-0", "display": "History of Medication use"}
                ]
            },
            **(
                {"entry": medication_entries}
                if medication_entries
                else {
                    # cmp-1: a section has text, entries or sub-sections.
                    "text": _div(["no current medications recorded"]),
                    "emptyReason": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/list-empty-reason",
                                "code": "unavailable",
                            }
                        ]
                    },
                }
            ),
        }
    )
    team_entries = []
    team_lines = []
    for team in view.care_teams:
        team_json = released(found(team, patient_id))
        if team_json is not None:
            team_entries.append(add(team_json))
            for participant in team_json.get("participant", []):
                role = participant.get("role", [{}])[0].get("coding", [{}])[0].get("display", "")
                member = participant.get("member", {}).get("reference", "")
                team_lines.append(f"{role}: {member}")
    sections.append(
        {
            "title": "Care team: who to call",
            "code": {
                "coding": [
                    {"system": LOINC, "code": "85847-2", "display": "Patient Care team information"}
                ]
            },
            "text": _div(team_lines),
            **({"entry": team_entries} if team_entries else {}),
        }
    )
    if withheld:
        sections.append(
            {
                "title": "Withheld",
                "text": _div(
                    [
                        f"{withheld} resources carry labels (42 CFR Part 2 or psychotherapy) whose "
                        "disclosure needs the patient's consent; they are not in this document "
                        "(read them one by one under a consent naming you)"
                    ]
                ),
            }
        )
    now = datetime.now(UTC)
    composition: dict[str, Any] = {
        "resourceType": "Composition",
        "status": "final",
        "type": {
            "coding": [{"system": LOINC, "code": "18761-7", "display": "Transfer summary note"}]
        },
        "subject": patient_ref,
        "date": fhir.instant(now),
        "author": [{"display": "iopcare intensive outpatient program"}],
        "title": "IOP transfer summary",
        "section": sections,
    }
    # Composed only from what the rule released above (and counts of what it withheld).
    release.admit_composed(composition)
    bundle = {
        "resourceType": "Bundle",
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
        "type": "document",
        "timestamp": fhir.instant(now),
        "entry": [{"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": composition}]
        + [{"fullUrl": url, "resource": resource} for url, resource in entries],
    }
    # What leaves the program must be valid R4: checked before it is sent.
    fhir.parse_document(bundle, "Bundle", max_bytes=2**62)
    return FhirResponse(
        200,
        bundle,
        audit={
            "patient": patient_id,
            "resource": f"EpisodeOfCare/{episode_id}",
            "detail": f"handoff summary; {withheld} withheld",
        },
    )


def _measure_line(measure: dict[str, Any]) -> str:
    code = measure.get("code", {})
    name = code.get("text") or next((c.get("code") for c in code.get("coding", [])), "measure")
    return f"{name} {measure.get('effectiveDateTime', '')}: {_measure_value(measure)}"


def _measure_value(element: dict[str, Any]) -> str:
    """A value as shown: a number with its unit, a coded result (a drug screen's positive or
    negative), or a panel's components (a blood pressure's systolic and diastolic)."""
    quantity = element.get("valueQuantity", {})
    if "value" in quantity:
        unit = str(quantity.get("unit") or quantity.get("code") or "")
        return f"{quantity['value']} {'' if unit.startswith('{') else unit}".strip()
    if "valueInteger" in element:
        return str(element["valueInteger"])
    concept = element.get("valueCodeableConcept", {})
    if concept:
        codings = concept.get("coding") or [{}]
        return str(concept.get("text") or codings[0].get("display") or codings[0].get("code", ""))
    parts = []
    for component in element.get("component", []):
        coding = (component.get("code", {}).get("coding") or [{}])[0]
        label = component.get("code", {}).get("text") or coding.get("display") or coding.get("code")
        parts.append(f"{label} {_measure_value(component)}")
    return ", ".join(parts)
