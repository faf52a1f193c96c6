"""Attendance: what happened to a session (arrived, fulfilled, no-show, cancelled), one
patient at a time in a group; a second missed session in a row raises the dropout alert."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from iopcare.kit import audit, fhir, teams
from iopcare.kit.auth import Principal
from iopcare.kit.db import Database, UnitOfWork
from iopcare.kit.errors import (
    FieldViolation,
    FieldViolations,
    InvalidArgument,
    NotFound,
    StaleVersion,
)
from iopcare.kit.requests import Asked
from iopcare.scheduling import codes, fhir_map, store
from iopcare.scheduling.alerts import Alerts
from iopcare.scheduling.appointment_events import publish_appointment
from iopcare.scheduling.checks import session_named
from iopcare.scheduling.domain.attendance import check_attendance, is_late_cancellation
from iopcare.scheduling.domain.booking import check_open_for_booking
from iopcare.scheduling.domain.family import family_attendance
from iopcare.scheduling.domain.intensity import (
    MISSED,
    missed_streak_start,
)
from iopcare.scheduling.encounters import record_encounter
from iopcare.scheduling.intensity import MISSED_IN_A_ROW, sessions_of

#: How far back a streak of missed sessions is looked for.
DROPOUT_LOOKBACK = timedelta(days=60)


@dataclass(eq=False)
class Attendance:
    db: Database
    access: teams.TeamAccess
    alerts: Alerts
    notify_outbox: Callable[[], None]

    def record_attendance(
        self,
        principal: Principal,
        appointment_id: str,
        expected_version: int,
        status: str,
        reason: str,
        patient_id: str = "",
        *,
        request_id: str = "",
        family_attended: tuple[str, ...] = (),
    ) -> store.StoredAppointment:
        """Records what happened to a session (arrived, fulfilled, no-show, cancelled) as a new
        version of the Appointment, with its event and audit row in one transaction. In a group
        session each patient's attendance is their own (`patient_id`). Idempotent by `request_id`
        (kit.requests); without one, the expected version keeps a repeat from applying twice."""
        name = f"Appointment/{appointment_id}"
        with store.JOURNAL.refusals(self.db, principal, audit.UPDATE, name):
            body: tuple[object, ...] = (
                "attendance",
                appointment_id,
                expected_version,
                status,
                reason,
                patient_id,
            )
            if family_attended:  # so requests without it keep the fingerprints they had
                body = (*body, sorted(family_attended))
            asked = Asked(store.request_log, principal, "RecordAttendance", request_id, body)
            changed = asked.change(
                self.db,
                appointment_id,
                lambda uow: self._record(
                    uow,
                    principal,
                    name,
                    expected_version,
                    status,
                    reason,
                    patient_id,
                    family_attended,
                ),
            )
        if changed:
            self.notify_outbox()
        with self.db.read() as conn:
            recorded = store.load_appointment(conn, appointment_id)
        if recorded is None:  # pragma: no cover - changed by this request or its first attempt
            raise NotFound(f"{name} not found", resource=name)
        return recorded

    def _record(
        self,
        uow: UnitOfWork,
        principal: Principal,
        name: str,
        expected_version: int,
        status: str,
        reason: str,
        patient_id: str,
        family_attended: tuple[str, ...] = (),
    ) -> None:
        """The attendance in `uow`: the new version, its event(s) and its audit row."""
        current = session_named(uow, name)
        now = datetime.now(UTC)
        if current.is_group and family_attended:
            raise InvalidArgument(
                "a group session has no family participants",
                [FieldViolation("family_attended", "only for a family session")],
            )
        if current.is_group:
            revised, basis = self._group_attendance(
                uow, principal, current, expected_version, status, reason, patient_id, now
            )
            whose = patient_id
            record_encounter(uow, revised, whose, status, now)
        else:
            basis = self.access.basis(uow.conn, principal, current.patient_id)
            if current.version != expected_version:
                raise StaleVersion(name, expected_version, current.version)
            check_attendance(current.status, status, reason)
            family = family_attendance(
                fhir_map.family_in(current.resource), family_attended, status
            )
            late = status == "cancelled" and is_late_cancellation(current.start, now)
            changed = self.change_status(uow, current, status, reason, late, now, family=family)
            if changed is None:
                raise StaleVersion(name, expected_version, current.version + 1)
            whose = current.patient_id
            # The Encounter for billing, in the attendance's own transaction (ADR 0029).
            record_encounter(uow, changed, whose, status, now)
            basis = f"{status}{' (late)' if late else ''}; {basis}"
        if status == MISSED:
            self._check_dropout(uow, whose, now)
        store.JOURNAL.audit(
            uow, principal, audit.UPDATE, resource=name, patient_id=whose, detail=basis
        )

    def _group_attendance(
        self,
        uow: UnitOfWork,
        principal: Principal,
        current: store.StoredAppointment,
        expected_version: int,
        status: str,
        reason: str,
        patient_id: str,
        now: datetime,
    ) -> tuple[store.StoredAppointment, str]:
        name = f"Appointment/{current.id}"
        problems = FieldViolations()
        if not fhir.is_valid_id(patient_id):
            problems.add("patient_id", "required for a group session: whose attendance it is")
        if status == "cancelled":
            problems.add("status", "a patient leaves a group session with CancelAppointment")
        problems.raise_if_any("the attendance cannot be recorded")
        basis = self.access.basis(uow.conn, principal, patient_id)
        if current.version != expected_version:
            raise StaleVersion(name, expected_version, current.version)
        actor = f"Patient/{patient_id}"
        mine = [a for a in store.participants(uow.conn, current.id) if a[0] == actor]
        if not mine:
            raise NotFound(f"the patient is not in {name}", resource=name)
        check_open_for_booking(current.status)
        check_attendance(mine[0][2] or "booked", status, reason)
        revised = replace(
            current,
            version=current.version + 1,
            resource=fhir_map.with_participant_attendance(
                current.resource, patient_id, status, current.version + 1, now
            ),
        )
        if not store.update_appointment(uow.conn, revised, current.version):
            raise StaleVersion(name, expected_version, current.version + 1)
        store.set_occupancy(uow.conn, current.id, actor=actor, attendance=status)
        publish_appointment(uow, revised, codes.EVENT_APPOINTMENT_UPDATED, now, [patient_id])
        return revised, f"{status}; {basis}"

    def _check_dropout(self, uow: UnitOfWork, patient_id: str, now: datetime) -> None:
        """A second missed session in a row raises the dropout-risk alert, once per streak."""
        sessions = sessions_of(
            store.patient_sessions(
                uow.conn, patient_id, now - DROPOUT_LOOKBACK, now + DROPOUT_LOOKBACK
            )
        )
        began = missed_streak_start(sessions, MISSED_IN_A_ROW)
        if began is None:
            return
        # Keyed by the streak's first session, not the one just recorded: a third miss in a row
        # is the same streak and raises nothing new.
        text = f"{MISSED_IN_A_ROW} sessions missed in a row (dropout risk)"
        self.alerts.once(uow, patient_id, codes.ALERT_DROPOUT, began.isoformat(), text, now)

    def change_status(
        self,
        uow: UnitOfWork,
        current: store.StoredAppointment,
        status: str,
        reason: str,
        late: bool,
        now: datetime,
        traceparent: str | None = None,
        *,
        family: dict[str, str] | None = None,
    ) -> store.StoredAppointment | None:
        """The next version of a session with a new status, and its event; None when the
        session has moved on since `current` was read (nothing is written then)."""
        revised = store.StoredAppointment(
            current.id,
            current.version + 1,
            current.patient_id,
            status,
            current.start,
            current.end,
            current.care_plan_id,
            fhir_map.with_attendance(
                fhir_map.with_family_attendance(json.loads(current.resource), family or {}),
                status,
                reason,
                late,
                current.version + 1,
                now,
            ),
        )
        if not store.update_appointment(uow.conn, revised, current.version):
            return None
        if status == "cancelled":
            store.set_occupancy(uow.conn, current.id, blocking=False)
        elif current.patient_id:
            store.set_occupancy(
                uow.conn, current.id, actor=f"Patient/{current.patient_id}", attendance=status
            )
        publish_appointment(
            uow, revised, codes.EVENT_APPOINTMENT_UPDATED, now, parent_trace=traceparent
        )
        return revised
