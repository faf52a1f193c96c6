"""Plan series: the sessions a CarePlan's timed activities ask for, proposed (or seated in the
matching group) up to a rolling horizon, and withdrawn when the plan changes or closes."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from iopcare.kit import fhir, labels
from iopcare.kit.db import Database, UnitOfWork
from iopcare.kit.errors import (
    AlreadyExists,
    FailedPrecondition,
)
from iopcare.kit.events import ReceivedEvent
from iopcare.scheduling import codes, fhir_map, store
from iopcare.scheduling.attendance import Attendance
from iopcare.scheduling.bookings import Bookings
from iopcare.scheduling.domain.family import SchoolHours, after_school, is_minor
from iopcare.scheduling.domain.timing import Occurrence, UnsupportedTiming, expand
from iopcare.scheduling.fhir_map import PlannedActivity

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Series:
    db: Database
    bookings: Bookings
    attendance: Attendance
    zone: ZoneInfo
    horizon: timedelta
    #: Days the whole program is closed: no series session is proposed on them.
    holidays: frozenset[date]
    notify_outbox: Callable[[], None]
    #: When minors are at school: their sessions are proposed after it (domain.family).
    school: SchoolHours = field(default_factory=SchoolHours)

    def withdraw(
        self,
        uow: UnitOfWork,
        plan_id: str,
        keep: set[str],
        now: datetime,
        reason: str,
        received: ReceivedEvent | None,
    ) -> None:
        """Cancels the plan's future sessions (and frees its group seats) whose occurrence is not
        in `keep`. The keys are released so that a resumed plan can propose them again."""
        traceparent = received.event.traceparent if received else None
        for current, key in store.future_occurrences(uow.conn, plan_id, now):
            if key in keep:
                continue
            # The rows are locked, so none moves on meanwhile: each cancellation is written.
            self.attendance.change_status(
                uow, current, "cancelled", reason, False, now, traceparent
            )
            store.release_occurrence(uow.conn, current.id)
        for appointment_id, actor, key in store.plan_seats(uow.conn, plan_id, now):
            if key in keep:
                continue
            session = store.load_appointment_for_update(uow.conn, appointment_id)
            if session is not None:
                self.bookings.unseat(uow, session, actor.split("/", 1)[1], reason, now)

    def _is_holiday(self, uow: UnitOfWork, performers: tuple[str, ...], day: date) -> bool:
        if day in self.holidays:
            return True
        for performer in performers:
            schedule = store.schedule_of(uow.conn, performer)
            if schedule is not None and day.isoformat() in schedule.closed_dates:
                return True
        return False

    def planned(
        self,
        uow: UnitOfWork,
        plan: fhir.Resource,
        window_start: datetime,
        window_end: datetime,
        *,
        anchor: datetime,
    ) -> list[tuple[PlannedActivity, Occurrence, str]]:
        """The occurrences of the plan's timed activities in the window that the plan wants
        (holidays skipped), each with its occurrence key; nothing is written.

        `anchor` is when the series began, not the window's start: a timing without days or
        bounds repeats from it, so each daily extension of the horizon continues the same
        cadence instead of starting a new one on the window's weekday."""
        planned = []
        patient_id = fhir.reference_id(plan.subject.reference if plan.subject else None, "Patient")
        birth = store.family.birth_date(uow.conn, patient_id) if patient_id else None
        for activity in fhir_map.planned_activities(plan):
            try:
                occurrences = expand(
                    activity.timing, window_start, window_end, self.zone, anchor=anchor
                )
            except UnsupportedTiming as exc:
                # Reported, not dropped: the team sees why no sessions appeared for this one.
                log.warning("CarePlan/%s activity %d: %s", plan.id, activity.index, exc)
                continue
            for occurrence in occurrences:
                local_day = occurrence.start.astimezone(self.zone).date()
                if self._is_holiday(uow, activity.performers, local_day):
                    continue
                if is_minor(birth, local_day):
                    occurrence = Occurrence(
                        *after_school(occurrence.start, occurrence.end, self.zone, self.school)
                    )
                key = f"{plan.id}/{activity.index}/{occurrence.start.isoformat()}"
                planned.append((activity, occurrence, key))
        return planned

    def fill(
        self,
        uow: UnitOfWork,
        plan: fhir.Resource,
        patient_id: str,
        planned: list[tuple[PlannedActivity, Occurrence, str]],
        traceparent: str | None,
    ) -> None:
        """Carries out the planned occurrences not carried out yet: a seat in the matching group
        session if there is one, else a proposed appointment; a clash with the patient's
        bookings is reported as a conflict event."""
        stored_at = datetime.now(UTC)
        created: list[str] = []
        plan_id = str(plan.id)
        # A session of a labelled plan's series says what the plan says ("Group therapy
        # (relapse prevention)" is SUD treatment): it carries all of the plan's labels
        # (42 CFR 2.12(d), test-matrix C7), so it is withheld wherever the plan is.
        security = labels.security_of(plan)
        for activity, occurrence, key in planned:
            if store.occurrence_exists(uow.conn, key):
                continue
            appointment_id = str(uuid.uuid4())
            resource = fhir_map.proposed_appointment(
                appointment_id, plan_id, patient_id, activity, occurrence, stored_at, security
            )
            if self._join_cohort(uow, activity.performers, occurrence, patient_id, key):
                continue
            clash = store.busy(
                uow.conn, [f"Patient/{patient_id}"], occurrence.start, occurrence.end
            )
            if clash:
                self._conflict(uow, patient_id, resource, "the patient is booked then")
                continue
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
            # The patient takes part, but a proposal holds no time: nobody agreed to it yet.
            store.add_occupancy(
                uow.conn,
                appointment_id,
                f"Patient/{patient_id}",
                "patient",
                occurrence.start,
                occurrence.end,
                blocking=False,
            )
            created.append(resource)
        if created:
            store.JOURNAL.publish(
                uow,
                codes.EVENT_APPOINTMENTS_PROPOSED,
                f"CarePlan/{plan_id}",
                key=patient_id,
                data=fhir_map.collection(created, str(uuid.uuid4()), stored_at),
                parent_trace=traceparent,
            )

    def _join_cohort(
        self,
        uow: UnitOfWork,
        performers: tuple[str, ...],
        occurrence: Occurrence,
        patient_id: str,
        key: str,
    ) -> bool:
        """Seats the patient in the group session its performer leads at that time, if any.
        A full group is reported as a conflict rather than silently booked elsewhere."""
        sessions = store.group_sessions_at(uow.conn, occurrence.start, list(performers))
        problem = ""
        for session_id in sessions:
            # A savepoint: a refused seat leaves nothing behind in the plan's transaction.
            seated_by_hand = False
            with uow.conn.begin_nested() as savepoint:
                try:
                    self.bookings.seat(uow, session_id, patient_id, datetime.now(UTC), key)
                except AlreadyExists:
                    savepoint.rollback()
                    seated_by_hand = True
                except FailedPrecondition as exc:
                    savepoint.rollback()
                    problem = exc.message
                    continue
            if seated_by_hand:
                # That seat carries out the occurrence: no conflict, and the series follows it.
                store.adopt_seat(uow.conn, session_id, f"Patient/{patient_id}", key)
            return True
        if sessions:
            session = store.load_appointment(uow.conn, sessions[0])
            # The group as the patient's event may show it: without the other patients.
            shown = (
                fhir_map.visible_to(session.resource, fhir_map.patients_in(session.resource))
                if session
                else ""
            )
            self._conflict(uow, patient_id, shown, f"no seat in the group session: {problem}")
            return True  # reported; no separate proposal beside the group
        return False

    def _conflict(self, uow: UnitOfWork, patient_id: str, resource: str, why: str) -> None:
        """Reports an occurrence the series could not carry out (issue 3: conflicts are events,
        not silence). The value is the Appointment that was wanted, with the reason."""
        data = fhir_map.with_comment(resource, why) if resource else resource
        subject = f"Patient/{patient_id}"
        store.JOURNAL.publish(uow, codes.EVENT_SERIES_CONFLICT, subject, key=patient_id, data=data)

    def extend_horizons(self, now: datetime | None = None) -> int:
        """The rolling horizon: each active series is extended to `now + horizon` (a periodic
        task runs this; each plan in its own transaction). Returns how many were extended."""
        now = now or datetime.now(UTC)
        target = now + self.horizon
        with self.db.read() as conn:
            due = store.series_due(conn, target)
        extended = 0
        for plan_id in due:
            with UnitOfWork(self.db) as uow:
                series = store.load_series(uow.conn, plan_id)
                if series is None or not series.active or series.horizon_end >= target:
                    continue
                plan = fhir.parse_resource(series.resource, "CarePlan")
                # Series stored before their start was recorded keep the old behaviour.
                anchor = series.started_at or series.horizon_end
                planned = self.planned(uow, plan, series.horizon_end, target, anchor=anchor)
                self.fill(uow, plan, series.patient_id, planned, None)
                store.save_series(uow.conn, replace(series, horizon_end=target))
                uow.commit()
                extended += 1
        if extended:
            self.notify_outbox()
        return extended
