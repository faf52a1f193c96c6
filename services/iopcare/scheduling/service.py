"""The scheduling service layer: proposing sessions from plans, and the patient's timetable."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from iopcare.kit import audit, fhir, labels, paging, teams
from iopcare.kit.access import PROGRAM_WIDE_ROLES
from iopcare.kit.auth import Principal
from iopcare.kit.db import Database, UnitOfWork
from iopcare.kit.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    FieldViolations,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    StaleVersion,
)
from iopcare.kit.events import ReceivedEvent
from iopcare.scheduling import codes, fhir_map, store
from iopcare.scheduling.bookings import Bookings
from iopcare.scheduling.calendars import Calendars
from iopcare.scheduling.domain.attendance import check_attendance, is_late_cancellation
from iopcare.scheduling.domain.booking import check_open_for_booking
from iopcare.scheduling.domain.calendar import EARLIEST, LATEST
from iopcare.scheduling.domain.intensity import (
    MISSED,
    Rule,
    Session,
    Week,
    missed_in_a_row,
    missed_streak_start,
    week_start,
    weekly,
)
from iopcare.scheduling.domain.timing import Occurrence, UnsupportedTiming, expand
from iopcare.scheduling.fhir_map import PlannedActivity

log = logging.getLogger(__name__)

#: FHIR appointmentstatus codes (R4).
APPOINTMENT_STATUSES = frozenset(
    {
        "proposed",
        "pending",
        "booked",
        "arrived",
        "fulfilled",
        "cancelled",
        "noshow",
        "entered-in-error",
        "checked-in",
        "waitlist",
    }
)
MISSED_IN_A_ROW = 2
#: How far back a streak of missed sessions is looked for.
DROPOUT_LOOKBACK = timedelta(days=60)
MAX_INTENSITY_RANGE = timedelta(days=371)


def _version(resource: fhir.Resource) -> int:
    meta = getattr(resource, "meta", None)
    return int(meta.versionId) if meta is not None and meta.versionId else 1


def _is_staff_reference(actor: str) -> bool:
    kind, _, rest = actor.partition("/")
    return kind in {"Practitioner", "Location"} and fhir.is_valid_id(rest)


def _sessions(rows: list[tuple[str, datetime, datetime, str | None, bool, str]]) -> list[Session]:
    """The patient's sessions as the intensity rules see them (store.patient_sessions rows)."""
    return [
        Session(start, end, attendance, cancelled)
        for _, start, end, attendance, cancelled, _ in rows
    ]


class Scheduling:
    def __init__(
        self,
        db: Database,
        *,
        zone: ZoneInfo,
        horizon: timedelta = timedelta(days=14),
        notify_outbox: Callable[[], None] = lambda: None,
        rules: dict[str, Rule] | None = None,
        default_program: str = "adult",
        holidays: frozenset[date] = frozenset(),
        checkin_cutoff: time = time(10, 0),
    ) -> None:
        self.db = db
        self.zone = zone
        self.horizon = horizon
        self.notify_outbox = notify_outbox
        self.access = teams.TeamAccess(store.care_team_member)
        self.calendars = Calendars(db, zone=zone, horizon=horizon)
        self.bookings = Bookings(
            db, self.calendars, self.access, zone=zone, notify_outbox=notify_outbox
        )
        self.rules = rules or {"adult": Rule(9, 19), "adolescent": Rule(6)}
        self.default_program = default_program
        #: Days the whole program is closed: no series session is proposed on them.
        self.holidays = holidays
        #: Local time by which a patient with a session that day checks in.
        self.checkin_cutoff = checkin_cutoff

    # Events consumed ---------------------------------------------------------------------------
    def on_care_plan_created(self, uow: UnitOfWork, received: ReceivedEvent) -> None:
        """Starts the plan's series: the sessions of every timed activity up to the horizon.

        The window starts at the event's time, not the wall clock, so replaying the event
        proposes exactly the same occurrences (and the occurrence key refuses them anyway).
        """
        plan = received.resource
        patient_id = fhir.reference_id(plan.subject.reference, "Patient")
        if not plan.id or not patient_id:
            return
        start = received.event.time
        existing = store.load_series(uow.conn, plan.id)
        series = store.StoredSeries(
            plan.id,
            patient_id,
            _version(plan),
            fhir.to_json(plan),
            start + self.horizon,
            plan.status in {"active", "draft"},
            existing.started_at if existing and existing.started_at else start,
        )
        if existing is not None and existing.version >= series.version:
            return  # a replay, or a late copy of a version already followed
        store.save_series(uow.conn, series)
        if series.active:
            planned = self._planned(
                uow, plan, start, series.horizon_end, anchor=series.started_at or start
            )
            self._fill(uow, plan, patient_id, planned, received.event.traceparent)

    def on_care_plan_changed(self, uow: UnitOfWork, received: ReceivedEvent) -> None:
        """An edited, activated or resumed plan: future sessions follow its activities now.

        Occurrences the plan no longer has are cancelled (reason "care plan changed"), new ones
        are proposed; a moved activity is both. Sessions that have started stay as they were.
        """
        plan = received.resource
        patient_id = fhir.reference_id(plan.subject.reference, "Patient")
        if not plan.id or not patient_id:
            return
        existing = store.load_series(uow.conn, plan.id)
        version = _version(plan)
        if existing is not None and existing.version >= version:
            return
        # The change takes effect from when it was made, but never reaches back past the present:
        # delivered late (a broker outage), it must not cancel or add sessions that have taken
        # place meanwhile ("past ones stay").
        now = max(received.event.time, datetime.now(UTC))
        horizon_end = max(existing.horizon_end if existing else now, now + self.horizon)
        active = plan.status in {"active", "draft"}
        started_at = existing.started_at if existing and existing.started_at else now
        store.save_series(
            uow.conn,
            store.StoredSeries(
                plan.id, patient_id, version, fhir.to_json(plan), horizon_end, active, started_at
            ),
        )
        if not active:
            self._withdraw(uow, plan.id, set(), now, f"care plan {plan.status}", received)
            return
        planned = self._planned(uow, plan, now, horizon_end, anchor=started_at)
        # Withdraw first, then fill: a moved activity's old session must give up the patient's
        # time before the new one is booked, or the old seat would block the new one.
        wanted = {key for _, _, key in planned}
        self._withdraw(uow, plan.id, wanted, now, "care plan changed", received)
        self._fill(uow, plan, patient_id, planned, received.event.traceparent)

    def on_care_plan_closed(self, uow: UnitOfWork, received: ReceivedEvent) -> None:
        """When a plan completes, is revoked or suspended, its future sessions are cancelled;
        past ones stay as they were (issue 3: "future appointments follow, past ones stay")."""
        plan = received.resource
        existing = store.load_series(uow.conn, plan.id)
        if existing is not None and existing.version > _version(plan):
            # A late copy of an older version (test-matrix A15): the series has since followed a
            # newer one (a resumed plan), whose sessions must not be withdrawn.
            return
        if existing is not None and existing.version < _version(plan):
            store.save_series(uow.conn, replace(existing, version=_version(plan), active=False))
        now = datetime.now(UTC)
        self._withdraw(uow, plan.id, set(), now, f"care plan {plan.status}", received)

    def _withdraw(
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
            self._change_status(uow, current, "cancelled", reason, False, now, traceparent)
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

    def _planned(
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
                key = f"{plan.id}/{activity.index}/{occurrence.start.isoformat()}"
                planned.append((activity, occurrence, key))
        return planned

    def _fill(
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
                planned = self._planned(uow, plan, series.horizon_end, target, anchor=anchor)
                self._fill(uow, plan, series.patient_id, planned, None)
                store.save_series(uow.conn, replace(series, horizon_end=target))
                uow.commit()
                extended += 1
        if extended:
            self.notify_outbox()
        return extended

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
        if status == "cancelled":
            store.set_occupancy(uow.conn, current.id, blocking=False)
        elif current.patient_id:
            store.set_occupancy(
                uow.conn, current.id, actor=f"Patient/{current.patient_id}", attendance=status
            )
        self.bookings.publish(
            uow, revised, codes.EVENT_APPOINTMENT_UPDATED, now, parent_trace=traceparent
        )
        return revised

    # Queries -----------------------------------------------------------------------------------
    def list_appointments(
        self,
        principal: Principal,
        *,
        patient_id: str,
        actor: str,
        statuses: list[str],
        start_from: datetime | None,
        start_before: datetime | None,
        page_size: int,
        page_token: str,
    ) -> tuple[list[store.StoredAppointment], str]:
        """A patient's sessions (their care team), or a practitioner's or room's (the
        practitioner, or a privileged role); either way a group session shows only the patients
        the caller may see."""
        with self._search_refusals(principal, patient_id):
            problems = FieldViolations()
            if bool(patient_id) == bool(actor):
                problems.add("patient_id", "exactly one of patient_id and actor")
            if actor and not _is_staff_reference(actor):
                problems.add("actor", "Practitioner/{id} or Location/{id}")
            for i, status in enumerate(statuses):
                if status not in APPOINTMENT_STATUSES:
                    problems.add(f"statuses[{i}]", "a FHIR appointmentstatus code")
            if start_from and start_before and start_before <= start_from:
                problems.add("end_time", "after start_time")
            size = paging.page_size(page_size)
            problems.raise_if_any("the listing is invalid")
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
        if patient_id:
            basis = teams.require_access(
                self.db,
                store.audit_log,
                self.access,
                principal,
                audit.SEARCH,
                "Appointment",
                patient_id,
            )
        else:
            with store.JOURNAL.refusals(self.db, principal, audit.SEARCH, "Appointment"):
                if principal.role not in PROGRAM_WIDE_ROLES and actor != principal.reference:
                    raise PermissionDenied(
                        "a practitioner lists only their own sessions", reason="NOT_OWN_CALENDAR"
                    )
            basis = "own-calendar" if actor == principal.reference else f"role:{principal.role}"
        with self.db.read() as conn:
            items = store.list_appointments(
                conn,
                f"Patient/{patient_id}" if patient_id else actor,
                size + 1,
                after,
                statuses=statuses,
                start_from=start_from,
                start_before=start_before,
            )
        next_token = ""
        if len(items) > size:
            items = items[:size]
            last = items[-1]
            next_token = paging.encode({"start": last.start.isoformat(), "id": last.id})
        cache: dict[str, bool] = {}
        seen: list[store.StoredAppointment] = []
        patients: set[str] = set()
        with self.db.read() as conn:
            for item in items:
                shown, visible = self.bookings.as_seen_by(principal, item, cache, conn)
                seen.append(shown)
                patients.update(visible)
        # One audit row per patient whose sessions the caller saw (C11), or one for the search.
        audited: list[str | None] = [*sorted(patients)] or [patient_id or None]
        for p in audited:
            store.JOURNAL.audit_separately(
                self.db,
                principal,
                audit.SEARCH,
                resource="Appointment",
                patient_id=p,
                detail=f"{len(seen)} hits; {basis}",
            )
        return seen, next_token

    # Attendance ---------------------------------------------------------------------------------
    def record_attendance(
        self,
        principal: Principal,
        appointment_id: str,
        expected_version: int,
        status: str,
        reason: str,
        patient_id: str = "",
    ) -> store.StoredAppointment:
        """Records what happened to a session (arrived, fulfilled, no-show, cancelled) as a new
        version of the Appointment, with its event and audit row in one transaction. In a group
        session each patient's attendance is their own (`patient_id`)."""
        name = f"Appointment/{appointment_id}"
        with (
            store.JOURNAL.refusals(self.db, principal, audit.UPDATE, name),
            UnitOfWork(self.db) as uow,
        ):
            current = store.load_appointment_for_update(uow.conn, appointment_id)
            if current is None:
                raise NotFound(f"{name} not found", resource=name)
            now = datetime.now(UTC)
            if current.is_group:
                revised, basis = self._group_attendance(
                    uow, principal, current, expected_version, status, reason, patient_id, now
                )
                whose = patient_id
            else:
                basis = self.access.basis(uow.conn, principal, current.patient_id)
                if current.version != expected_version:
                    raise StaleVersion(name, expected_version, current.version)
                check_attendance(current.status, status, reason)
                late = status == "cancelled" and is_late_cancellation(current.start, now)
                changed = self._change_status(uow, current, status, reason, late, now)
                if changed is None:
                    raise StaleVersion(name, expected_version, current.version + 1)
                revised, whose = changed, current.patient_id
                basis = f"{status}{' (late)' if late else ''}; {basis}"
            if status == MISSED:
                self._check_dropout(uow, whose, now)
            store.JOURNAL.audit(
                uow,
                principal,
                audit.UPDATE,
                resource=name,
                patient_id=whose,
                detail=basis,
            )
            uow.commit()
        self.notify_outbox()
        return revised

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
        self.bookings.publish(uow, revised, codes.EVENT_APPOINTMENT_UPDATED, now, [patient_id])
        return revised, f"{status}; {basis}"

    def _check_dropout(self, uow: UnitOfWork, patient_id: str, now: datetime) -> None:
        """A second missed session in a row raises the dropout-risk alert, once per streak."""
        sessions = _sessions(
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
        self._alert_once(uow, patient_id, codes.ALERT_DROPOUT, began.isoformat(), text, now)

    def _alert_once(
        self, uow: UnitOfWork, patient_id: str, kind: str, about: str, text: str, at: datetime
    ) -> bool:
        """Raises the patient's alert of `kind` about `about` (an ISO week, a day, a streak)
        unless it was raised before; returns whether it was raised now."""
        if not store.raise_alert_once(uow.conn, patient_id, kind, about):
            return False
        self._alert(uow, patient_id, codes.EVENT_FOR_ALERT[kind], text, at)
        return True

    def _alerts_for(
        self,
        patients: list[str],
        kind: str,
        due: Callable[[UnitOfWork, str], tuple[str, str] | None],
        at: datetime,
    ) -> int:
        """The periodic checks: for each patient, in its own unit of work, the alert `due` finds
        ((about, text), or None), raised once; returns how many were raised."""
        raised = 0
        for patient_id in patients:
            with UnitOfWork(self.db) as uow:
                found = due(uow, patient_id)
                if found is not None and self._alert_once(uow, patient_id, kind, *found, at):
                    raised += 1
                uow.commit()
        if raised:
            self.notify_outbox()
        return raised

    def _alert(
        self, uow: UnitOfWork, patient_id: str, event_type: str, text: str, at: datetime
    ) -> None:
        flag_id = str(uuid.uuid4())
        data = fhir_map.alert_flag(flag_id, patient_id, text, at)
        store.JOURNAL.publish(
            uow, event_type, f"Flag/{flag_id}/_history/1", key=patient_id, data=data, at=at
        )

    # Daily check-ins ----------------------------------------------------------------------------
    def record_check_in(
        self, principal: Principal, patient_id: str, now: datetime | None = None
    ) -> tuple[date, datetime, bool, bool]:
        """The patient's check-in for today (local): (day, time, late, already recorded)."""
        now = now or datetime.now(UTC)
        local_now = now.astimezone(self.zone)
        day = local_now.date()
        late = local_now.time() > self.checkin_cutoff
        with (
            store.JOURNAL.refusals(self.db, principal, audit.CREATE, "CheckIn", patient_id),
            UnitOfWork(self.db) as uow,
        ):
            basis = self.access.basis(uow.conn, principal, patient_id)
            at, was_late, already = store.check_in(uow.conn, patient_id, day, now, late)
            store.JOURNAL.audit(
                uow,
                principal,
                audit.CREATE,
                resource="CheckIn",
                patient_id=patient_id,
                detail=f"{day.isoformat()}{' (late)' if was_late else ''}; {basis}",
            )
            uow.commit()
        return day, at, was_late, already

    def check_missed_check_ins(self, now: datetime | None = None) -> int:
        """After today's cutoff: one missed-check-in alert per patient with a session today and
        no check-in (periodic task, so the team hears within minutes). Returns how many."""
        now = now or datetime.now(UTC)
        local_now = now.astimezone(self.zone)
        if local_now.time() <= self.checkin_cutoff:
            return 0
        day = local_now.date()
        start = datetime.combine(day, time(0), tzinfo=self.zone).astimezone(UTC)
        end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.zone).astimezone(UTC)
        with self.db.read() as conn:
            missing = store.missing_check_ins(conn, day, start, end)
        text = f"no daily check-in by {self.checkin_cutoff:%H:%M} on {day.isoformat()}"
        return self._alerts_for(
            missing, codes.ALERT_MISSED_CHECKIN, lambda _uow, _p: (day.isoformat(), text), now
        )

    # Intensity ----------------------------------------------------------------------------------
    def rule(self, program: str) -> Rule:
        found = self.rules.get(program or self.default_program)
        if found is None:
            raise InvalidArgument(
                f"no intensity rule for program {program!r}",
                [FieldViolation("program", f"one of {', '.join(sorted(self.rules))}")],
            )
        return found

    def intensity(
        self, principal: Principal, patient_id: str, first: str, last: str, program: str
    ) -> tuple[list[Week], bool]:
        with self._search_refusals(principal, patient_id):
            problems = FieldViolations()
            if not fhir.is_valid_id(patient_id):
                problems.add("patient_id", "1 to 64 characters of A-Z, a-z, 0-9, '-' and '.'")
            days: list[date] = []
            for field_name, text in (("start_date", first), ("end_date", last)):
                try:
                    day = date.fromisoformat(text)
                except ValueError:
                    problems.add(field_name, "a date YYYY-MM-DD")
                    continue
                if not EARLIEST.date() <= day < LATEST.date():
                    # Weeks are computed around the range: year 9999 would overflow into INTERNAL.
                    problems.add(field_name, f"between {EARLIEST.year} and {LATEST.year - 1}")
                    continue
                days.append(day)
            if len(days) == 2 and not days[0] <= days[1] <= days[0] + MAX_INTENSITY_RANGE:
                problems.add(
                    "end_date", f"on or after start_date, at most {MAX_INTENSITY_RANGE.days} days"
                )
            problems.raise_if_any("the intensity request is invalid")
            rule = self.rule(program)
        start = datetime.combine(week_start(days[0]), time(0), tzinfo=self.zone)
        end = datetime.combine(week_start(days[1]) + timedelta(days=7), time(0), tzinfo=self.zone)
        rows = teams.audited_search(
            self.db,
            store.audit_log,
            self.access,
            principal,
            "Appointment",
            patient_id,
            lambda conn: store.patient_sessions(
                conn, patient_id, start.astimezone(UTC), end.astimezone(UTC)
            ),
        )
        sessions = _sessions(rows)
        now = datetime.now(UTC)
        with self.db.read() as conn:  # the same patient, access checked and audited above
            admitted = self._admitted(conn, patient_id)
        weeks = weekly(sessions, days[0], days[1], rule, self.zone, now, admitted=admitted)
        return weeks, missed_in_a_row(sessions, MISSED_IN_A_ROW)

    def _search_refusals(
        self, principal: Principal, patient_id: str
    ) -> AbstractContextManager[None]:
        """Audits a search refused for its input, like every other refusal (test-matrix C11); the
        patient is named only when the id is a valid one."""
        named = patient_id if fhir.is_valid_id(patient_id) else None
        return store.JOURNAL.refusals(self.db, principal, audit.SEARCH, "Appointment", named)

    def _admitted(self, conn: Connection, patient_id: str) -> date | None:
        first = store.first_session_start(conn, patient_id)
        return first.astimezone(self.zone).date() if first is not None else None

    def check_intensity(self, now: datetime | None = None) -> int:
        """Raises the below-minimum alert for every patient whose last ended ISO week fell short
        of the default program's minimum (once per patient and week); returns how many."""
        now = now or datetime.now(UTC)
        rule = self.rule(self.default_program)
        this_monday = week_start(now.astimezone(self.zone).date())
        monday = this_monday - timedelta(days=7)
        start = datetime.combine(monday, time(0), tzinfo=self.zone).astimezone(UTC)
        end = datetime.combine(this_monday, time(0), tzinfo=self.zone).astimezone(UTC)
        with self.db.read() as conn:
            patients = store.patients_with_sessions(conn, start, end)

        def below_minimum(uow: UnitOfWork, patient_id: str) -> tuple[str, str] | None:
            sessions = _sessions(store.patient_sessions(uow.conn, patient_id, start, end))
            admitted = self._admitted(uow.conn, patient_id)
            week = weekly(sessions, monday, monday, rule, self.zone, now, admitted=admitted)[0]
            if not week.below_minimum:
                return None
            return week.label, (
                f"{week.label}: attended {week.attended_hours:g} h, below the program's "
                f"minimum of {rule.minimum:g} h a week"
            )

        return self._alerts_for(patients, codes.ALERT_BELOW_MINIMUM, below_minimum, now)
