"""Program templates: a draft plan for a diagnosis, in the program's own standard shape.

Templates are data (JSON files in `careplan/templates/`, or the folder IOPCARE_PLAN_TEMPLATES_DIR
names; docs/templates.md describes the schema): programs for adult substance use, eating
disorders, depression and anxiety with suicidal ideation, bipolar disorder, PTSD, co-occurring
disorders and adolescents ship, and a general IOP template (`fallback`) drafts the plan when no
program template matches the diagnoses. The team then edits the draft and activates it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any

from iopcare.careplan import codes
from iopcare.careplan.domain import goals as goal_rules
from iopcare.kit.errors import (
    FailedPrecondition,
    FieldViolation,
    FieldViolations,
    InvalidArgument,
)

#: Goal comparators a template may use (FHIR quantity-comparator, and `=` for none).
COMPARATORS = frozenset({"<", "<=", ">=", ">"})
#: Goals whose number a discipline sets per patient, by who sets it: the measure they must be on
#: (the dietitian's weight target, on a NutritionOrder, sets goals on percent of expected body
#: weight: careplan/nutrition.py).
INDIVIDUAL_TARGETS = {"dietitian": codes.PERCENT_EBW}
#: Measure code systems a template goal may name: LOINC, or the program's own measures.
MEASURE_SYSTEMS = {"loinc": codes.LOINC, "program": codes.MEASURE_SYSTEM}
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"


@dataclass(frozen=True)
class Template:
    id: str
    title: str
    diagnosis_prefixes: tuple[str, ...]
    weeks: int
    activities: list[dict[str, Any]]
    goals: list[dict[str, Any]]
    #: The general plan, drafted when no other template matches (one per folder).
    fallback: bool = False
    #: Each group must be matched by one of the diagnoses (e.g. a substance use and a mood
    #: disorder for the co-occurring program); such a template takes precedence.
    requires_all: tuple[tuple[str, ...], ...] = ()
    #: Days from the plan's start to its first team review (empty: the program's setting).
    review_days: int | None = None
    #: Said in the plan's notes (e.g. what the team must confirm).
    note: str = ""
    #: Ages (whole years, inclusive) the program is for, e.g. (12, 17) for adolescents. When the
    #: patient's registered birth date gives their age, a template for other ages is never
    #: chosen, and one for their age comes first without its `requires_all` (which stands in for
    #: the age when no birth date is registered).
    age_range: tuple[int, int] | None = None
    #: More diagnoses that select the template, only for a patient whose age is in `age_range`.
    age_diagnosis_prefixes: tuple[str, ...] = ()
    #: The diagnoses it was chosen for, set by `template_for` (not in the JSON).
    matched: tuple[str, ...] = field(default=(), compare=False)


def check_template(data: object, source: str = "template") -> Template:
    """A template from its JSON data, or INVALID_ARGUMENT naming every wrong field."""
    if not isinstance(data, dict):
        raise InvalidArgument(
            f"{source} is not a program template", [FieldViolation(source, "a JSON object")]
        )
    problems = FieldViolations()
    for key, kind in (("id", str), ("title", str), ("weeks", int)):
        if not isinstance(data.get(key), kind) or not data.get(key):
            problems.add(f"{source}.{key}", f"required, a non-empty {kind.__name__}")
    fallback = data.get("fallback", False)
    if not isinstance(fallback, bool):
        problems.add(f"{source}.fallback", "must be true or false")
    prefixes = data.get("diagnosis_prefixes")
    if not isinstance(prefixes, list) or not all(isinstance(p, str) and p for p in prefixes):
        problems.add(f"{source}.diagnosis_prefixes", "must be a list of ICD-10-CM code prefixes")
        prefixes = []
    elif not prefixes and not fallback:
        problems.add(f"{source}.diagnosis_prefixes", "required unless the template is the fallback")
    groups = data.get("requires_all", [])
    if not isinstance(groups, list) or not all(
        isinstance(g, list) and g and all(isinstance(p, str) and p for p in g) for g in groups
    ):
        problems.add(f"{source}.requires_all", "must be a list of lists of ICD-10-CM prefixes")
        groups = []
    review = data.get("review_days")
    if review is not None and (not isinstance(review, int) or not 1 <= review <= 90):
        problems.add(f"{source}.review_days", "must be a number of days from 1 to 90")
    if not isinstance(data.get("note", ""), str):
        problems.add(f"{source}.note", "must be text")
    ages = data.get("age_range")
    if ages is not None and not (
        isinstance(ages, list)
        and len(ages) == 2
        and all(isinstance(a, int) and 0 <= a <= 130 for a in ages)
        and ages[0] <= ages[1]
    ):
        problems.add(f"{source}.age_range", "[youngest, oldest] in whole years")
        ages = None
    by_age = data.get("age_diagnosis_prefixes", [])
    if not isinstance(by_age, list) or not all(isinstance(p, str) and p for p in by_age):
        problems.add(f"{source}.age_diagnosis_prefixes", "must be a list of ICD-10-CM prefixes")
        by_age = []
    elif by_age and ages is None:
        problems.add(f"{source}.age_diagnosis_prefixes", "needs an age_range")
    activities = _checked_activities(data.get("activities"), source, problems)
    goals = _checked_goals(data.get("goals"), source, problems)
    problems.raise_if_any(f"{source} is not a valid program template")
    return Template(
        id=data["id"],
        title=data["title"],
        diagnosis_prefixes=tuple(p.upper() for p in prefixes),
        weeks=int(data["weeks"]),
        activities=list(activities),
        goals=list(goals),
        fallback=bool(fallback),
        requires_all=tuple(tuple(p.upper() for p in g) for g in groups),
        review_days=review,
        note=data.get("note", ""),
        age_range=(ages[0], ages[1]) if ages else None,
        age_diagnosis_prefixes=tuple(p.upper() for p in by_age),
    )


def _required_list(value: object, at: str, one: str, problems: FieldViolations) -> list[Any]:
    items: list[Any] = value if isinstance(value, list) else []
    if not items:
        problems.add(at, f"required, at least one {one}")
    return items


def _objects(
    items: list[Any], at: str, texts: tuple[str, ...], problems: FieldViolations
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each object of `items` and where it is (`at[i]`), its `texts` checked as required text; an
    item that is not an object is a problem."""
    for i, item in enumerate(items):
        where = f"{at}[{i}]"
        if not isinstance(item, dict):
            problems.add(where, "must be an object")
            continue
        for key in texts:
            if not isinstance(item.get(key), str) or not item.get(key):
                problems.add(f"{where}.{key}", "required text")
        yield where, item


def _checked_activities(
    activities: object, source: str, problems: FieldViolations
) -> list[dict[str, Any]]:
    at = f"{source}.activities"
    items = _required_list(activities, at, "activity", problems)
    for where, a in _objects(items, at, ("code", "display", "description"), problems):
        role = a.get("performer_role")
        owner = codes.ACTIVITY_OWNERS.get(str(a.get("code")))
        if role is not None and role not in codes.ROLE_DISPLAY:
            problems.add(f"{where}.performer_role", f"must be one of {sorted(codes.ROLE_DISPLAY)}")
        elif role is not None and owner is not None and role != owner:
            problems.add(
                f"{where}.performer_role", f"activity {a.get('code')} is the {owner}'s to perform"
            )
        if not isinstance(a.get("repeat"), dict) or not a.get("repeat"):
            problems.add(f"{where}.repeat", "required, a FHIR Timing.repeat")
    return items


def _checked_goals(goals: object, source: str, problems: FieldViolations) -> list[dict[str, Any]]:
    items = _required_list(goals, f"{source}.goals", "goal", problems)
    for where, g in _objects(items, f"{source}.goals", ("description", "measure"), problems):
        if g.get("comparator") not in COMPARATORS:
            problems.add(f"{where}.comparator", f"must be one of {sorted(COMPARATORS)}")
        if g.get("set_by") is not None:
            # An individual target (docs/nutrition.md): the discipline named sets the number
            # per patient, so the template gives none.
            if g.get("set_by") not in INDIVIDUAL_TARGETS:
                problems.add(f"{where}.set_by", f"one of {sorted(INDIVIDUAL_TARGETS)}")
            elif g.get("measure") != INDIVIDUAL_TARGETS[g["set_by"]]:
                problems.add(f"{where}.measure", f"{INDIVIDUAL_TARGETS[g['set_by']]}")
            if "value" in g:
                problems.add(f"{where}.value", "none: the target is set per patient")
        elif isinstance(g.get("value"), bool) or not isinstance(g.get("value"), int | float):
            problems.add(f"{where}.value", "required, a number")
        if g.get("system", "loinc") not in MEASURE_SYSTEMS:
            problems.add(f"{where}.system", f"must be one of {sorted(MEASURE_SYSTEMS)}")
        elif g.get("system") == "program" and g.get("measure") not in codes.PROGRAM_MEASURES:
            problems.add(f"{where}.measure", f"one of {sorted(codes.PROGRAM_MEASURES)}")
        if g.get("discipline") is not None and g.get("discipline") not in goal_rules.OWNER_ROLES:
            problems.add(f"{where}.discipline", f"one of {sorted(goal_rules.OWNER_ROLES)}")
    return items


def _normalised(diagnosis: str) -> str:
    return diagnosis.strip().upper()


def template_for(
    templates: Sequence[Template],
    diagnosis: str,
    other_diagnoses: Sequence[str] = (),
    *,
    age: int | None = None,
) -> Template:
    """The template for a patient's diagnoses (ICD-10-CM, e.g. F10.20): the requested diagnosis
    first, then the others in order (a handoff's inbound Conditions). For one diagnosis, a
    template whose `requires_all` groups the diagnoses meet comes before one without, then the
    longest matching prefix, then file order. With the patient's `age` known, a template whose
    `age_range` holds it comes first (its `requires_all` waived, its `age_diagnosis_prefixes`
    matching too) and one whose range excludes it is never chosen. No match: the fallback
    (general) template, whose draft notes that no program template matched.
    FAILED_PRECONDITION NO_TEMPLATE only when the list has no fallback either."""
    requested = _normalised(diagnosis)
    every = [requested, *(_normalised(d) for d in other_diagnoses if d.strip())]
    for code in dict.fromkeys(every):
        best: tuple[int, int, int, int] | None = None
        chosen: Template | None = None
        for order, template in enumerate(templates):
            if template.fallback:
                continue
            by_age = _for_age(template, age)
            if by_age is False:
                continue
            prefixes = template.diagnosis_prefixes + (
                template.age_diagnosis_prefixes if by_age else ()
            )
            length = max((len(p) for p in prefixes if code.startswith(p)), default=0)
            if not length:
                continue
            if not by_age and not all(
                any(d.startswith(p) for d in every for p in g) for g in template.requires_all
            ):
                continue
            rank = (1 if by_age else 0, 1 if template.requires_all else 0, length, -order)
            if best is None or rank > best:
                best, chosen = rank, template
        if chosen is not None:
            return _with_matched(chosen, tuple(dict.fromkeys(every)))
    for template in templates:
        if template.fallback:
            return _with_matched(template, tuple(dict.fromkeys(every)))
    raise FailedPrecondition(
        f"no program template covers diagnosis {requested!r}",
        reason="NO_TEMPLATE",
        diagnosis=requested,
    )


def _for_age(template: Template, age: int | None) -> bool | None:
    """True: the template is for the patient's known age; False: for other ages; None: the age
    is unknown or the template has no age range."""
    if age is None or template.age_range is None:
        return None
    youngest, oldest = template.age_range
    return youngest <= age <= oldest


def _with_matched(template: Template, diagnoses: tuple[str, ...]) -> Template:
    return replace(template, matched=diagnoses)


def diagnoses_in(additions: dict[str, Any]) -> list[str]:
    """The ICD-10-CM codes of the Conditions contained in a draft's additions, in order (the
    inbound diagnoses of a handoff)."""
    found: list[str] = []
    contained = additions.get("contained")
    for resource in contained if isinstance(contained, list) else []:
        if not isinstance(resource, dict) or resource.get("resourceType") != "Condition":
            continue
        code = resource.get("code")
        for coding in (code.get("coding") or []) if isinstance(code, dict) else []:
            if (
                isinstance(coding, dict)
                and coding.get("system") == ICD10CM
                and isinstance(coding.get("code"), str)
                and coding["code"].strip()
            ):
                found.append(coding["code"])
    return found


def draft_plan(
    template: Template, patient_id: str, diagnosis: str, team_id: str | None, start: date
) -> dict[str, Any]:
    """A draft CarePlan (FHIR R4 JSON): the template's activities with their timings over the
    program's weeks, and its goals as contained Goals (stored as Goals of their own)."""
    end = start + timedelta(weeks=template.weeks)
    bounds = {"boundsPeriod": {"start": start.isoformat(), "end": end.isoformat()}}
    goals = [_goal(goal, index, patient_id, end) for index, goal in enumerate(template.goals)]
    plan: dict[str, Any] = {
        "resourceType": "CarePlan",
        "contained": goals,
        "status": "draft",
        "intent": "plan",
        "title": template.title,
        "description": f"Drafted from the {template.title} template for diagnosis {diagnosis}."
        if diagnosis.strip()
        else f"Drafted from the {template.title} template (no ICD-10-CM diagnosis given).",
        "category": [{"coding": [dict(codes.US_CORE_ASSESS_PLAN)]}],
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
    notes = _notes(template, diagnosis)
    if notes:
        plan["note"] = [{"text": text} for text in notes]
    if template.review_days:
        due = start + timedelta(days=template.review_days)
        plan["extension"] = [{"url": codes.NEXT_REVIEW_EXTENSION, "valueDate": due.isoformat()}]
    return plan


def _goal(goal: dict[str, Any], index: int, patient_id: str, end: date) -> dict[str, Any]:
    """A template goal as a contained R4 Goal, due at the end of the program, owned by the
    template's `discipline` (else the one that follows its measure: `goals.default_discipline`).
    Stored, the plan's goals become Goals of their own (`goals.hoist_goals`). An individual
    target (`set_by`) is drafted without its number: the discipline sets it per patient."""
    drafted = _goal_with_value(goal, index, patient_id, end)
    if goal.get("set_by") is not None:
        del drafted["target"][0]["detailQuantity"]
    return drafted


def _goal_with_value(
    goal: dict[str, Any], index: int, patient_id: str, end: date
) -> dict[str, Any]:
    measure = {"target": [{"measure": {"coding": [{"code": goal["measure"]}]}}]}
    role = goal.get("discipline") or goal_rules.default_discipline(measure)
    return {
        "resourceType": "Goal",
        "id": f"goal{index}",
        "lifecycleStatus": "proposed",
        "category": [{"coding": [goal_rules.discipline_coding(role)]}],
        "description": {"text": goal["description"]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "target": [
            {
                "measure": {
                    "coding": [
                        {
                            "system": MEASURE_SYSTEMS[goal.get("system", "loinc")],
                            "code": goal["measure"],
                        }
                    ]
                },
                "detailQuantity": {
                    "value": goal.get("value"),
                    "comparator": goal["comparator"],
                    "unit": goal.get("unit", "{score}"),
                    "system": "http://unitsofmeasure.org",
                    "code": goal.get("unit", "{score}"),
                },
                "dueDate": end.isoformat(),
            }
        ],
    }


def fallback_note(diagnoses: Sequence[str]) -> str:
    """What the general plan says of itself (CarePlan.note)."""
    listed = ", ".join(dict.fromkeys(_normalised(d) for d in diagnoses if d.strip()))
    if not listed:
        return (
            "No ICD-10-CM diagnosis was given; the general IOP plan was used. Review it "
            "against the patient's needs."
        )
    return (
        f"No program template matched the diagnoses ({listed}); "
        "the general IOP plan was used. Review it against the patient's needs."
    )


def _notes(template: Template, diagnosis: str) -> list[str]:
    notes = []
    if template.fallback:
        notes.append(fallback_note(template.matched or (diagnosis,)))
    if template.note:
        notes.append(template.note)
    return notes


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
