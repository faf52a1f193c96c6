"""Goals are first-class (ADR 0022): every goal of a plan is a Goal resource of its own, owned by a
discipline, and the holistic view groups a patient's plan by discipline. Pure rules, no I/O.

- Ownership: a Goal's `category` carries the owning discipline as the SNOMED CT occupation of the
  care team role (the codes CareTeam.participant.role uses: 80584001 Psychiatrist, 224588003
  Psychotherapist, 40127002 Dietitian, 59058001 General physician, ...). Searchable as
  `Goal?category=http://snomed.info/sct|80584001`.
- Hoisting: a Goal contained in a CarePlan (a template draft, a handoff, a clinician's plan) is
  taken out of it when the plan is stored: it becomes a Goal of the plan's patient, with the
  plan's security labels, and every `#id` reference to it becomes `Goal/{id}`. Its local id is
  kept as an identifier (CONTAINED_GOAL_SYSTEM), which is how migration 0016's downgrade finds it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from iopcare.careplan import codes
from iopcare.careplan.domain import monitoring
from iopcare.careplan.domain.measures import Target
from iopcare.kit import labels, privacy
from iopcare.kit.errors import FieldViolations

#: Where a hoisted goal came from: its local id in the plan that contained it (`goal0`, ...).
CONTAINED_GOAL_SYSTEM = "https://iopcare.org/fhir/sid/contained-goal"
#: The disciplines the holistic view always shows, in order; other roles follow when they own a
#: goal, an activity or a task.
CORE_DISCIPLINES = ("psychiatrist", "therapist", "dietitian", "physician")
#: What each role's section is called.
SECTION_NAMES = {
    "psychiatrist": "psychiatry",
    "therapist": "therapy",
    "psychologist": "psychology",
    "dietitian": "nutrition",
    "physician": "medicine",
    "nurse": "nursing",
    "case-manager": "case management",
}
#: Who owns a goal on a measure when nobody said (a template goal without `discipline`, a handoff's
#: goal): the discipline that follows that measure in an IOP. Anything else: the psychiatrist,
#: who leads the team.
DISCIPLINE_BY_MEASURE = {
    codes.PHQ9_TOTAL: "therapist",
    codes.GAD7_TOTAL: "therapist",
    codes.AUDIT_C_TOTAL: "therapist",
    "101698-9": "therapist",  # PCL-5 total
    codes.PHQ9_ITEM9: "psychiatrist",
    codes.CSSRS_SCREEN_RISK: "psychiatrist",
    codes.MOOD_CHART_COMPLETION: "psychiatrist",
    codes.BODY_WEIGHT: "dietitian",
    "39156-5": "dietitian",  # Body mass index
    codes.CIWA_AR_TOTAL: "physician",
    codes.COWS_TOTAL: "physician",
    codes.ATTENDANCE_RATE: "case-manager",
}
DEFAULT_DISCIPLINE = "psychiatrist"
#: Roles that may own a goal: the clinical team roles (not the patient).
OWNER_ROLES = frozenset(role for role in codes.TEAM_ROLES if role != "patient")
#: A plan review this close (days) is a task of every discipline: each attests it.
REVIEW_TASK_DAYS = 7


# Ownership ---------------------------------------------------------------------------------------


def discipline_coding(role: str) -> dict[str, str]:
    code, display = codes.TEAM_ROLES[role]
    return {"system": codes.SNOMED, "code": code, "display": display}


def goal_discipline(goal: dict[str, Any]) -> str | None:
    """The role owning a goal (FHIR JSON): the first SNOMED CT occupation among its categories."""
    for concept in goal.get("category") or []:
        for coding in (concept.get("coding") or []) if isinstance(concept, dict) else []:
            if not isinstance(coding, dict) or coding.get("system") != codes.SNOMED:
                continue
            role = codes.TEAM_ROLE_BY_CODE.get(str(coding.get("code")))
            if role in OWNER_ROLES:
                return role
    return None


def goal_measures(goal: dict[str, Any]) -> list[str]:
    """The measure codes a goal's targets follow (FHIR JSON)."""
    found = []
    for target in goal.get("target") or []:
        concept = target.get("measure") if isinstance(target, dict) else None
        for coding in (concept.get("coding") or []) if isinstance(concept, dict) else []:
            if isinstance(coding, dict) and coding.get("code"):
                found.append(str(coding["code"]))
    return found


#: Monitoring measures (vitals, labs, drug screens) another discipline follows than the physician.
MONITORING_OWNERS = {
    monitoring.BODY_HEIGHT: "dietitian",
    monitoring.BMI: "dietitian",
    monitoring.LITHIUM: "psychiatrist",
    monitoring.VALPROATE: "psychiatrist",
}


def measure_discipline(code: str) -> str | None:
    """The discipline following a measure in the view (a monitoring measure: the physician's
    unless MONITORING_OWNERS says otherwise); None for a measure nobody owns."""
    if code in DISCIPLINE_BY_MEASURE:
        return DISCIPLINE_BY_MEASURE[code]
    if code in monitoring.CATALOG:
        return MONITORING_OWNERS.get(code, "physician")
    return None


def readable(viewer: privacy.Viewer, security: list[dict[str, Any]], owner: str | None) -> bool:
    """Whether the view's caller may see a labelled item (a goal, a measure, the plan's
    activities) in a discipline's section: unlabelled items are the team's; a labelled one goes
    through the notes' privacy rules as if the owning discipline had written it (no labelled
    content for administrators and services; a narrowed role reads its own discipline's)."""
    found = {str(s.get("code")) for s in security}
    sensitivity = frozenset(found & privacy.SENSITIVITY)
    confidentiality = next((c for c in reversed(privacy.CONFIDENTIALITY) if c in found), "N")
    if not sensitivity and confidentiality not in ("R", "V"):
        return True
    facts = privacy.NoteFacts(
        author="",
        author_role=owner or "",
        kind="plan",
        status="signed",
        confidentiality=confidentiality,
        sensitivity=sensitivity,
    )
    return privacy.may_read(viewer, facts).allowed


def default_discipline(goal: dict[str, Any], author_role: str | None = None) -> str:
    """Who owns a goal nobody assigned: the clinician who wrote it, else the discipline that
    follows its measure, else the psychiatrist (the team lead)."""
    if author_role in OWNER_ROLES:
        return str(author_role)
    for measure in goal_measures(goal):
        if measure in DISCIPLINE_BY_MEASURE:
            return DISCIPLINE_BY_MEASURE[measure]
    return DEFAULT_DISCIPLINE


def with_discipline(goal: dict[str, Any], author_role: str | None = None) -> dict[str, Any]:
    """The goal with its owning discipline as a category (unchanged when it names one)."""
    if goal_discipline(goal) is not None:
        return goal
    role = default_discipline(goal, author_role)
    return {
        **goal,
        "category": [*(goal.get("category") or []), {"coding": [discipline_coding(role)]}],
    }


# Hoisting contained goals ------------------------------------------------------------------------


@dataclass(frozen=True)
class Hoisted:
    """A plan without contained goals, and the goals taken out of it (new id, FHIR JSON without
    id or meta.versionId), in the order the plan contained them."""

    plan: dict[str, Any]
    goals: list[tuple[str, dict[str, Any]]]


def contained_goals(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        r
        for r in plan.get("contained") or []
        if isinstance(r, dict) and r.get("resourceType") == "Goal"
    ]


def hoist_goals(
    plan: dict[str, Any],
    patient_id: str,
    new_id: Callable[[], str],
    author_role: str | None = None,
    field_prefix: str = "fhir_json.CarePlan.",
) -> Hoisted:
    """Takes the contained Goals out of a plan (FHIR JSON): each becomes a Goal of the plan's
    patient with a new id, owned by a discipline (its own category, else `default_discipline`),
    carrying the plan's security labels and an identifier with its local id; the plan's `#local`
    references to it become `Goal/{id}`. INVALID_ARGUMENT for a goal of another subject."""
    goals = contained_goals(plan)
    if not goals:
        return Hoisted(plan, [])
    problems = FieldViolations()
    subject = f"Patient/{patient_id}"
    plan_labels = labels.security_of(plan)
    renamed: dict[str, str] = {}
    hoisted: list[tuple[str, dict[str, Any]]] = []
    for index, goal in enumerate(goals):
        reference = (goal.get("subject") or {}).get("reference")
        if reference not in (None, subject):
            problems.add(
                f"{field_prefix}contained[Goal {index}].subject", "must be the plan's patient"
            )
            continue
        goal_id = new_id()
        local = str(goal.get("id") or "")
        if local:
            renamed[f"#{local}"] = f"Goal/{goal_id}"
        copy: dict[str, Any] = json.loads(json.dumps(goal))
        copy.pop("id", None)
        copy["subject"] = {**(goal.get("subject") or {}), "reference": subject}
        security = labels.union(labels.security_of(goal), plan_labels)
        meta = {
            k: v
            for k, v in (copy.pop("meta", None) or {}).items()
            if k not in ("versionId", "lastUpdated")
        }
        if security:
            meta["security"] = security
        if meta:
            copy["meta"] = meta
        if local:
            copy["identifier"] = [
                *(copy.get("identifier") or []),
                {"system": CONTAINED_GOAL_SYSTEM, "value": local},
            ]
        hoisted.append((goal_id, with_discipline(copy, author_role)))
    problems.raise_if_any("the plan's contained goals cannot be stored")
    rest = [
        r
        for r in plan.get("contained") or []
        if not (isinstance(r, dict) and r.get("resourceType") == "Goal")
    ]
    result = _renamed({k: v for k, v in plan.items() if k != "contained"}, renamed)
    if rest:
        result = {**result, "contained": _renamed(rest, renamed)}
    return Hoisted(result, hoisted)


def _renamed(value: Any, renamed: dict[str, str]) -> Any:
    """`value` (FHIR JSON) with every reference in `renamed` replaced."""
    if isinstance(value, dict):
        out = {k: _renamed(v, renamed) for k, v in value.items()}
        reference = value.get("reference")
        if isinstance(reference, str) and reference in renamed:
            out["reference"] = renamed[reference]
        return out
    if isinstance(value, list):
        return [_renamed(v, renamed) for v in value]
    return value


def local_id(goal: dict[str, Any]) -> str | None:
    """The id a hoisted goal had in the plan that contained it (None for any other goal)."""
    for identifier in goal.get("identifier") or []:
        if (
            isinstance(identifier, dict)
            and identifier.get("system") == CONTAINED_GOAL_SYSTEM
            and identifier.get("value")
        ):
            return str(identifier["value"])
    return None


def contain_goals(plan: dict[str, Any], goals: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The reverse of `hoist_goals` (migration 0016's downgrade): the plan with the given Goals
    (`Goal/{id}` -> FHIR JSON carrying a CONTAINED_GOAL_SYSTEM identifier) contained again under
    their local ids, its references to them `#local` again. Goals without that identifier and
    goals the plan does not reference stay where they are."""
    renamed: dict[str, str] = {}
    contained: list[dict[str, Any]] = []
    for reference, goal in goals.items():
        local = local_id(goal)
        if local is None:
            continue
        renamed[reference] = f"#{local}"
        copy: dict[str, Any] = {"resourceType": "Goal", "id": local}
        security = labels.security_of(goal)
        if security:
            copy["meta"] = {"security": security}  # dom-4: no versionId or lastUpdated
        copy.update({k: v for k, v in goal.items() if k not in ("resourceType", "id", "meta")})
        kept = [
            i
            for i in goal.get("identifier") or []
            if not (isinstance(i, dict) and i.get("system") == CONTAINED_GOAL_SYSTEM)
        ]
        if kept:
            copy["identifier"] = kept
        else:
            copy.pop("identifier", None)
        contained.append(copy)
    if not contained:
        return plan
    result = _renamed(plan, renamed)
    result["contained"] = [*contained, *(plan.get("contained") or [])]
    return dict(result)


# Trends and the view by discipline ---------------------------------------------------------------


def trend(target: Target | None, history: list[float]) -> str:
    """How the last two values of a measure moved, read in the target's direction (lower is
    better for `<`, higher for `>`; without a target, lower): `improving`, `worsening`,
    `no-change`, or "" before there are two values."""
    if len(history) < 2:
        return ""
    delta = history[-1] - history[-2]
    if delta == 0:
        return "no-change"
    lower_is_better = target is None or target.comparator not in (">", ">=")
    return "improving" if (delta < 0) == lower_is_better else "worsening"


@dataclass(frozen=True)
class GoalFacts:
    """What the view's tasks look at of one goal."""

    reference: str
    description: str
    discipline: str
    open: bool
    measure: str | None
    has_value: bool
    achievement: str | None


@dataclass(frozen=True)
class ActivityFacts:
    """One plan activity: its owning discipline, what it is, and whether a session carries it."""

    owner: str | None
    description: str
    status: str | None
    booked: bool


@dataclass(frozen=True)
class Task:
    """Something a discipline has to do for this patient, from the plan's own data."""

    kind: str  # record-measure, review-goal, schedule-activity, attest-review
    text: str
    reference: str = ""


def activity_owner(code: str | None, performers: Iterable[str]) -> str | None:
    """The discipline owning an activity: by its code (ACTIVITY_OWNERS), else the role its
    performer names by display (a template's `performer_role`)."""
    owner = codes.ACTIVITY_OWNERS.get(code or "")
    if owner is not None:
        return owner
    by_display = {display: role for role, display in codes.ROLE_DISPLAY.items()}
    for performer in performers:
        if performer in by_display and by_display[performer] in OWNER_ROLES:
            return by_display[performer]
    return None


def open_tasks(
    role: str,
    goals: list[GoalFacts],
    activities: list[ActivityFacts],
    plan_active: bool,
    review_due: date | None,
    today: date,
) -> list[Task]:
    """A discipline's open tasks: a first value to record for each of its open goals that has
    none, each of its worsening goals to review, each of its activities of an active plan that no
    session carries yet, and the plan review to attest when it is due within REVIEW_TASK_DAYS."""
    tasks: list[Task] = []
    for goal in goals:
        if goal.discipline != role or not goal.open:
            continue
        if goal.measure and not goal.has_value:
            tasks.append(
                Task(
                    "record-measure",
                    f"record a first {goal.measure} for: {goal.description}",
                    goal.reference,
                )
            )
        elif goal.achievement == "worsening":
            tasks.append(Task("review-goal", f"worsening: {goal.description}", goal.reference))
    if plan_active:
        for activity in activities:
            if (
                activity.owner == role
                and not activity.booked
                and activity.status in (None, "not-started")
            ):
                tasks.append(Task("schedule-activity", f"schedule: {activity.description}"))
    if (
        plan_active
        and review_due is not None
        and review_due <= today + timedelta(days=REVIEW_TASK_DAYS)
    ):
        tasks.append(Task("attest-review", f"attest the plan review due {review_due.isoformat()}"))
    return tasks


def section_roles(owners: Iterable[str | None]) -> list[str]:
    """The sections of the view: the core disciplines, then every other role owning something,
    in the order of the team roles."""
    others = {o for o in owners if o is not None and o not in CORE_DISCIPLINES}
    return [*CORE_DISCIPLINES, *(r for r in codes.TEAM_ROLES if r in others)]


@dataclass
class Section:
    """One discipline's part of the view (the items are the service's own types)."""

    role: str
    goals: list[Any] = field(default_factory=list)
    activities: list[Any] = field(default_factory=list)
    measures: list[Any] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)

    @property
    def name(self) -> str:
        return SECTION_NAMES.get(self.role, self.role)
