"""The holistic view by discipline (GetPatientPlan's `disciplines`, ADR 0022): for each
discipline, its goals, the plan's activities it performs, the latest values of the measures it
follows and its open tasks, from careplan's own tables, left to what the caller may read."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from iopcare.careplan import codes, store
from iopcare.careplan.domain import monitoring
from iopcare.careplan.domain.goals import (
    ActivityFacts,
    GoalFacts,
    Section,
    activity_owner,
    measure_discipline,
    open_tasks,
    readable,
    section_roles,
    trend,
)
from iopcare.careplan.domain.progress import Attendance, attendance
from iopcare.kit import labels, privacy
from iopcare.kit.db import as_utc

if TYPE_CHECKING:
    from iopcare.careplan.patient_view import GoalProgress, PatientPlan


@dataclass(frozen=True)
class PlanActivity:
    code: str
    description: str
    status: str
    attendance: Attendance
    booked: bool
    owner: str


@dataclass(frozen=True)
class LatestMeasure:
    code: str
    observation_id: str
    value: float
    unit: str
    at: datetime
    trend: str


def plan_goal_order(plan: dict[str, Any]) -> dict[str, int]:
    """Each goal reference of the plan (`Goal/{id}`) to its position in the plan."""
    return {
        str(g.get("reference")): index
        for index, g in enumerate(plan.get("goal") or [])
        if isinstance(g, dict)
    }


def _activities(
    plan: dict[str, Any], view: PatientPlan, viewer: privacy.Viewer
) -> list[PlanActivity]:
    """The plan's activities with an owning discipline, when the caller may read the plan's."""
    security = labels.security_of(plan)
    booked = {s.description for s in view.upcoming}
    found = []
    for activity in plan.get("activity") or []:
        detail = activity.get("detail") or {}
        coding = ((detail.get("code") or {}).get("coding") or [{}])[0]
        code = str(coding.get("code") or "")
        performers = [str(p.get("display") or "") for p in detail.get("performer") or []]
        owner = activity_owner(code, performers)
        if owner is None or not readable(viewer, security, owner):
            continue
        description = str(
            detail.get("description") or (detail.get("code") or {}).get("text") or code
        )
        found.append(
            PlanActivity(
                code,
                description,
                str(detail.get("status") or ""),
                view.by_activity.get(description, attendance([])),
                description in booked,
                owner,
            )
        )
    return found


def _unit(code: str, resource: dict[str, Any]) -> str:
    spec = monitoring.CATALOG.get(code)
    if spec is not None and spec.unit:
        return spec.unit  # stored and trended in the canonical unit
    quantity = resource.get("valueQuantity") or {}
    return str(quantity.get("code") or quantity.get("unit") or "")


def _latest_measures(
    conn: Connection,
    viewer: privacy.Viewer,
    patient_id: str,
    goals: Sequence[GoalProgress],
) -> list[tuple[str, LatestMeasure]]:
    """(owning discipline, latest value) of each measure a goal or a discipline follows."""
    o = store.observation.c
    rows = conn.execute(
        select(o.id, o.code, o.value, o.effective)
        .where((o.patient_id == patient_id) & o.value.is_not(None))
        .where(o.status != "entered-in-error")
        .order_by(o.effective, o.recorded_at)
    ).all()
    history: dict[str, list[Any]] = {}
    for row in rows:
        history.setdefault(str(row.code), []).append(row)
    goal_of: dict[str, GoalProgress] = {}
    for each in reversed(goals):  # the first goal on a measure wins
        if each.measure:
            goal_of[each.measure] = each
    found = []
    for code, measured in sorted(history.items()):
        progress = goal_of.get(code)
        owner = progress.discipline if progress is not None else measure_discipline(code)
        if not owner:
            continue
        latest = measured[-1]
        loaded = store.load_observation(conn, str(latest.id))
        resource = json.loads(loaded[0]) if loaded is not None else {}
        if not readable(viewer, labels.security_of(resource), owner):
            continue
        target = progress.target if progress is not None else None
        found.append(
            (
                owner,
                LatestMeasure(
                    code,
                    str(latest.id),
                    float(latest.value),
                    _unit(code, resource),
                    as_utc(latest.effective),
                    trend(target, [float(r.value) for r in measured]),
                ),
            )
        )
    return found


def _review_due(plan: dict[str, Any]) -> date | None:
    for extension in plan.get("extension") or []:
        if extension.get("url") == codes.NEXT_REVIEW_EXTENSION and extension.get("valueDate"):
            try:
                return date.fromisoformat(str(extension["valueDate"]))
            except ValueError:  # a partial date ("2026-12") a client gave: no day to count from
                return None
    return None


def sections(
    conn: Connection, viewer: privacy.Viewer, view: PatientPlan, on: date
) -> list[Section]:
    """The view's sections, one per discipline (`section_roles`), from the goals the caller may
    read (`view.goals`, already left to those), the current plan's activities and the
    patient's measures."""
    plan = json.loads(view.care_plan.resource) if view.care_plan is not None else {}
    order = plan_goal_order(plan)
    goals = sorted(view.goals, key=lambda g: order.get(f"Goal/{g.goal.id}", len(order)))
    activities = _activities(plan, view, viewer)
    measures = _latest_measures(conn, viewer, view.patient_id, goals)
    facts = [
        GoalFacts(
            f"Goal/{g.goal.id}",
            g.description,
            g.discipline,
            g.goal.status in codes.GOAL_OPEN_STATUSES,
            g.measure,
            g.latest is not None,
            g.achievement,
        )
        for g in goals
    ]
    activity_facts = [ActivityFacts(a.owner, a.description, a.status, a.booked) for a in activities]
    active = view.care_plan is not None and view.care_plan.status == "active"
    roles = section_roles(
        [*(g.discipline for g in goals), *(a.owner for a in activities), *(m[0] for m in measures)]
    )
    result = []
    for role in roles:
        section = Section(role)
        section.goals = [g for g in goals if g.discipline == role]
        section.activities = [a for a in activities if a.owner == role]
        section.measures = [m for owner, m in measures if owner == role]
        section.tasks = open_tasks(role, facts, activity_facts, active, _review_due(plan), on)
        result.append(section)
    return result
