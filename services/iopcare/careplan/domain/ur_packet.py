"""The utilization review packet of a stay: a FHIR document Bundle (Composition first) a case
manager sends the payer for a continued-stay review: diagnoses, the ASAM assessment, measures over
time, attendance against the authorization, goals and their progress, and the continued stay
requested. Pure: the caller loads the resources (`careplan.utilization`).

Every resource in the packet keeps its labels, and the Bundle carries the union of them: a packet
with Part 2 content is Part 2 content (docs/decisions/0028-utilization-review.md).
"""

from __future__ import annotations

import html
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from iopcare.careplan.domain.utilization import (
    ASAM_DIMENSIONS,
    ASAM_LEVEL,
    Authorization,
    asam_ratings_of,
)
from iopcare.kit import labels

LOINC = "http://loinc.org"


@dataclass(frozen=True)
class ContinuedStay:
    """What the program asks the payer for."""

    units: int
    through: date | None
    reason: str


@dataclass(frozen=True)
class PacketSources:
    """The stay's resources as stored (FHIR JSON as dicts), and its attendance."""

    patient_id: str
    patient: dict[str, Any] | None
    episode: dict[str, Any]
    authorization: dict[str, Any]
    facts: Authorization
    units_used: int
    plans: Sequence[dict[str, Any]]
    goals: Sequence[dict[str, Any]]
    measures: Sequence[dict[str, Any]]
    #: (attended, missed, booked ahead) sessions of the stay's patient.
    attendance: tuple[int, int, int]


def _div(lines: Sequence[str]) -> dict[str, str]:
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines) or "<li>none</li>"
    return {
        "status": "generated",
        "div": f'<div xmlns="http://www.w3.org/1999/xhtml"><ul>{items}</ul></div>',
    }


def _section(
    title: str, code: tuple[str, str] | None, lines: Sequence[str], refs: Sequence[str]
) -> dict[str, Any]:
    section: dict[str, Any] = {"title": title}
    if code:
        section["code"] = {"coding": [{"system": LOINC, "code": code[0], "display": code[1]}]}
    section["text"] = _div(lines)
    if refs:
        section["entry"] = [{"reference": r} for r in refs]
    return section


def diagnoses_of(plans: Sequence[dict[str, Any]], patient_ref: str) -> list[dict[str, Any]]:
    """The Conditions the stay's plans hold (contained), each once by code, as resources of the
    packet about the patient."""
    found: dict[str, dict[str, Any]] = {}
    for plan in plans:
        for contained in plan.get("contained") or []:
            if contained.get("resourceType") != "Condition":
                continue
            key = next(
                (str(c.get("code")) for c in (contained.get("code") or {}).get("coding") or []),
                str(contained.get("id")),
            )
            condition = {k: v for k, v in contained.items() if k != "id"}
            condition["subject"] = {"reference": patient_ref}
            found.setdefault(key, condition)
    return list(found.values())


def _code_text(resource: dict[str, Any]) -> str:
    concept = resource.get("code") or {}
    return str(
        concept.get("text")
        or next((c.get("display") or c.get("code") for c in concept.get("coding") or []), "")
    )


def _codes(resource: dict[str, Any]) -> list[str]:
    return [str(c.get("code")) for c in (resource.get("code") or {}).get("coding") or []]


def _achievement(goal: dict[str, Any]) -> str:
    codings = (goal.get("achievementStatus") or {}).get("coding") or []
    return str(codings[0].get("code")) if codings else "in-progress"


def _measure_line(observation: dict[str, Any]) -> str:
    when = str(observation.get("effectiveDateTime") or "")[:10]
    value = (observation.get("valueQuantity") or {}).get("value")
    shown = f"{value:g}" if isinstance(value, int | float) else "recorded"
    return f"{_code_text(observation) or 'measure'} {when}: {shown}"


Add = Callable[[dict[str, Any]], str]


def _asam_lines(sources: PacketSources) -> list[str]:
    facts = sources.facts
    lines = [f"level of care: {facts.level.upper()} (ASAM {ASAM_LEVEL[facts.level]})"]
    ratings = asam_ratings_of(sources.episode)
    lines += [
        f"{r.dimension.upper()} {ASAM_DIMENSIONS.get(r.dimension, r.dimension)}: {r.rating}"
        + (f" ({r.note})" if r.note else "")
        for r in ratings
    ] or ["no ASAM assessment recorded"]
    return lines


def _clinical_sections(sources: PacketSources, add: Add, episode_url: str) -> list[dict[str, Any]]:
    """Diagnoses, the ASAM assessment and the measures over time."""
    conditions = diagnoses_of(sources.plans, f"Patient/{sources.patient_id}")
    diagnosis_refs = [add(c) for c in conditions]
    diagnosis_lines = [f"{_code_text(c)} ({', '.join(_codes(c))})" for c in conditions]
    measure_refs = [add(m) for m in sources.measures]
    return [
        _section(
            "Diagnoses", ("11450-4", "Problem list - Reported"), diagnosis_lines, diagnosis_refs
        ),
        _section("ASAM criteria", None, _asam_lines(sources), [episode_url]),
        _section(
            "Measures over time",
            ("30954-2", "Relevant diagnostic tests/laboratory data Narrative"),
            [_measure_line(m) for m in sources.measures],
            measure_refs,
        ),
    ]


def _stay_sections(
    sources: PacketSources, request: ContinuedStay, add: Add, authorization_url: str
) -> list[dict[str, Any]]:
    """Attendance against the authorization, goals and progress, the continued stay asked."""
    facts = sources.facts
    attended, missed, ahead = sources.attendance
    remaining = max(facts.units - sources.units_used, 0)
    attendance_lines = [
        f"authorization {facts.number}: {facts.units} {facts.unit} from "
        f"{facts.start.isoformat()} to {facts.end.isoformat()}; {sources.units_used} used, "
        f"{remaining} remaining",
        f"sessions attended: {attended}; missed: {missed}; booked ahead: {ahead}",
    ]
    goal_refs = [add(g) for g in sources.goals]
    goal_lines = [
        f"{(g.get('description') or {}).get('text', 'goal')}: {_achievement(g)}"
        for g in sources.goals
    ]
    plan_refs = [add(p) for p in sources.plans]
    through = request.through.isoformat() if request.through else "not given"
    request_lines = [
        f"{request.units} more {facts.unit} at {facts.level.upper()} "
        f"(ASAM {ASAM_LEVEL[facts.level]}) through {through}",
        f"reason: {request.reason or 'not given'}",
    ]
    return [
        _section("Attendance against the plan", None, attendance_lines, [authorization_url]),
        _section("Goals and progress", ("61146-7", "Goals"), goal_lines, [*goal_refs, *plan_refs]),
        _section("Requested continued stay", None, request_lines, []),
    ]


def compose_packet(
    sources: PacketSources, request: ContinuedStay, base_url: str, now: datetime
) -> dict[str, Any]:
    """The packet as a FHIR R4 document Bundle."""
    entries: list[tuple[str, dict[str, Any]]] = []

    def add(resource: dict[str, Any]) -> str:
        url = (
            f"{base_url}/{resource['resourceType']}/{resource['id']}"
            if resource.get("id")
            else f"urn:uuid:{uuid.uuid4()}"
        )
        entries.append((url, resource))
        return url

    subject = add(sources.patient) if sources.patient is not None else None
    episode_url = add(sources.episode)
    authorization_url = add(sources.authorization)
    composition: dict[str, Any] = {
        "resourceType": "Composition",
        "id": str(uuid.uuid4()),
        "status": "final",
        "type": {
            "coding": [{"system": LOINC, "code": "34133-9", "display": "Summary of episode note"}],
            "text": "Utilization review packet",
        },
        "subject": {"reference": subject or f"Patient/{sources.patient_id}"},
        "date": now.isoformat(),
        "author": [{"display": "IOP program (iopcare)"}],
        "title": f"Utilization review: continued stay request ({sources.facts.number})",
        "section": [
            *_clinical_sections(sources, add, episode_url),
            *_stay_sections(sources, request, add, authorization_url),
        ],
    }
    composition_url = f"{base_url}/Composition/{composition['id']}"
    security = labels.union(*((r.get("meta") or {}).get("security") or [] for _, r in entries))
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
        "type": "document",
        "timestamp": now.isoformat(),
        "entry": [{"fullUrl": composition_url, "resource": composition}]
        + [{"fullUrl": url, "resource": resource} for url, resource in entries],
    }
    if security:
        bundle["meta"] = {"security": security}
    return bundle
