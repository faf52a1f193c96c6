"""Changes to a booked session: cancelling it (or one patient leaving a group) and moving it.

Both are idempotent by request id (kit.requests): a retry gets the first result, a different
change under the same id is refused; without a request id the expected version keeps a repeat
from being applied twice.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from iopcare.kit import audit, fhir
from iopcare.kit.auth import Principal
from iopcare.kit.db import UnitOfWork
from iopcare.kit.errors import (
    Aborted,
    FailedPrecondition,
    FieldViolation,
    FieldViolations,
    InvalidArgument,
    NotFound,
    StaleVersion,
)
from iopcare.kit.requests import Asked
from iopcare.scheduling import codes, fhir_map, store
from iopcare.scheduling.appointment_events import patient_ids, publish_appointment
from iopcare.scheduling.bookings import Bookings, written
from iopcare.scheduling.checks import (
    check_calendars_open,
    check_free,
    check_id,
    check_text,
    check_version,
    may_manage_session,
    session_named,
)
from iopcare.scheduling.domain.attendance import is_late_cancellation
from iopcare.scheduling.domain.booking import MAX_SESSION, check_open_for_booking
from iopcare.scheduling.domain.calendar import Interval, check_range

#: The request log's answer to a retried cancellation: the session, and whether it was late.
LATE = "#late"


class Changes:
    """Cancelling, rescheduling and attendance changes of booked sessions: they work on the
    database, calendars, team access, zone and outbox of the `bookings` they change."""

    def __init__(self, bookings: Bookings) -> None:
        self.bookings = bookings
        self.db = bookings.db
        self.calendars = bookings.calendars
        self.access = bookings.access
        self.zone = bookings.zone
        self.notify_outbox = bookings.notify_outbox

    # Cancelling ----------------------------------------------------------------------------------
    def cancel(
        self,
        principal: Principal,
        appointment_id: str,
        expected_version: int,
        reason: str,
        patient_id: str,
        *,
        request_id: str = "",
    ) -> tuple[store.StoredAppointment, bool]:
        """Cancels the session, or takes `patient_id` out of a group session; returns the new
        version and whether it was late (under 24 hours before the start)."""
        name = f"Appointment/{appointment_id}"
        with store.JOURNAL.refusals(self.db, principal, audit.UPDATE, name, patient_id or None):
            problems = FieldViolations()
            check_id(appointment_id, "appointment_id", problems)
            check_id(patient_id, "patient_id", problems, required=False)
            check_version(expected_version, problems)
            if not reason.strip():
                problems.add("reason", "a cancellation needs a reason")
            check_text(reason, "reason", problems)
            problems.raise_if_any("the cancellation is invalid")
            body = ("cancel", appointment_id, expected_version, reason, patient_id)
            if not request_id:
                with UnitOfWork(self.db) as uow:
                    late = self._cancel_in(
                        uow, principal, name, expected_version, reason, patient_id
                    )
                    uow.commit()
                changed = True
            else:

                def _cancel(uow: UnitOfWork, _id: str) -> str:
                    late = self._cancel_in(
                        uow, principal, name, expected_version, reason, patient_id
                    )
                    return appointment_id + (LATE if late else "")

                # The log's answer says whether the first attempt was late, for a retry.
                asked = Asked(store.request_log, principal, "CancelAppointment", request_id, body)
                answer, changed = asked.create(self.db, _cancel, lambda: appointment_id)
                late = answer.endswith(LATE)
        if changed:
            self.notify_outbox()
        return written(self.db, appointment_id), late

    def _cancel_in(
        self,
        uow: UnitOfWork,
        principal: Principal,
        name: str,
        expected_version: int,
        reason: str,
        patient_id: str,
    ) -> bool:
        """The cancellation in `uow`; returns whether it was late."""
        current = session_named(uow, name)
        if patient_id and not current.is_group:
            raise InvalidArgument(
                "patient_id is only for leaving a group session",
                [FieldViolation("patient_id", "only for a group session")],
            )
        if patient_id:
            basis = self.access.basis(uow.conn, principal, patient_id)
        else:
            basis = may_manage_session(self.access, uow.conn, principal, current)
        if current.version != expected_version:
            raise StaleVersion(name, expected_version, current.version)
        if current.status not in {"proposed", "pending", "booked"}:
            raise FailedPrecondition(
                f"a {current.status} session cannot be cancelled", reason="SESSION_CLOSED"
            )
        now = datetime.now(UTC)
        late = is_late_cancellation(current.start, now)
        if patient_id:
            if patient_id not in patient_ids(uow.conn, current.id):
                raise NotFound(f"the patient is not in {name}", resource=name)
            # unseat announces the patient's leaving.
            revised = self.bookings.unseat(
                uow,
                current,
                patient_id,
                f"Patient/{patient_id} left{' late' if late else ''}: {reason}",
                now,
            )
        else:
            notify = patient_ids(uow.conn, current.id)
            revised = replace(
                current,
                version=current.version + 1,
                status="cancelled",
                resource=fhir_map.revised_appointment(
                    current.resource,
                    current.version + 1,
                    now,
                    status="cancelled",
                    cancellation=(reason, late),
                ),
            )
            store.set_occupancy(uow.conn, current.id, blocking=False)
            if not store.update_appointment(uow.conn, revised, current.version):
                raise StaleVersion(name, expected_version, current.version + 1)
            publish_appointment(uow, revised, codes.EVENT_APPOINTMENT_UPDATED, now, patients=notify)
        store.JOURNAL.audit(
            uow,
            principal,
            audit.UPDATE,
            resource=name,
            patient_id=patient_id or revised.patient_id or None,
            detail=f"cancelled{' (late)' if late else ''}; {basis}",
        )
        return late

    # Moving --------------------------------------------------------------------------------------
    def reschedule(
        self,
        principal: Principal,
        appointment_id: str,
        expected_version: int,
        start: datetime | None,
        end: datetime | None,
        reason: str,
        *,
        request_id: str = "",
    ) -> store.StoredAppointment:
        """Moves the session under the same rules as a booking (everyone in it free then)."""
        name = f"Appointment/{appointment_id}"
        with store.JOURNAL.refusals(self.db, principal, audit.UPDATE, name):
            problems = FieldViolations()
            check_id(appointment_id, "appointment_id", problems)
            check_version(expected_version, problems)
            if not reason.strip():
                problems.add("reason", "a change of time needs a reason")
            check_text(reason, "reason", problems)
            wanted = check_range(start, end, problems, longest=MAX_SESSION)
            if wanted is not None and wanted.start <= datetime.now(UTC):
                problems.add("start_time", "in the future")
            problems.raise_if_any("the change of time is invalid")
            assert wanted is not None
            body = ("reschedule", appointment_id, expected_version, start, end, reason)
            asked = Asked(store.request_log, principal, "RescheduleAppointment", request_id, body)
            changed = asked.change(
                self.db,
                appointment_id,
                lambda uow: self._move_in(uow, principal, name, expected_version, wanted, reason),
            )
        if changed:
            self.notify_outbox()
        return written(self.db, appointment_id)

    def _move_in(
        self,
        uow: UnitOfWork,
        principal: Principal,
        name: str,
        expected_version: int,
        wanted: Interval,
        reason: str,
    ) -> None:
        current = session_named(uow, name, lock=False)
        basis = may_manage_session(self.access, uow.conn, principal, current)
        if current.version != expected_version:
            raise StaleVersion(name, expected_version, current.version)
        check_open_for_booking(current.status)
        actors = [a for a, _, _ in store.participants(uow.conn, current.id)]
        store.lock_actors(uow.conn, actors)
        locked = store.load_appointment_for_update(uow.conn, current.id)
        if locked is None or locked.version != expected_version:
            raise StaleVersion(name, expected_version, locked.version if locked else 0)
        if sorted(a for a, _, _ in store.participants(uow.conn, current.id)) != sorted(actors):
            # Someone joined or left between the read and the locks: their calendar is not
            # locked by us, so start again rather than check it unlocked.
            raise Aborted("the session's participants changed meanwhile; retry")
        staff = [a for a in actors if not a.startswith("Patient/")]
        check_calendars_open(uow, self.calendars, self.zone, staff, wanted)
        patients = [a for a in actors if a.startswith("Patient/")] if current.is_group else []
        check_free(uow, actors, wanted, ignore=current.id, unnamed=patients)
        now = datetime.now(UTC)
        revised = replace(
            locked,
            version=locked.version + 1,
            start=wanted.start,
            end=wanted.end,
            resource=fhir_map.revised_appointment(
                locked.resource,
                locked.version + 1,
                now,
                start=wanted.start,
                end=wanted.end,
                comment=f"moved from {fhir.instant(locked.start)}: {reason}",
            ),
        )
        if not store.update_appointment(uow.conn, revised, expected_version):
            raise StaleVersion(name, expected_version, locked.version + 1)
        store.set_occupancy(uow.conn, current.id, start=wanted.start, end=wanted.end)
        publish_appointment(uow, revised, codes.EVENT_APPOINTMENT_UPDATED, now)
        store.JOURNAL.audit(
            uow,
            principal,
            audit.UPDATE,
            resource=name,
            patient_id=revised.patient_id or None,
            detail=f"rescheduled; {basis}",
        )
