"""The scheduling service layer: proposing sessions from plans, and the patient's timetable."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from iopcare.kit import audit, fhir, paging, teams, topics
from iopcare.kit.auth import Principal
from iopcare.kit.db import Database, UnitOfWork
from iopcare.kit.errors import (
    FieldViolation,
    InvalidArgument,
    NotFound,
    StaleVersion,
)
from iopcare.kit.events import Event, ReceivedEvent, append_to_outbox, child_traceparent
from iopcare.scheduling import codes, fhir_map, store
from iopcare.scheduling.domain.attendance import check_attendance, is_late_cancellation
from iopcare.scheduling.domain.timing import UnsupportedTiming, expand

log = logging.getLogger(__name__)


class Scheduling:
    def __init__(
        self,
        db: Database,
        *,
        zone: ZoneInfo,
        horizon: timedelta = timedelta(days=14),
        notify_outbox: Callable[[], None] = lambda: None,
    ) -> None:
        self.db = db
        self.zone = zone
        self.horizon = horizon
        self.notify_outbox = notify_outbox
        self.access = teams.TeamAccess(store.care_team_member)

    # Events consumed ---------------------------------------------------------------------------
    def on_care_plan_created(self, uow: UnitOfWork, received: ReceivedEvent) -> None:
        """Proposes the first sessions of every timed activity of a new plan.

        The window starts at the event's time, not the wall clock, so replaying the event
        proposes exactly the same occurrences (and the occurrence key refuses them anyway).
        """
        plan = received.resource
        plan_id = plan.id
        patient_id = fhir.reference_id(plan.subject.reference, "Patient")
        if not plan_id or not patient_id or plan.status not in {"active", "draft"}:
            return
        window_start = received.event.time
        window_end = window_start + self.horizon
        stored_at = datetime.now(UTC)
        created: list[str] = []
        for activity in fhir_map.planned_activities(plan):
            try:
                occurrences = expand(
                    activity.timing, window_start, window_end, self.zone, anchor=window_start
                )
            except UnsupportedTiming as exc:
                # Reported, not dropped: the team sees why no sessions appeared for this one.
                log.warning("CarePlan/%s activity %d: %s", plan_id, activity.index, exc)
                continue
            for occurrence in occurrences:
                key = f"{plan_id}/{activity.index}/{occurrence.start.isoformat()}"
                if store.occurrence_exists(uow.conn, key):
                    continue
                appointment_id = str(uuid.uuid4())
                resource = fhir_map.proposed_appointment(
                    appointment_id, plan_id, patient_id, activity, occurrence, stored_at
                )
                store.insert_appointment(
                    uow.conn,
                    store.StoredAppointment(
                        appointment_id,
                        1,
                        patient_id,
                        "proposed",
                        occurrence.start,
                        occurrence.end,
                        plan_id,
                        resource,
                    ),
                    key,
                )
                created.append(resource)
        if not created:
            return
        append_to_outbox(
            uow.conn,
            store.outbox,
            topics.SCHEDULING,
            Event(
                type=codes.EVENT_APPOINTMENTS_PROPOSED,
                source=codes.SOURCE,
                subject=f"CarePlan/{plan_id}",
                key=patient_id,
                data=fhir_map.collection(created, str(uuid.uuid4()), stored_at),
                traceparent=child_traceparent(received.event.traceparent),
            ),
        )

    def on_care_plan_closed(self, uow: UnitOfWork, received: ReceivedEvent) -> None:
        """When a plan completes, is revoked or suspended, its future sessions are cancelled;
        past ones stay as they were (issue 3: "future appointments follow, past ones stay")."""
        plan = received.resource
        now = datetime.now(UTC)
        reason = f"care plan {plan.status}"
        for current in store.future_for_plan(uow.conn, plan.id, now):
            # The rows are locked, so none moves on meanwhile: each cancellation is written.
            self._change_status(
                uow, current, "cancelled", reason, False, now, received.event.traceparent
            )

    def _change_status(
        self,
        uow: UnitOfWork,
        current: store.StoredAppointment,
        status: str,
        reason: str,
        late: bool,
        now: datetime,
        traceparent: str | None = None,
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
                json.loads(current.resource), status, reason, late, current.version + 1, now
            ),
        )
        if not store.update_appointment(uow.conn, revised, current.version):
            return None
        append_to_outbox(
            uow.conn,
            store.outbox,
            topics.SCHEDULING,
            Event(
                type=codes.EVENT_APPOINTMENT_UPDATED,
                source=codes.SOURCE,
                subject=f"Appointment/{revised.id}/_history/{revised.version}",
                key=revised.patient_id,
                data=revised.resource,
                time=now,
                traceparent=child_traceparent(traceparent),
            ),
        )
        return revised

    # Queries -----------------------------------------------------------------------------------
    def list_appointments(
        self, principal: Principal, patient_id: str, page_size: int, page_token: str
    ) -> tuple[list[store.StoredAppointment], str]:
        basis = teams.require_access(
            self.db,
            store.audit_log,
            self.access,
            principal,
            audit.SEARCH,
            "Appointment",
            patient_id,
        )
        size = paging.page_size(page_size)
        position = paging.decode(page_token, {"start": str, "id": str})
        after = None
        if position is not None:
            try:
                after = (datetime.fromisoformat(position["start"]), str(position["id"]))
            except ValueError:
                raise InvalidArgument(
                    "page_token is not one this server issued",
                    [FieldViolation("page_token", "invalid page token")],
                ) from None
        with self.db.read() as conn:
            items = store.list_for_patient(conn, patient_id, size + 1, after)
        audit.record_separately(
            self.db,
            store.audit_log,
            principal,
            audit.SEARCH,
            resource="Appointment",
            patient_id=patient_id,
            detail=f"{min(len(items), size)} hits; {basis}",
        )
        next_token = ""
        if len(items) > size:
            items = items[:size]
            last = items[-1]
            next_token = paging.encode({"start": last.start.isoformat(), "id": last.id})
        return items, next_token

    # Attendance ---------------------------------------------------------------------------------
    def record_attendance(
        self,
        principal: Principal,
        appointment_id: str,
        expected_version: int,
        status: str,
        reason: str,
    ) -> store.StoredAppointment:
        """Records what happened to a session (arrived, fulfilled, no-show, cancelled) as a new
        version of the Appointment, with its event and audit row in one transaction."""
        name = f"Appointment/{appointment_id}"
        with (
            audit.refusals(self.db, store.audit_log, principal, audit.UPDATE, name),
            UnitOfWork(self.db) as uow,
        ):
            current = store.load_appointment(uow.conn, appointment_id)
            if current is None:
                raise NotFound(f"{name} not found", resource=name)
            basis = self.access.basis(uow.conn, principal, current.patient_id)
            if current.version != expected_version:
                raise StaleVersion(name, expected_version, current.version)
            check_attendance(current.status, status, reason)
            now = datetime.now(UTC)
            late = status == "cancelled" and is_late_cancellation(current.start, now)
            revised = self._change_status(uow, current, status, reason, late, now)
            if revised is None:
                raise StaleVersion(name, expected_version, current.version + 1)
            audit.record(
                uow.conn,
                store.audit_log,
                principal,
                audit.UPDATE,
                resource=name,
                patient_id=revised.patient_id,
                detail=f"{status}{' (late)' if late else ''}; {basis}",
            )
            uow.commit()
        self.notify_outbox()
        return revised
