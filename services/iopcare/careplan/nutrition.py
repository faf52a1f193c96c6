"""The dietitian's use cases (issue 13, part 2): the patient's individual nutrition plan (FHIR
NutritionOrder) and the weight target on it, which sets the patient's goals on percent of
expected body weight and turns every recorded weight into a %EBW measure (docs/nutrition.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from iopcare.careplan import codes, fhir_map, store
from iopcare.careplan.base import Asked, Change, ServiceBase, revise_by
from iopcare.careplan.domain import nutrition
from iopcare.careplan.domain.measures import Measure, achievement
from iopcare.careplan.domain.model import MAX_VERSION, apply_mask
from iopcare.kit import audit, fhir
from iopcare.kit.auth import Principal
from iopcare.kit.db import UnitOfWork
from iopcare.kit.errors import (
    FailedPrecondition,
    FieldViolation,
    FieldViolations,
    InvalidArgument,
    PermissionDenied,
)
from iopcare.kit.versioned import Stored

#: Orders whose weight target applies (the current plan), newest first among them.
CURRENT_STATUSES = frozenset({"active", "on-hold"})
CLOSED_STATUSES = frozenset({"completed", "revoked", "entered-in-error"})


def _require_writer(principal: Principal) -> None:
    if principal.role not in codes.NUTRITION_WRITERS:
        raise PermissionDenied(
            "the nutrition plan is the dietitian's (or the psychiatrist's, as team lead)",
            reason="NOT_THE_OWNER",
        )


def current_target(
    conn: Connection, patient_id: str
) -> tuple[Stored, nutrition.WeightTarget] | None:
    """The weight target of the patient's current nutrition plan (the most recently changed
    active or on-hold order carrying one), or None."""
    orders = [
        o
        for o in store.nutrition_orders.for_patient(conn, patient_id)
        if o.status in CURRENT_STATUSES
    ]
    for order in sorted(orders, key=lambda o: o.updated_at, reverse=True):
        target = nutrition.weight_target(fhir.load_json(order.resource))
        if target is not None:
            return order, target
    return None


def current_order(conn: Connection, patient_id: str) -> Stored | None:
    """The patient's current nutrition plan: the most recently changed active or on-hold order,
    else the most recently changed one (None when there is none)."""
    orders = sorted(
        store.nutrition_orders.for_patient(conn, patient_id), key=lambda o: o.updated_at
    )
    current = [o for o in orders if o.status in CURRENT_STATUSES] or orders
    return current[-1] if current else None


def derived_from(conn: Connection, weight: Measure, weight_id: str) -> list[Measure]:
    """The %EBW measures a recorded weight gave (a retry answers with what they found)."""
    o = store.observation.c
    rows = conn.execute(
        select(o.resource).where(
            (o.patient_id == weight.patient_id)
            & (o.code == codes.PERCENT_EBW)
            & (o.effective == weight.effective)
        )
    ).scalars()
    found = []
    for resource in rows:
        observation = fhir.parse_resource(resource, "Observation")
        sources = [d.reference for d in getattr(observation, "derivedFrom", None) or []]
        if f"Observation/{weight_id}" in sources:
            found.append(fhir_map.measure_from_fhir(observation))
    return found


def ebw_observation(
    patient_id: str,
    percent: float,
    weight_id: str,
    order_id: str,
    effective: datetime,
    security: list[dict[str, Any]] | None = None,
) -> Any:
    """The %EBW a recorded weight gives against the dietitian's target, as an R4 Observation
    derived from the weight and naming the order whose target it used; `security`: the labels of
    its sources (the weight's and the order's), which derived data keeps."""
    meta = {"meta": {"security": security}} if security else {}
    return fhir.parse_resource(
        {
            "resourceType": "Observation",
            **meta,
            "status": "final",
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                            "code": "exam",
                        }
                    ]
                }
            ],
            "code": {
                "coding": [
                    {
                        "system": codes.MEASURE_SYSTEM,
                        "code": codes.PERCENT_EBW,
                        "display": "Percent of expected body weight",
                    }
                ],
                "text": "Percent of expected body weight",
            },
            "subject": {"reference": f"Patient/{patient_id}"},
            "effectiveDateTime": fhir.instant(effective),
            "valueQuantity": {
                "value": percent,
                "unit": "%",
                "system": "http://unitsofmeasure.org",
                "code": "%",
            },
            "derivedFrom": [{"reference": f"Observation/{weight_id}"}],
            "basedOn": [{"reference": f"NutritionOrder/{order_id}"}],
        },
        "Observation",
    )


def set_goal_targets(
    uow: UnitOfWork, principal: Principal, patient_id: str, target: nutrition.WeightTarget, why: str
) -> list[Stored]:
    """The patient's open goals on %EBW aim at the dietitian's range (at or above its low end);
    each goal whose target changes gets a new version, its achievement read again from the %EBW
    measured so far."""
    detail = nutrition.goal_detail(target)
    history = store.values_over_time(uow.conn, patient_id, codes.PERCENT_EBW)
    changed = []
    for current in store.goals.for_patient(uow.conn, patient_id, lock=True):
        goal = fhir.parse_resource(current.resource)
        if goal.lifecycleStatus not in codes.GOAL_OPEN_STATUSES:
            continue
        data = fhir.to_dict(goal)
        touched = False
        targets = fhir_map.goal_targets(goal)
        for index, item in enumerate(data.get("target") or []):
            if targets[index].measure != codes.PERCENT_EBW:
                continue
            if item.get("detailQuantity") != detail:
                item.pop("detailRange", None)
                item["detailQuantity"] = dict(detail)
                touched = True
        if not touched:
            continue
        revised_goal = fhir.parse_resource(data, "Goal")
        ours = [t for t in fhir_map.goal_targets(revised_goal) if t.measure == codes.PERCENT_EBW]
        status = achievement(ours[0], history) if history else None
        if status is not None:
            revised_goal = fhir_map.with_achievement(revised_goal, status)

        def reviser(
            item: Stored, version: int, now: datetime, revised_goal: Any = revised_goal
        ) -> tuple[str, str, str]:
            return fhir.with_identity(revised_goal, item.id, version, now), item.status, "target"

        revised, _ = revise_by(uow, principal, "Goal", current.id, current.version, reviser, why)
        store.JOURNAL.publish_version(uow, "Goal", revised, codes.EVENT_GOAL_UPDATED)
        changed.append(revised)
    return changed


class NutritionPlans(ServiceBase):
    """The dietitian's nutrition plan of a patient: create, read, revise."""

    def _order(self, fhir_json: str) -> tuple[Any, dict[str, Any]]:
        order = self._parsed(fhir_json, "NutritionOrder")
        return order, fhir.to_dict(order)

    def create(self, principal: Principal, request_id: str, fhir_json: str) -> Stored:
        with self._audit_refusals(principal, audit.CREATE, "NutritionOrder"):
            order, data = self._order(fhir_json)
            patient_id = nutrition.check_order(data)
            _require_writer(principal)
        assert patient_id is not None
        target = nutrition.weight_target(data)

        def build(uow: UnitOfWork, order_id: str, now: datetime) -> str:
            if target is not None and order.status in CURRENT_STATUSES:
                set_goal_targets(
                    uow,
                    principal,
                    patient_id,
                    target,
                    f"weight target of NutritionOrder/{order_id}",
                )
            return fhir.with_identity(order, order_id, 1, now)

        return self._create_versioned(
            Asked(principal, request_id, {"fhir_json": fhir_json}),
            "NutritionOrder",
            patient_id,
            str(order.status),
            codes.EVENT_NUTRITION_ORDER_CREATED,
            build,
        )

    def get(self, principal: Principal, order_id: str) -> Stored:
        with self.db.read() as conn:
            order = store.nutrition_orders.load(conn, order_id)
        return self._audited_read(principal, f"NutritionOrder/{order_id}", order)

    def update(self, change: Change, fhir_json: str, mask: list[str] | None = None) -> Stored:
        """A new version of the order under `change.expected_version`; with a request id, once.
        With a `mask`, only the named top-level elements are taken from `fhir_json`."""
        principal, order_id, paths = change.principal, change.item_id, mask or []
        name = f"NutritionOrder/{order_id}"
        with self._audit_refusals(principal, audit.UPDATE, name):
            document = fhir.load_json(
                fhir_json, max_bytes=self.max_resource_bytes, field="fhir_json"
            )
            problems = FieldViolations()
            if not isinstance(document, dict) or document.get("resourceType") != "NutritionOrder":
                problems.add("fhir_json.resourceType", "must be NutritionOrder")
                document = {}
            if not 1 <= change.expected_version <= MAX_VERSION:
                problems.add("expected_version", "the version the change is based on (>= 1)")
            if document.get("id") not in (None, order_id):
                problems.add("fhir_json.NutritionOrder.id", "absent or the id in the request")
            problems.raise_if_any("the update request is invalid")
            if not paths:
                self._checked(document)
            else:
                apply_mask({}, document, paths, codes.NUTRITION_MASKABLE_ELEMENTS)
            _require_writer(principal)

            def _change(uow: UnitOfWork) -> None:
                basis: list[str] = []
                found: list[nutrition.WeightTarget | None] = []

                def reviser(current: Stored, version: int, now: datetime) -> tuple[str, str, str]:
                    basis.append(self.access.basis(uow.conn, principal, current.patient_id))
                    merged = apply_mask(
                        fhir.load_json(current.resource),
                        document,
                        paths,
                        codes.NUTRITION_MASKABLE_ELEMENTS,
                    )
                    order, patient_id = self._checked(merged)
                    if current.patient_id != patient_id:
                        raise InvalidArgument(
                            "the NutritionOrder cannot be stored",
                            [FieldViolation("fhir_json.NutritionOrder.patient", "cannot change")],
                        )
                    if current.status in CLOSED_STATUSES:
                        raise FailedPrecondition(
                            f"{name} is {current.status}: write a new order instead",
                            resource=name,
                        )
                    found.append(nutrition.weight_target(merged))
                    status = str(order.status)
                    kind = "update" if status == current.status else f"status:{status}"
                    return fhir.with_identity(order, order_id, version, now), status, kind

                revised, kind = revise_by(
                    uow,
                    principal,
                    "NutritionOrder",
                    order_id,
                    change.expected_version,
                    reviser,
                    change.reason or None,
                )
                target = found[0] if found else None
                if target is not None and revised.status in CURRENT_STATUSES:
                    set_goal_targets(
                        uow, principal, revised.patient_id, target, f"weight target of {name}"
                    )
                store.JOURNAL.record_version(
                    uow,
                    principal,
                    audit.UPDATE,
                    "NutritionOrder",
                    revised,
                    codes.EVENT_NUTRITION_ORDER_UPDATED,
                    detail=basis[0] if basis else kind,
                )

            asked = change.asked_or({"fhir_json": fhir_json, "mask": paths})
            self._change_once(change, "UpdateNutritionOrder", _change, asked)
        return self._changed("NutritionOrder", order_id)

    def _checked(self, document: dict[str, Any]) -> tuple[Any, str]:
        """A whole NutritionOrder document, valid FHIR and a valid plan: the model and the
        patient's id."""
        document = {k: v for k, v in document.items() if k != "meta"}
        order = fhir.parse_resource(document, "NutritionOrder", field="fhir_json")
        patient_id = nutrition.check_order(fhir.to_dict(order), creating=False)
        assert patient_id is not None
        return order, patient_id
