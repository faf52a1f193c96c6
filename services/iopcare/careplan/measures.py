"""Goal and measure use cases: measurement-based care and crisis detection."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from iopcare.careplan import codes, fhir_map, nutrition, store
from iopcare.careplan.base import Asked, ServiceBase, new_id, revise_by
from iopcare.careplan.domain import monitoring
from iopcare.careplan.domain import nutrition as nutrition_rules
from iopcare.careplan.domain.goals import with_discipline
from iopcare.careplan.domain.measures import (
    Measure,
    achievement,
    check_measure,
    crisis_reasons,
    reading,
    screening,
)
from iopcare.careplan.domain.progress import attendance, attendance_rate
from iopcare.careplan.reviews import make_reviews_due
from iopcare.kit import audit, fhir, labels, privacy
from iopcare.kit.auth import Principal
from iopcare.kit.copying import by_name
from iopcare.kit.db import UnitOfWork, as_utc
from iopcare.kit.errors import (
    FieldViolation,
    InvalidArgument,
)
from iopcare.kit.requests import create_once
from iopcare.kit.versioned import Stored


@dataclass(frozen=True)
class Recorded:
    """What recording a measure did: the Observation as stored, the goals whose achievement it
    changed (on the first attempt of a request; a retry returns none), and any crisis."""

    observation_id: str
    resource: str
    updated_goals: list[Stored]
    crisis_reasons: list[str]


class Measures(ServiceBase):
    """Goals with measurable targets, and the outcome measures recorded against them."""

    def __init__(
        self,
        db: Any,
        *,
        thresholds: monitoring.Thresholds | None = None,
        **options: Any,
    ) -> None:
        super().__init__(db, **options)
        #: The program's monitoring thresholds (settings: IOPCARE_MONITORING_THRESHOLDS).
        self.thresholds = thresholds or monitoring.Thresholds()

    def _alerts(self, measure: Measure) -> list[monitoring.Alert]:
        """Why this measure must reach clinicians at once: a PHQ-9 crisis (psychiatrist and
        therapist) and every program threshold a monitoring measure crosses (physician and
        psychiatrist)."""
        found = [
            monitoring.Alert(
                "psychiatric",
                "urgent",
                str(measure.code),
                measure.value if measure.value is not None else measure.item9 or 0.0,
                "{score}",
                reason,
                ("psychiatrist", "therapist"),
            )
            for reason in crisis_reasons(measure)
        ]
        return found + screening(measure)[1] + monitoring.alerts(reading(measure), self.thresholds)

    def create_goal(self, principal: Principal, request_id: str, fhir_json: str) -> Stored:
        with self._audit_refusals(principal, audit.CREATE, "Goal"):
            goal = self._parsed(fhir_json, "Goal")
            patient_id = fhir.reference_id(
                goal.subject.reference if goal.subject else None, "Patient"
            )
            problems = []
            if not patient_id:
                problems.append(
                    FieldViolation("fhir_json.Goal.subject", "must reference a Patient")
                )
            if goal.lifecycleStatus not in codes.GOAL_STATUSES:
                problems.append(
                    FieldViolation("fhir_json.Goal.lifecycleStatus", "not a goal status")
                )
            if problems:
                raise InvalidArgument("the Goal cannot be created", problems)
            # Owned by a discipline (ADR 0022): the one it names, else its author's.
            goal = fhir.parse_resource(with_discipline(fhir.to_dict(goal), principal.role), "Goal")
        assert patient_id is not None
        return self._create_versioned(
            Asked(principal, request_id, {"fhir_json": fhir_json}),
            "Goal",
            patient_id,
            str(goal.lifecycleStatus),
            codes.EVENT_GOAL_CREATED,
            lambda uow, goal_id, now: fhir.with_identity(goal, goal_id, 1, now),
        )

    def get_goal(self, principal: Principal, goal_id: str) -> Stored:
        with self.db.read() as conn:
            goal = store.goals.load(conn, goal_id)
        return self._audited_read(principal, f"Goal/{goal_id}", goal)

    def get_measure(self, principal: Principal, observation_id: str) -> Stored:
        """One recorded measure, access as for the patient's record."""
        o = store.observation.c
        with self.db.read() as conn:
            row = conn.execute(
                select(o.patient_id, o.status, o.resource, o.recorded_at).where(
                    o.id == observation_id
                )
            ).first()
        item = (
            Stored(
                observation_id, 1, row.patient_id, row.status, as_utc(row.recorded_at), row.resource
            )
            if row is not None
            else None
        )
        return self._audited_read(principal, f"Observation/{observation_id}", item)

    def record(self, principal: Principal, request_id: str, fhir_json: str) -> Recorded:
        """Stores a measure, updates the achievement of the goals that target it, and raises a
        crisis event at once when the measure calls for one, all in one transaction."""
        updated: list[Stored] = []
        with self._audit_refusals(principal, audit.CREATE, "Observation"):
            observation, measure, canonical, alerts = self._checked(fhir_json)
            patient_id, code = str(measure.patient_id), str(measure.code)
            reasons = [a.reason for a in alerts]

            def _create(uow: UnitOfWork, observation_id: str) -> None:
                basis = self.access.basis(uow.conn, principal, patient_id)
                now = datetime.now(UTC)
                recorded = observation
                if canonical is not None and canonical.spec.substance_use:
                    recorded = _with_part2_labels(uow, patient_id, observation)
                stored = self._store_measure(uow, observation_id, recorded, measure, now)
                if alerts:
                    # At once, in the same transaction: the alert cannot be lost or outrun, and
                    # the patient's plans are due for review today. The event's Observation
                    # says why and whom to alert (kind, severity, measure, roles).
                    event = replace(stored, resource=fhir_map.with_alerts(stored.resource, alerts))
                    store.JOURNAL.publish_version(uow, "Observation", event, codes.EVENT_CRISIS)
                    make_reviews_due(
                        uow,
                        principal,
                        patient_id,
                        now.date(),
                        f"crisis: {'; '.join(reasons)}",
                    )
                history = store.values_over_time(uow.conn, patient_id, code)
                updated.extend(self._update_goals(uow, principal, patient_id, code, history))
                if code == codes.BODY_WEIGHT:
                    self._percent_ebw(
                        uow, principal, measure, observation_id, recorded, updated, reasons
                    )
                store.JOURNAL.audit(
                    uow,
                    principal,
                    audit.CREATE,
                    resource=f"Observation/{observation_id}",
                    patient_id=patient_id,
                    detail=basis,
                )

            observation_id, created = create_once(
                self.db,
                store.request_log,
                principal,
                "RecordMeasure",
                request_id,
                _create,
                new_id,
                request={"fhir_json": fhir_json},  # audited by the _audit_refusals around this
            )
        if created:
            self.notify_outbox()
        with self.db.read() as conn:
            loaded = store.load_observation(conn, observation_id)
        assert loaded is not None
        if created:
            return Recorded(observation_id, loaded[0], updated, reasons)
        # A retry answers with what the first attempt stored and found.
        first = fhir_map.measure_from_fhir(fhir.parse_resource(loaded[0]))
        found = self._alerts(first)
        if first.code == codes.BODY_WEIGHT:
            with self.db.read() as conn:
                for derived in nutrition.derived_from(conn, first, observation_id):
                    found += monitoring.alerts(reading(derived), self.thresholds)
        return Recorded(observation_id, loaded[0], [], [a.reason for a in found])

    def _checked(self, fhir_json: str) -> tuple[Any, Measure, Any, list[Any]]:
        """The request's Observation checked as a measure: (the Observation, the measure in its
        stored unit, its canonical reading or None, the alerts it raises); refused otherwise."""
        observation = self._parsed(fhir_json, "Observation")
        measure = fhir_map.measure_from_fhir(observation)
        check_measure(measure)
        meal = nutrition_rules.meal_of(fhir.to_dict(observation))
        nutrition_rules.check_measure(measure.code, measure.value, measure.unit, meal)
        assert measure.patient_id and measure.code and measure.effective and measure.status
        # Monitoring measures are read in canonical units (refused when they cannot be).
        canonical = reading(measure)
        alerts = self._alerts(measure)
        if canonical is not None and canonical.spec.kind != monitoring.PANEL:
            # Stored (trended, compared with goals) in the canonical unit.
            measure = replace(measure, value=canonical.value)
        level, _ = screening(measure)
        if level is not None and measure.value is None:
            # A C-SSRS screen's value is its risk level, computed from its answers.
            observation = fhir_map.with_value_integer(observation, int(level))
            measure = replace(measure, value=level)
        return observation, measure, canonical, alerts

    def _store_measure(
        self,
        uow: UnitOfWork,
        observation_id: str,
        observation: Any,
        measure: Measure,
        now: datetime,
    ) -> Stored:
        """Stores a validated measure (version 1) and its measure-recorded event."""
        assert measure.patient_id is not None
        stored = Stored(
            observation_id,
            1,
            measure.patient_id,
            str(measure.status),
            now,
            fhir.with_identity(observation, observation_id, 1, now),
        )
        uow.conn.execute(
            store.observation.insert().values(
                id=observation_id,
                **by_name(measure, "patient_id code status value effective"),
                resource=stored.resource,
                recorded_at=now,
            )
        )
        store.JOURNAL.publish_version(uow, "Observation", stored, codes.EVENT_MEASURE_RECORDED)
        return stored

    def _percent_ebw(
        self,
        uow: UnitOfWork,
        principal: Principal,
        weight: Measure,
        weight_id: str,
        weight_json: Any,
        updated: list[Stored],
        reasons: list[str],
    ) -> None:
        """A weight of a patient whose dietitian set a weight target is also a %EBW measure
        (docs/nutrition.md): stored, alerting below the instability threshold, and moving the
        goals on %EBW, in the weight's transaction."""
        patient_id = str(weight.patient_id)
        found = nutrition.current_target(uow.conn, patient_id)
        if found is None or weight.value is None or weight.effective is None:
            return
        order, target = found
        percent = nutrition_rules.percent_ebw(weight.value, target)
        sources = labels.union(labels.security_of(weight_json), labels.security_of(order.resource))
        observation = nutrition.ebw_observation(
            patient_id, percent, weight_id, order.id, weight.effective, sources
        )
        measure = fhir_map.measure_from_fhir(observation)
        now = datetime.now(UTC)
        stored = self._store_measure(uow, new_id(), observation, measure, now)
        alerts = monitoring.alerts(reading(measure), self.thresholds)
        if alerts:
            event = replace(stored, resource=fhir_map.with_alerts(stored.resource, alerts))
            store.JOURNAL.publish_version(uow, "Observation", event, codes.EVENT_CRISIS)
            found_reasons = [a.reason for a in alerts]
            make_reviews_due(
                uow, principal, patient_id, now.date(), f"crisis: {'; '.join(found_reasons)}"
            )
            reasons.extend(found_reasons)
        history = store.values_over_time(uow.conn, patient_id, codes.PERCENT_EBW)
        updated.extend(self._update_goals(uow, principal, patient_id, codes.PERCENT_EBW, history))

    def on_attendance(
        self, uow: UnitOfWork, principal: Principal, patient_id: str, statuses: list[str]
    ) -> None:
        """Attendance recorded in scheduling: when the patient has an open goal on attendance,
        the attendance rate is recorded as a measure and moves that goal like any measure."""
        counts = attendance(statuses)
        rate = attendance_rate(counts)
        if rate is None or not self._has_open_goal_on(uow, patient_id, codes.ATTENDANCE_RATE):
            return
        now = datetime.now(UTC)
        observation = fhir_map.attendance_observation(
            patient_id, rate, counts.attended + counts.missed, now
        )
        self._store_measure(
            uow, new_id(), observation, fhir_map.measure_from_fhir(observation), now
        )
        history = store.values_over_time(uow.conn, patient_id, codes.ATTENDANCE_RATE)
        self._update_goals(uow, principal, patient_id, codes.ATTENDANCE_RATE, history)

    def _has_open_goal_on(self, uow: UnitOfWork, patient_id: str, code: str) -> bool:
        for current in store.goals.for_patient(uow.conn, patient_id):
            goal = fhir.parse_resource(current.resource)
            if goal.lifecycleStatus in codes.GOAL_OPEN_STATUSES and any(
                t.measure == code for t in fhir_map.goal_targets(goal)
            ):
                return True
        return False

    def _update_goals(
        self,
        uow: UnitOfWork,
        principal: Principal,
        patient_id: str,
        code: str,
        history: list[float],
    ) -> list[Stored]:
        """New versions of the patient's open goals whose target is this measure, where the
        achievement status moves (improving, worsening, no-change, achieved)."""
        changed = []
        for current in store.goals.for_patient(uow.conn, patient_id, lock=True):
            goal = fhir.parse_resource(current.resource)
            if goal.lifecycleStatus not in codes.GOAL_OPEN_STATUSES:
                continue
            targets = [t for t in fhir_map.goal_targets(goal) if t.measure == code]
            if not targets:
                continue
            status = achievement(targets[0], history)
            if status is None or status == fhir_map.goal_achievement(goal):
                continue
            revised_goal = fhir_map.with_achievement(goal, status)

            def reviser(
                item: Stored,
                version: int,
                now: datetime,
                revised_goal: Any = revised_goal,
                status: str = status,
            ) -> tuple[str, str, str]:
                return (
                    fhir.with_identity(revised_goal, item.id, version, now),
                    item.status,
                    f"achievement:{status}",
                )

            revised, _ = revise_by(
                uow,
                principal,
                "Goal",
                current.id,
                current.version,
                reviser,
                f"measure {code} recorded",
            )
            store.JOURNAL.publish_version(uow, "Goal", revised, codes.EVENT_GOAL_UPDATED)
            changed.append(revised)
        return changed


def _with_part2_labels(uow: UnitOfWork, patient_id: str, observation: Any) -> Any:
    """A drug screen or withdrawal scale of a patient in an SUD program (a current care plan
    labelled as a 42 CFR Part 2 record: SUD, ETH or a subtype) carries the plan's Part 2 labels:
    it identifies the patient as in SUD treatment as surely as the plan does (kit/labels.py:
    restrictions follow the information)."""
    found: list[dict[str, Any]] = []
    for plan in store.plans.for_patient(uow.conn, patient_id):
        if plan.status == "entered-in-error":
            continue
        for label in labels.security_of(plan.resource):
            code = label.get("code")
            if isinstance(code, str) and privacy.is_part2([code]):
                found.append(label)
    if not found:
        return observation
    return fhir.parse_resource(labels.with_labels(fhir.to_json(observation), found), "Observation")
