"""`GET [base]/EpisodeOfCare/{id}/$handoff-summary`: the document the next provider gets when
the patient leaves the IOP (step down or up).

A FHIR document Bundle, Composition first: the IOP course and level-of-care history (the
episode's versions), the plan and goals with progress, measures over time, attendance, current
medications (the prescribers' active MedicationStatements once there is a list, before that the
inbound ones the plan holds as supporting information), the care team (who to call).

Privacy: every resource in the document passes the gateway's one release rule (release.py): 42
CFR Part 2 (SUD), R and psychotherapy content leaves only as the patient's Consent allows, with
the no-redisclosure notice (42 CFR 2.32); V never. What it withholds is counted in a "Withheld"
section. The summary's own lines are derived data and inherit the labels of what they come from
(test-matrix C7): the level-of-care course is released only with the episode, goal and measure
lines only with their resources, and attendance (sessions of the plan's series, named after its
activities) only with the plan.
"""

from __future__ import annotations

import html
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.gateway import release, scopes, uscore
from iopcare.gateway.client import Caller
from iopcare.gateway.http import FhirRequest, FhirResponse, GatewayContext
from iopcare.gateway.resources.base import Found, found_by_meta, pages
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


@dataclass
class _Sources:
    """What careplan holds for the document: the episode, its patient, its versions (the
    course), the patient's plan view (plan, goals with progress, attendance, teams), measures."""

    episode: Any
    patient: Found
    history: list[Any]
    view: Any
    measures: list[Found]
    #: The patient's MedicationStatements (the prescribers' list; empty when there is none yet,
    #: or the caller's scopes do not read it).
    medications: list[Found] = field(default_factory=list)


def _read_sources(gateway: GatewayContext, caller: Caller, episode_id: str) -> _Sources:
    services = gateway.services
    careplan = services.careplan
    episode = services.call(
        caller, careplan.GetEpisode, pb.GetEpisodeRequest(id=episode_id)
    ).episode
    patient_id = episode.patient_id
    # The document is about the patient: without the Patient (withheld: 403 suppressed, as a
    # read of it) there is nothing to send.
    patient = gateway.release_rule.require(
        caller,
        found(
            services.call(caller, careplan.GetPatient, pb.GetPatientRequest(id=patient_id)).patient
        ),
    )
    history = services.call(
        caller,
        careplan.ListResourceVersions,
        pb.ListResourceVersionsRequest(resource_type="EpisodeOfCare", id=episode_id),
    ).versions
    view = services.call(
        caller, careplan.GetPatientPlan, pb.GetPatientPlanRequest(patient_id=patient_id)
    )
    measures = [
        Found(str(json.loads(text).get("id", "")), 1, patient_id, None, text)
        for text in pages(
            lambda token: services.call(
                caller,
                careplan.ListMeasures,
                pb.ListMeasuresRequest(patient_id=patient_id, page_size=1000, page_token=token),
            ),
            "fhir_json",
        )
    ]
    return _Sources(
        episode,
        patient,
        list(history),
        view,
        measures,
        _medication_list(gateway, caller, patient_id),
    )


def _medication_list(gateway: GatewayContext, caller: Caller, patient_id: str) -> list[Found]:
    """The patient's MedicationStatements, when the caller's scopes read them."""
    if (
        scopes.patients_allowed(caller.scopes, "MedicationStatement", scopes.SEARCH, caller.patient)
        is None
    ):
        return []
    services = gateway.services
    return [
        found_by_meta(item)
        for item in pages(
            lambda token: services.call(
                caller,
                services.careplan.ListMedicationStatements,
                pb.ListMedicationStatementsRequest(
                    patient_id=patient_id, page_size=1000, page_token=token
                ),
            ),
            "medications",
        )
    ]


@dataclass
class _Document:
    """The document being composed: its entries (URL, resource) and how many resources the
    release rule withheld from it."""

    gateway: GatewayContext
    caller: Caller
    base_url: str
    entries: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    withheld: int = 0

    def released(self, item: Found) -> dict[str, Any] | None:
        """The resource as the release rule lets it out, or None (counted as withheld)."""
        kept, refused = self.gateway.release_rule.release(self.caller, [item])
        self.withheld += refused
        return release.emit_resource(kept[0]) if kept else None

    def add(self, resource: dict[str, Any]) -> dict[str, str]:
        # A resource of ours under its own URL, so the relative references between them resolve
        # inside the document (FHIR's fullUrl rules); a copy without an id gets a urn:uuid.
        url = (
            f"{self.base_url}/{resource['resourceType']}/{resource['id']}"
            if resource.get("id")
            else f"urn:uuid:{uuid.uuid4()}"
        )
        self.entries.append((url, resource))
        return {"reference": url}


def _section(
    title: str, code: str | None, display: str, lines: list[str], entries: list[dict[str, str]]
) -> dict[str, Any]:
    section: dict[str, Any] = {"title": title}
    if code:
        section["code"] = {"coding": [{"system": LOINC, "code": code, "display": display}]}
    section["text"] = _div(lines)
    if entries:
        section["entry"] = entries
    return section


def _course_section(doc: _Document, sources: _Sources) -> dict[str, Any]:
    """The course is the episode's history: derived from it, released with it."""
    episode = sources.episode
    episode_json = doc.released(found(episode))
    lines = (
        [
            f"level of care: {episode.clinical_level or 'not admitted'}",
            *(
                f"version {v.version} ({v.update_time.ToDatetime(tzinfo=UTC).date()}): "
                f"status {v.status}"
                for v in sorted(sources.history, key=lambda v: v.version)
            ),
        ]
        if episode_json is not None
        else ["withheld with the episode it comes from (see Withheld)"]
    )
    entries = [doc.add(episode_json)] if episode_json is not None else []
    return _section(
        "IOP course and level of care", "46240-8", "History of encounters", lines, entries
    )


def _medications_of(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """The medications a released plan holds (contained), each carrying the plan's labels too:
    taken out of the plan, the copy keeps the obligations of its release (NORDSCLCD included:
    42 CFR 2.32)."""
    medications = []
    plan_labels = plan.get("meta", {}).get("security", [])
    for contained in plan.get("contained", []):
        if contained.get("resourceType") in ("MedicationRequest", "MedicationStatement"):
            security = labels.union(contained.get("meta", {}).get("security", []), plan_labels)
            medications.append(
                {**contained, "meta": {**contained.get("meta", {}), "security": security}}
                if security
                else contained
            )
    return medications


def _plan_section(
    doc: _Document, sources: _Sources
) -> tuple[dict[str, Any], list[dict[str, Any]], bool]:
    """The plan and goals section, the plan's medications, and whether the plan was released
    (true when there is none: nothing of it to withhold)."""
    view, patient_id = sources.view, sources.episode.patient_id
    entries = []
    medications: list[dict[str, Any]] = []
    plan_released = not view.HasField("care_plan")
    if view.HasField("care_plan"):
        plan = doc.released(found(view.care_plan, patient_id))
        if plan is not None:
            plan_released = True
            entries.append(doc.add(plan))
            medications = _medications_of(plan)
    lines = []
    for progress in view.goals:
        goal = doc.released(found(progress.goal, patient_id))
        if goal is not None:
            entries.append(doc.add(goal))
            latest = f"{progress.latest_value:g}" if progress.has_latest_value else "none yet"
            lines.append(
                f"{goal.get('description', {}).get('text', 'goal')}: latest {latest} "
                f"({progress.achievement or 'in-progress'})"
            )
    section = _section(
        "Plan of treatment and goals", "18776-5", "Plan of care note", lines, entries
    )
    return section, medications, plan_released


def _measures_section(doc: _Document, sources: _Sources) -> dict[str, Any]:
    shown = [m for m in (doc.released(item) for item in sources.measures) if m is not None]
    entries = [doc.add(m) for m in shown]
    return _section(
        "Measures over time",
        "30954-2",
        "Relevant diagnostic tests/laboratory data",
        [_measure_line(m) for m in shown],
        entries,
    )


def _attendance_section(view: Any, plan_released: bool) -> dict[str, Any]:
    # Attendance is counted over the sessions of the plan's series and named after its
    # activities ("Group therapy (relapse prevention)"): derived from the plan, it carries the
    # plan's labels and leaves only with it (test-matrix C7; 42 CFR 2.12: it identifies the
    # patient as in SUD treatment as surely as the plan does).
    a = view.attendance
    lines = (
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
    return {"title": "Attendance", "text": _div(lines)}


def _medications_section(
    doc: _Document, medications: list[dict[str, Any]], patient_id: str, patient_ref: dict[str, str]
) -> dict[str, Any]:
    entries = []
    for medication in medications:
        if medication.get("id") and medication.get("meta", {}).get("versionId"):
            # A MedicationStatement of the list, released by the rule on its own labels.
            entries.append(doc.add(medication))
            continue
        # Contained in a plan the rule released (with its contained resources' labels counted).
        copy = {k: v for k, v in medication.items() if k != "id"}
        if copy.get("subject", {}).get("reference") == f"Patient/{patient_id}":
            # The copy has no URL of ours: its relative reference would not resolve.
            copy["subject"] = {**copy["subject"], **patient_ref}
        uscore.conform(copy)  # leaves the program like a released one: its US Core claim
        entries.append(doc.add(release.admit_composed(copy)))
    section: dict[str, Any] = {
        "title": "Current medications",
        "code": {
            "coding": [{"system": LOINC, "code": "10160-0", "display": "History of Medication use"}]
        },
    }
    if entries:
        section["entry"] = entries
        return section
    # cmp-1: a section has text, entries or sub-sections.
    section["text"] = _div(["no current medications recorded"])
    section["emptyReason"] = {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/list-empty-reason",
                "code": "unavailable",
            }
        ]
    }
    return section


def _team_section(doc: _Document, sources: _Sources) -> dict[str, Any]:
    entries = []
    lines = []
    for team in sources.view.care_teams:
        team_json = doc.released(found(team, sources.episode.patient_id))
        if team_json is not None:
            entries.append(doc.add(team_json))
            for participant in team_json.get("participant", []):
                role = participant.get("role", [{}])[0].get("coding", [{}])[0].get("display", "")
                member = participant.get("member", {}).get("reference", "")
                lines.append(f"{role}: {member}")
    return _section(
        "Care team: who to call", "85847-2", "Patient Care team information", lines, entries
    )


def _withheld_section(withheld: int) -> dict[str, Any]:
    return {
        "title": "Withheld",
        "text": _div(
            [
                f"{withheld} resources carry labels (42 CFR Part 2 or psychotherapy) whose "
                "disclosure needs the patient's consent; they are not in this document "
                "(read them one by one under a consent naming you)"
            ]
        ),
    }


def _document_bundle(
    doc: _Document, sections: list[dict[str, Any]], patient_ref: dict[str, str]
) -> dict[str, Any]:
    """The document Bundle: the Composition, then every entry; valid R4 or an error."""
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
        + [{"fullUrl": url, "resource": resource} for url, resource in doc.entries],
    }
    # What leaves the program must be valid R4: checked before it is sent.
    fhir.parse_document(bundle, "Bundle", max_bytes=2**62)
    return bundle


def handoff_summary(
    gateway: GatewayContext, caller: Caller, episode_id: str, request: FhirRequest
) -> FhirResponse:
    for resource_type in READS:
        gateway.require_all_patients(caller, resource_type, scopes.READ)
    sources = _read_sources(gateway, caller, episode_id)
    patient_id = sources.episode.patient_id
    doc = _Document(gateway, caller, request.base_url)
    patient_ref = doc.add(release.emit_resource(sources.patient))
    # The sections in document order; each adds its released resources to the document.
    sections = [_course_section(doc, sources)]
    plan_section, medications, plan_released = _plan_section(doc, sources)
    if sources.medications:
        # Once the prescribers keep the list (reconciled or recorded), the current medications
        # are its active ones, each released on its own labels; before, the plan's inbound ones.
        active = [m for m in sources.medications if m.resource.get("status") == "active"]
        medications = [m for m in (doc.released(item) for item in active) if m is not None]
    sections += [
        plan_section,
        _measures_section(doc, sources),
        _attendance_section(sources.view, plan_released),
        _medications_section(doc, medications, patient_id, patient_ref),
        _team_section(doc, sources),
    ]
    if doc.withheld:
        sections.append(_withheld_section(doc.withheld))
    return FhirResponse(
        200,
        _document_bundle(doc, sections, patient_ref),
        audit={
            "patient": patient_id,
            "resource": f"EpisodeOfCare/{episode_id}",
            "detail": f"handoff summary; {doc.withheld} withheld",
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
