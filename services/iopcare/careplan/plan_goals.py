"""A plan's goals are Goals of their own (ADR 0022): the contained Goals of a plan being stored
become Goal rows in the plan's transaction, and activating a plan activates its proposed goals.

Used by the plan's write path (`service.CarePlans`): a template draft, a handoff's draft and a
clinician's plan all go through it, so no stored plan contains a goal.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from iopcare.careplan import codes, fhir_map, nutrition, store
from iopcare.careplan.base import new_id, revise_by
from iopcare.careplan.domain import nutrition as nutrition_rules
from iopcare.careplan.domain.goals import hoist_goals
from iopcare.kit import audit, fhir
from iopcare.kit.auth import Principal
from iopcare.kit.db import UnitOfWork
from iopcare.kit.errors import FieldViolation, InvalidArgument
from iopcare.kit.versioned import Stored

#: A goal of a plan created or activated as active starts active too.
ACTIVATED_FROM = frozenset({"proposed", "planned", "accepted"})


def store_contained_goals(
    uow: UnitOfWork,
    principal: Principal,
    basis: str,
    plan: fhir.Resource,
    patient_id: str,
    now: datetime,
) -> fhir.Resource:
    """The plan without contained Goals: each is stored as version 1 of a Goal of the patient
    (its event and audit row with the plan's), owned by a discipline, and the plan refers to it
    as `Goal/{id}`. The plan as it was when it contains none."""
    document = fhir.to_dict(plan)
    hoisted = hoist_goals(document, patient_id, new_id, principal.role)
    if not hoisted.goals:
        return plan
    # A %EBW goal drafted without its number (`set_by` the dietitian) takes the target the
    # dietitian has already set, as the goals already stored did (nutrition.set_goal_targets).
    found = nutrition.current_target(uow.conn, patient_id)
    detail = nutrition_rules.goal_detail(found[1]) if found is not None else None
    for goal_id, goal in hoisted.goals:
        if plan.status == "active" and goal.get("lifecycleStatus") in ACTIVATED_FROM:
            goal = {**goal, "lifecycleStatus": "active"}
        if detail is not None:
            goal = _with_ebw_target(goal, detail)
        resource = fhir.parse_resource(goal, "Goal", field="fhir_json.CarePlan.contained")
        status = str(resource.lifecycleStatus)
        if status not in codes.GOAL_STATUSES:
            raise InvalidArgument(
                "the plan's contained goals cannot be stored",
                [FieldViolation("fhir_json.CarePlan.contained.lifecycleStatus", "a goal status")],
            )
        stored = Stored(
            goal_id, 1, patient_id, status, now, fhir.with_identity(resource, goal_id, 1, now)
        )
        store.goals.insert(uow.conn, stored, principal.reference, reason="from the care plan")
        store.JOURNAL.record_version(
            uow, principal, audit.CREATE, "Goal", stored, codes.EVENT_GOAL_CREATED, detail=basis
        )
    return fhir.parse_resource(hoisted.plan, "CarePlan", field="fhir_json")


def _with_ebw_target(goal: dict[str, Any], detail: dict[str, Any]) -> dict[str, Any]:
    """`goal` with the dietitian's %EBW target on each %EBW target that has no number yet."""
    targets = []
    for target in goal.get("target") or []:
        codings = (target.get("measure") or {}).get("coding") or []
        is_ebw = any(c.get("code") == codes.PERCENT_EBW for c in codings)
        if is_ebw and "detailQuantity" not in target and "detailRange" not in target:
            target = {**target, "detailQuantity": dict(detail)}
        targets.append(target)
    return {**goal, "target": targets} if targets else goal


def activate_goals(uow: UnitOfWork, principal: Principal, plan: fhir.Resource) -> list[Stored]:
    """The plan's proposed (planned, accepted) goals become active with it: a new version of
    each, with its event, in the plan's transaction."""
    changed = []
    for _, goal_id in fhir_map.plan_goal_ids(plan):
        current = store.goals.load(uow.conn, goal_id) if goal_id else None
        if current is None or current.status not in ACTIVATED_FROM:
            continue

        def reviser(item: Stored, version: int, now: datetime) -> tuple[str, str, str]:
            data: dict[str, Any] = fhir.to_dict(fhir.parse_resource(item.resource))
            data["lifecycleStatus"] = "active"
            resource = fhir.parse_resource(data, "Goal")
            return fhir.with_identity(resource, item.id, version, now), "active", "activate"

        revised, _ = revise_by(
            uow, principal, "Goal", current.id, current.version, reviser, "the plan was activated"
        )
        store.JOURNAL.publish_version(uow, "Goal", revised, codes.EVENT_GOAL_UPDATED)
        changed.append(revised)
    return changed
