"""Program templates: a draft plan for a diagnosis, in the program's own standard shape.

Templates are data (JSON files in `careplan/templates/`, or the folder IOPCARE_PLAN_TEMPLATES_DIR
names): an adult substance use disorder IOP and an eating disorder IOP ship as examples. The team
then edits the draft and activates it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from iopcare.careplan import codes
from iopcare.kit.errors import FailedPrecondition, FieldViolations


@dataclass(frozen=True)
class Template:
    id: str
    title: str
    diagnosis_prefixes: tuple[str, ...]
    weeks: int
    activities: list[dict[str, Any]]
    goals: list[dict[str, Any]]


def template_for(templates: list[Template], diagnosis: str) -> Template:
    """The template whose diagnosis prefixes match an ICD-10-CM code (e.g. F10.20)."""
    code = diagnosis.strip().upper()
    for template in templates:
        if any(code.startswith(prefix) for prefix in template.diagnosis_prefixes):
            return template
    raise FailedPrecondition(
        f"no program template covers diagnosis {code!r}", reason="NO_TEMPLATE", diagnosis=code
    )


def draft_plan(
    template: Template, patient_id: str, diagnosis: str, team_id: str | None, start: date
) -> dict[str, Any]:
    """A draft CarePlan (FHIR R4 JSON): the template's activities with their timings over the
    program's weeks, and its goals as contained Goals the team completes before activation."""
    end = start + timedelta(weeks=template.weeks)
    bounds = {"boundsPeriod": {"start": start.isoformat(), "end": end.isoformat()}}
    goals = [
        {
            "resourceType": "Goal",
            "id": f"goal{index}",
            "lifecycleStatus": "proposed",
            "description": {"text": goal["description"]},
            "subject": {"reference": f"Patient/{patient_id}"},
            "target": [
                {
                    "measure": {"coding": [{"system": codes.LOINC, "code": goal["measure"]}]},
                    "detailQuantity": {
                        "value": goal["value"],
                        "comparator": goal["comparator"],
                        "unit": goal.get("unit", "{score}"),
                        "system": "http://unitsofmeasure.org",
                        "code": goal.get("unit", "{score}"),
                    },
                    "dueDate": end.isoformat(),
                }
            ],
        }
        for index, goal in enumerate(template.goals)
    ]
    plan: dict[str, Any] = {
        "resourceType": "CarePlan",
        "contained": goals,
        "status": "draft",
        "intent": "plan",
        "title": template.title,
        "description": f"Drafted from the {template.title} template for diagnosis {diagnosis}.",
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
            "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{template.title}: '
            f"{len(template.activities)} activities, {len(goals)} goals (draft).</div>",
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "goal": [{"reference": f"#{goal['id']}"} for goal in goals],
        "activity": [
            {
                "detail": {
                    "kind": "Appointment",
                    "code": {
                        "coding": [
                            {"system": codes.SNOMED, "code": a["code"], "display": a["display"]}
                        ],
                        "text": a["description"],
                    },
                    "status": "not-started",
                    "description": a["description"],
                    "scheduledTiming": {"repeat": {**bounds, **a["repeat"]}},
                    **_performer(a),
                }
            }
            for a in template.activities
        ],
    }
    if team_id:
        plan["careTeam"] = [{"reference": f"CareTeam/{team_id}"}]
    return plan


def _performer(activity: dict[str, Any]) -> dict[str, Any]:
    """The discipline a template activity names as performer (`performer_role`): a reference
    by display (the team decides who), e.g. the physician's vitals, labs and drug screens."""
    role = activity.get("performer_role")
    if not role:
        return {}
    return {"performer": [{"display": codes.ROLE_DISPLAY.get(role, role)}]}


#: What a draft may be given on top of its template (DraftCarePlan's additions).
ADDITIONS = ("contained", "addresses", "supportingInfo")


def with_additions(plan: dict[str, Any], additions: dict[str, Any]) -> dict[str, Any]:
    """The drafted plan with a client's additions: contained resources, addresses and supporting
    information appended, security labels set. Anything else is refused, so a template draft
    stays a template draft."""
    problems = FieldViolations()
    for key in additions:
        if key not in (*ADDITIONS, "meta", "resourceType"):
            problems.add(
                f"additions_fhir_json.{key}",
                "only contained, addresses, supportingInfo "
                "and meta.security may be added to a draft",
            )
    if additions.get("resourceType", "CarePlan") != "CarePlan":
        problems.add("additions_fhir_json.resourceType", "must be CarePlan")
    meta = additions.get("meta", {})
    if not isinstance(meta, dict) or set(meta) - {"security"}:
        problems.add("additions_fhir_json.meta", "only meta.security may be added")
    for key in ADDITIONS:
        if key in additions and not isinstance(additions[key], list):
            problems.add(f"additions_fhir_json.{key}", "must be a list")
    problems.raise_if_any("the additions to the draft are invalid")
    result = dict(plan)
    for key in ADDITIONS:
        if additions.get(key):
            result[key] = [*plan.get(key, []), *additions[key]]
    if isinstance(meta, dict) and meta.get("security"):
        result["meta"] = {**plan.get("meta", {}), "security": meta["security"]}
    return result
