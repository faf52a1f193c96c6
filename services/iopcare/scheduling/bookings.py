"""Booking: individual sessions, group sessions, cancelling and moving them.

How double booking is prevented under concurrency (docs/decisions/0007-booking-locks.md): every
booking first takes the calendar lock row of each actor it involves (patient, practitioners,
room) in sorted order, then reads the actors' overlapping bookings and writes its own. Two bookings
that share an actor therefore run one after the other, and the second one reads what the first
committed; bookings that share no actor run in parallel. Group seats are counted on the session's
row, changed only under that row's lock, and a CHECK constraint (seats_taken <= capacity) refuses
anything beyond the capacity even if a code path forgot the rule. On SQLite the write transaction
(BEGIN IMMEDIATE) already excludes every other writer; the same statements run there.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from iopcare.kit import audit, fhir
from iopcare.kit.access import PROGRAM_WIDE_ROLES
from iopcare.kit.auth import Principal
from iopcare.kit.db import Database, UnitOfWork
from iopcare.kit.errors import (
    Aborted,
    FailedPrecondition,
    FieldViolation,
    FieldViolations,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    StaleVersion,
)
from iopcare.kit.requests import create_once
from iopcare.kit.teams import TeamAccess
from iopcare.scheduling import codes, fhir_map, store
from iopcare.scheduling.calendars import CODE, Calendars
from iopcare.scheduling.domain.attendance import is_late_cancellation
from iopcare.scheduling.domain.booking import (
    MAX_SESSION,
    Busy,
    check_no_overlap,
    check_open_for_booking,
    check_participants,
    check_seat,
)
from iopcare.scheduling.domain.calendar import Interval, check_range

MAX_TEXT = 500


@dataclass(frozen=True)
class BookingRequest:
    patient_id: str
    practitioner_ids: tuple[str, ...]
    location_id: str
    start: datetime | None
    end: datetime | None
    service_type: str
    description: str
    care_plan_id: str


@dataclass(frozen=True)
class GroupRequest:
    location_id: str
    facilitator_ids: tuple[str, ...]
    start: datetime | None
    end: datetime | None
    capacity: int
    service_type: str
    description: str


def _check_id(value: str, field: str, problems: FieldViolations, required: bool = True) -> None:
    if not value and not required:
        return
    if not fhir.is_valid_id(value):
        problems.add(field, "1 to 64 characters of A-Z, a-z, 0-9, '-' and '.'")


def _check_staff(ids: tuple[str, ...], field: str, kind: str, problems: FieldViolations) -> None:
    """One or two distinct practitioners (or facilitators), each a valid id."""
    check_participants(list(ids), problems, field, kind=kind)
    for i, p in enumerate(ids):
        _check_id(p, f"{field}[{i}]", problems)


def _is_facilitator(conn: Connection, principal: Principal, a: store.StoredAppointment) -> bool:
    """Whether the caller is one of the session's practitioners (a group's facilitators)."""
    facilitators = {
        actor for actor, role, _ in store.participants(conn, a.id) if role == "practitioner"
    }
    return bool(principal.practitioner_id) and principal.reference in facilitators


def _check_text(value: str, field: str, problems: FieldViolations) -> None:
    if len(value) > MAX_TEXT:
        problems.add(field, f"at most {MAX_TEXT} characters")


def _check_code(value: str, field: str, problems: FieldViolations) -> None:
    if value and not CODE.match(value):
        problems.add(field, "a code of letters, digits, '.' and '-'")


class Bookings:
    def __init__(
        self,
        db: Database,
        calendars: Calendars,
        access: TeamAccess,
        *,
        zone: ZoneInfo,
        notify_outbox: Callable[[], None] = lambda: None,
    ) -> None:
        self.db = db
        self.calendars = calendars
        self.access = access
        self.zone = zone
        self.notify_outbox = notify_outbox

    # Events ------------------------------------------------------------------------------------
    def publish(
        self,
        uow: UnitOfWork,
        a: store.StoredAppointment,
        event_type: str,
        at: datetime,
        patients: list[str] | None = None,
        *,
        parent_trace: str | None = None,
    ) -> None:
        """The appointment's event, once per patient and keyed by the patient (their events stay
        in order on one partition); a group session's copy names only that patient, so no
        consumer learns who else is in the group. A session with no patient yet is keyed by its
        own id."""
        if not a.is_group:
            group_patients = [a.patient_id] if a.patient_id else []
        else:
            group_patients = patients if patients is not None else self._patient_ids(uow, a)
        subject = f"Appointment/{a.id}/_history/{a.version}"
        for patient in group_patients or [""]:
            data = a.resource
            if a.is_group:
                data = fhir_map.visible_to(a.resource, fhir_map.patients_in(a.resource) - {patient})
            key = patient or a.id
            store.JOURNAL.publish(
                uow, event_type, subject, key=key, data=data, at=at, parent_trace=parent_trace
            )

    def _patient_ids(self, uow: UnitOfWork, a: store.StoredAppointment) -> list[str]:
        return [
            actor.split("/", 1)[1]
            for actor, role, _ in store.participants(uow.conn, a.id)
            if role == "patient"
        ]

    def _respond(
        self, uow: UnitOfWork, appointment_id: str, patient_id: str, status: str, at: datetime
    ) -> None:
        """A patient's answer to a group session (AppointmentResponse), as an event."""
        response_id = str(uuid.uuid4())
        store.JOURNAL.publish(
            uow,
            codes.EVENT_APPOINTMENT_RESPONSE,
            f"AppointmentResponse/{response_id}/_history/1",
            key=patient_id,
            data=fhir_map.appointment_response(
                response_id, appointment_id, f"Patient/{patient_id}", status, "", at
            ),
            at=at,
        )

    # Rules that read the database --------------------------------------------------------------
    def _check_calendars_open(self, uow: UnitOfWork, actors: list[str], wanted: Interval) -> None:
        """Every practitioner and room with a calendar must be open for the whole session; one
        without a calendar cannot be booked (nobody said when they work)."""
        for actor in actors:
            schedule = store.schedule_of(uow.conn, actor)
            if schedule is None:
                raise FailedPrecondition(f"{actor} has no schedule", reason="NO_SCHEDULE")
            if not schedule.active:
                raise FailedPrecondition(
                    f"{actor}'s schedule is not active", reason="SCHEDULE_INACTIVE"
                )
            if not self.calendars.calendar(schedule).is_open(wanted, self.zone):
                raise FailedPrecondition(
                    f"{actor} is not available then (opening hours or a closed day)",
                    reason="OUTSIDE_OPENING_HOURS",
                )

    def _check_free(
        self,
        uow: UnitOfWork,
        actors: list[str],
        wanted: Interval,
        ignore: str | None = None,
        unnamed: Collection[str] = (),
    ) -> None:
        busy = [
            Busy(actor, Interval(s, e), appointment_id)
            for actor, s, e, appointment_id in store.busy(
                uow.conn, actors, wanted.start, wanted.end
            )
        ]
        check_no_overlap(wanted, busy, ignore, unnamed)

    def _may_manage_session(
        self, uow: UnitOfWork, principal: Principal, a: store.StoredAppointment
    ) -> str:
        """Why the caller may change a session as a whole: a facilitator of it, or a privileged
        role; for an individual session, the patient's care team."""
        if not a.is_group:
            return self.access.basis(uow.conn, principal, a.patient_id)
        if principal.role in PROGRAM_WIDE_ROLES:
            return f"role:{principal.role}"
        if _is_facilitator(uow.conn, principal, a):
            return "facilitator"
        raise PermissionDenied(
            "only the group's facilitators may change it", reason="NOT_FACILITATOR"
        )

    def _insert_booked(
        self,
        uow: UnitOfWork,
        principal: Principal,
        appointment_id: str,
        *,
        kind: str,
        patient_id: str,
        practitioner_ids: tuple[str, ...],
        location_id: str,
        wanted: Interval,
        service_type: str,
        description: str,
        care_plan_id: str,
        capacity: int,
        basis: str | None,
    ) -> None:
        """Writes a checked booking: the Appointment (version 1), a participant row for each of
        its patient, practitioners and room, its event and its audit row, in the caller's unit
        of work. An individual session has its patient; a group session starts with none."""
        now = datetime.now(UTC)
        a = store.StoredAppointment(
            appointment_id,
            1,
            patient_id,
            "booked",
            wanted.start,
            wanted.end,
            care_plan_id or None,
            fhir_map.booked_appointment(
                appointment_id,
                kind=kind,
                patients=[patient_id] if patient_id else [],
                practitioners=list(practitioner_ids),
                location=location_id or None,
                start=wanted.start,
                end=wanted.end,
                service_type=service_type,
                description=description,
                care_plan_id=care_plan_id,
                capacity=capacity,
                at=now,
            ),
            kind=kind,
            capacity=capacity,
            seats_taken=0,
        )
        store.insert_appointment(uow.conn, a, None)
        participants = [(f"Practitioner/{p}", "practitioner") for p in practitioner_ids]
        if patient_id:
            participants.append((f"Patient/{patient_id}", "patient"))
        if location_id:
            participants.append((f"Location/{location_id}", "location"))
        for actor, role in participants:
            store.add_occupancy(uow.conn, a.id, actor, role, a.start, a.end)
        if a.is_group:
            self.publish(uow, a, codes.EVENT_GROUP_SESSION_CREATED, now, patients=[])
        else:
            self.publish(uow, a, codes.EVENT_APPOINTMENT_BOOKED, now)
        store.JOURNAL.audit(
            uow,
            principal,
            audit.CREATE,
            resource=f"Appointment/{a.id}",
            patient_id=patient_id or None,
            detail=basis,
        )

    # Individual sessions -------------------------------------------------------------------------
    def book(
        self, principal: Principal, request_id: str, r: BookingRequest
    ) -> store.StoredAppointment:
        with store.JOURNAL.refusals(
            self.db, principal, audit.CREATE, "Appointment", r.patient_id or None
        ):
            problems = FieldViolations()
            _check_id(r.patient_id, "patient_id", problems)
            _check_staff(r.practitioner_ids, "practitioner_ids", "practitioners", problems)
            _check_id(r.location_id, "location_id", problems, required=False)
            _check_id(r.care_plan_id, "care_plan_id", problems, required=False)
            _check_code(r.service_type, "service_type", problems)
            _check_text(r.description, "description", problems)
            wanted = check_range(r.start, r.end, problems, longest=MAX_SESSION)
            problems.raise_if_any("the booking is invalid")
            assert wanted is not None

            def _create(uow: UnitOfWork, appointment_id: str) -> None:
                basis = self.access.basis(uow.conn, principal, r.patient_id)
                staff = [f"Practitioner/{p}" for p in r.practitioner_ids]
                if r.location_id:
                    staff.append(f"Location/{r.location_id}")
                patient = f"Patient/{r.patient_id}"
                store.lock_actors(uow.conn, [patient, *staff])
                self._check_calendars_open(uow, staff, wanted)
                self._check_free(uow, [patient, *staff], wanted)
                self._insert_booked(
                    uow,
                    principal,
                    appointment_id,
                    kind="individual",
                    patient_id=r.patient_id,
                    practitioner_ids=r.practitioner_ids,
                    location_id=r.location_id,
                    wanted=wanted,
                    service_type=r.service_type,
                    description=r.description,
                    care_plan_id=r.care_plan_id,
                    capacity=1,
                    basis=basis,
                )

            return self._once(principal, "BookAppointment", request_id, r, _create)

    # Group sessions ------------------------------------------------------------------------------
    def create_group(
        self, principal: Principal, request_id: str, r: GroupRequest
    ) -> store.StoredAppointment:
        with store.JOURNAL.refusals(self.db, principal, audit.CREATE, "Appointment"):
            problems = FieldViolations()
            _check_id(r.location_id, "location_id", problems)
            _check_staff(r.facilitator_ids, "facilitator_ids", "facilitators", problems)
            if r.capacity < 0:
                problems.add("capacity", "0 (the room's) or more")
            _check_code(r.service_type, "service_type", problems)
            _check_text(r.description, "description", problems)
            wanted = check_range(r.start, r.end, problems, longest=MAX_SESSION)
            problems.raise_if_any("the group session is invalid")
            assert wanted is not None
            if principal.role not in PROGRAM_WIDE_ROLES and principal.role not in {
                "case-manager",
                "group-facilitator",
                "therapist",
                "psychologist",
                "psychiatrist",
            }:
                raise PermissionDenied(
                    "this role cannot create group sessions", reason="ROLE_NOT_ALLOWED"
                )

            def _create(uow: UnitOfWork, appointment_id: str) -> None:
                room = f"Location/{r.location_id}"
                staff = [f"Practitioner/{p}" for p in r.facilitator_ids]
                store.lock_actors(uow.conn, [room, *staff])
                schedule = store.schedule_of(uow.conn, room)
                if schedule is None or schedule.kind != "room":
                    raise FailedPrecondition(f"{room} has no room schedule", reason="NO_SCHEDULE")
                capacity = r.capacity or schedule.capacity
                if capacity > schedule.capacity:
                    raise FailedPrecondition(
                        f"the room holds {schedule.capacity} patients",
                        reason="OVER_ROOM_CAPACITY",
                        capacity=str(schedule.capacity),
                    )
                self._check_calendars_open(uow, [room, *staff], wanted)
                self._check_free(uow, [room, *staff], wanted)
                self._insert_booked(
                    uow,
                    principal,
                    appointment_id,
                    kind="group",
                    patient_id="",
                    practitioner_ids=r.facilitator_ids,
                    location_id=r.location_id,
                    wanted=wanted,
                    service_type=r.service_type,
                    description=r.description,
                    care_plan_id="",
                    capacity=capacity,
                    basis=None,
                )

            return self._once(principal, "CreateGroupSession", request_id, r, _create)

    def join(
        self, principal: Principal, request_id: str, appointment_id: str, patient_id: str
    ) -> store.StoredAppointment:
        name = f"Appointment/{appointment_id}"
        with store.JOURNAL.refusals(self.db, principal, audit.UPDATE, name, patient_id or None):
            problems = FieldViolations()
            _check_id(appointment_id, "appointment_id", problems)
            _check_id(patient_id, "patient_id", problems)
            problems.raise_if_any("the request is invalid")

            def _join(uow: UnitOfWork, _new_id: str) -> str:
                basis = self.access.basis(uow.conn, principal, patient_id)
                self.seat(uow, appointment_id, patient_id, datetime.now(UTC))
                store.JOURNAL.audit(
                    uow,
                    principal,
                    audit.UPDATE,
                    resource=name,
                    patient_id=patient_id,
                    detail=f"joined; {basis}",
                )
                return appointment_id

            body = (appointment_id, patient_id)
            return self._once(principal, "JoinGroupSession", request_id, body, _join)

    def seat(
        self,
        uow: UnitOfWork,
        appointment_id: str,
        patient_id: str,
        now: datetime,
        occurrence_key: str | None = None,
    ) -> store.StoredAppointment:
        """Gives the patient a seat in a group session, or raises why not (nothing written).

        `occurrence_key` names the plan activity occurrence the seat carries out, when the plan's
        series seated the patient (so a change of the plan can find and release it)."""
        name = f"Appointment/{appointment_id}"
        patient = f"Patient/{patient_id}"
        # The patient's lock first, then the session's row: every path takes actor locks before
        # appointment rows, so no two transactions wait on each other in a cycle.
        store.lock_actors(uow.conn, [patient])
        session = store.load_appointment_for_update(uow.conn, appointment_id)
        if session is None:
            raise NotFound(f"{name} not found", resource=name)
        if not session.is_group:
            raise FailedPrecondition(f"{name} is not a group session", reason="NOT_A_GROUP")
        check_open_for_booking(session.status)
        check_seat(session.capacity, self._patient_ids(uow, session), patient_id)
        self._check_free(uow, [patient], Interval(session.start, session.end))
        joined = replace(
            session,
            version=session.version + 1,
            seats_taken=session.seats_taken + 1,
            resource=fhir_map.revised_appointment(
                session.resource,
                session.version + 1,
                now,
                add_patient=patient_id,
                remove_patient=patient_id,
            ),
        )
        if not store.update_appointment(uow.conn, joined, session.version):
            raise Aborted("the session changed meanwhile; retry")
        store.add_occupancy(
            uow.conn,
            session.id,
            patient,
            "patient",
            session.start,
            session.end,
            occurrence_key=occurrence_key,
        )
        self.publish(uow, joined, codes.EVENT_APPOINTMENT_BOOKED, now, patients=[patient_id])
        self._respond(uow, session.id, patient_id, "accepted", now)
        return joined

    def unseat(
        self,
        uow: UnitOfWork,
        session: store.StoredAppointment,
        patient_id: str,
        note: str,
        now: datetime,
    ) -> store.StoredAppointment:
        """Takes the patient out of a group session (the seat frees; they stay named, declined)."""
        revised = replace(
            session,
            version=session.version + 1,
            seats_taken=session.seats_taken - 1,
            resource=fhir_map.revised_appointment(
                session.resource,
                session.version + 1,
                now,
                patient_status=(patient_id, "declined"),
                comment=note,
            ),
        )
        if not store.update_appointment(uow.conn, revised, session.version):
            raise Aborted("the session changed meanwhile; retry")
        store.set_occupancy(
            uow.conn, session.id, actor=f"Patient/{patient_id}", active=False, occurrence_key=None
        )
        self._respond(uow, session.id, patient_id, "declined", now)
        self.publish(uow, revised, codes.EVENT_APPOINTMENT_UPDATED, now, patients=[patient_id])
        return revised

    # Changes -------------------------------------------------------------------------------------
    def cancel(
        self,
        principal: Principal,
        appointment_id: str,
        expected_version: int,
        reason: str,
        patient_id: str,
    ) -> tuple[store.StoredAppointment, bool]:
        name = f"Appointment/{appointment_id}"
        with (
            store.JOURNAL.refusals(self.db, principal, audit.UPDATE, name, patient_id or None),
            UnitOfWork(self.db) as uow,
        ):
            problems = FieldViolations()
            _check_id(appointment_id, "appointment_id", problems)
            _check_id(patient_id, "patient_id", problems, required=False)
            if expected_version < 1:
                problems.add("expected_version", "required, >= 1")
            if not reason.strip():
                problems.add("reason", "a cancellation needs a reason")
            _check_text(reason, "reason", problems)
            problems.raise_if_any("the cancellation is invalid")
            current = store.load_appointment_for_update(uow.conn, appointment_id)
            if current is None:
                raise NotFound(f"{name} not found", resource=name)
            if patient_id and not current.is_group:
                raise InvalidArgument(
                    "patient_id is only for leaving a group session",
                    [FieldViolation("patient_id", "only for a group session")],
                )
            if patient_id:
                basis = self.access.basis(uow.conn, principal, patient_id)
            else:
                basis = self._may_manage_session(uow, principal, current)
            if current.version != expected_version:
                raise StaleVersion(name, expected_version, current.version)
            if current.status not in {"proposed", "pending", "booked"}:
                raise FailedPrecondition(
                    f"a {current.status} session cannot be cancelled", reason="SESSION_CLOSED"
                )
            now = datetime.now(UTC)
            late = is_late_cancellation(current.start, now)
            if patient_id:
                if f"Patient/{patient_id}" not in {
                    a
                    for a, role, _ in store.participants(uow.conn, current.id)
                    if role == "patient"
                }:
                    raise NotFound(f"the patient is not in {name}", resource=name)
                revised = self.unseat(
                    uow,
                    current,
                    patient_id,
                    f"Patient/{patient_id} left{' late' if late else ''}: {reason}",
                    now,
                )
                notify = []
            else:
                notify = self._patient_ids(uow, current)
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
            if not patient_id:  # a patient leaving was announced by unseat
                self.publish(uow, revised, codes.EVENT_APPOINTMENT_UPDATED, now, patients=notify)
            store.JOURNAL.audit(
                uow,
                principal,
                audit.UPDATE,
                resource=name,
                patient_id=patient_id or revised.patient_id or None,
                detail=f"cancelled{' (late)' if late else ''}; {basis}",
            )
            uow.commit()
        self.notify_outbox()
        return revised, late

    def reschedule(
        self,
        principal: Principal,
        appointment_id: str,
        expected_version: int,
        start: datetime | None,
        end: datetime | None,
        reason: str,
    ) -> store.StoredAppointment:
        name = f"Appointment/{appointment_id}"
        with (
            store.JOURNAL.refusals(self.db, principal, audit.UPDATE, name),
            UnitOfWork(self.db) as uow,
        ):
            problems = FieldViolations()
            _check_id(appointment_id, "appointment_id", problems)
            if expected_version < 1:
                problems.add("expected_version", "required, >= 1")
            if not reason.strip():
                problems.add("reason", "a change of time needs a reason")
            _check_text(reason, "reason", problems)
            wanted = check_range(start, end, problems, longest=MAX_SESSION)
            now = datetime.now(UTC)
            if wanted is not None and wanted.start <= now:
                problems.add("start_time", "in the future")
            problems.raise_if_any("the change of time is invalid")
            assert wanted is not None
            current = store.load_appointment(uow.conn, appointment_id)
            if current is None:
                raise NotFound(f"{name} not found", resource=name)
            basis = self._may_manage_session(uow, principal, current)
            if current.version != expected_version:
                raise StaleVersion(name, expected_version, current.version)
            check_open_for_booking(current.status)
            actors = [a for a, _, _ in store.participants(uow.conn, current.id)]
            store.lock_actors(uow.conn, actors)
            locked = store.load_appointment_for_update(uow.conn, appointment_id)
            if locked is None or locked.version != expected_version:
                raise StaleVersion(name, expected_version, locked.version if locked else 0)
            if sorted(a for a, _, _ in store.participants(uow.conn, current.id)) != sorted(actors):
                # Someone joined or left between the read and the locks: their calendar is not
                # locked by us, so start again rather than check it unlocked.
                raise Aborted("the session's participants changed meanwhile; retry")
            staff = [a for a in actors if not a.startswith("Patient/")]
            self._check_calendars_open(uow, staff, wanted)
            patients = [a for a in actors if a.startswith("Patient/")] if current.is_group else []
            self._check_free(uow, actors, wanted, ignore=current.id, unnamed=patients)
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
            self.publish(uow, revised, codes.EVENT_APPOINTMENT_UPDATED, now)
            store.JOURNAL.audit(
                uow,
                principal,
                audit.UPDATE,
                resource=name,
                patient_id=revised.patient_id or None,
                detail=f"rescheduled; {basis}",
            )
            uow.commit()
        self.notify_outbox()
        return revised

    def _once(
        self,
        principal: Principal,
        operation: str,
        request_id: str,
        body: object,
        create: Callable[[UnitOfWork, str], str | None],
    ) -> store.StoredAppointment:
        """Runs an idempotent create (once per request id and body: kit.requests), wakes the
        relay and returns the appointment the request resolved to. Runs inside the use case's
        audit.refusals, which audits a reused request id."""
        appointment_id, _ = create_once(
            self.db,
            store.request_log,
            principal,
            operation,
            request_id,
            create,
            lambda: str(uuid.uuid4()),
            request=body,
        )
        self.notify_outbox()
        return self._load(appointment_id)

    # Reads ---------------------------------------------------------------------------------------
    def _load(self, appointment_id: str) -> store.StoredAppointment:
        with self.db.read() as conn:
            found = store.load_appointment(conn, appointment_id)
        if found is None:  # pragma: no cover - just created or resolved by its request id
            raise NotFound(f"Appointment/{appointment_id} not found")
        return found

    def as_seen_by(
        self,
        principal: Principal,
        a: store.StoredAppointment,
        cache: dict[str, bool],
        conn: Connection | None = None,
    ) -> tuple[store.StoredAppointment, list[str]]:
        """The appointment with only the patients the caller may see, and those patients.

        Every patient the stored resource names counts, also one who left a group (still there,
        declined): who may see whom is decided on the resource that is served. `cache` keeps the
        answers across the items of one listing, `conn` its read transaction."""
        patients = sorted(fhir_map.patients_in(a.resource))
        visible = []
        with ExitStack() as stack:
            for p in patients:
                if p not in cache:
                    if conn is None:
                        conn = stack.enter_context(self.db.read())
                    try:
                        self.access.basis(conn, principal, p)
                        cache[p] = True
                    except PermissionDenied:
                        cache[p] = False
                if cache[p]:
                    visible.append(p)
        hidden = set(patients) - set(visible)
        shown = replace(
            a,
            resource=fhir_map.visible_to(a.resource, hidden),
            patient_id="" if a.patient_id in hidden else a.patient_id,
        )
        return shown, visible

    def get(self, principal: Principal, appointment_id: str) -> store.StoredAppointment:
        name = f"Appointment/{appointment_id}"
        with store.JOURNAL.refusals(self.db, principal, audit.READ, name):
            with self.db.read() as conn:
                found = store.load_appointment(conn, appointment_id)
            if found is None:
                raise NotFound(f"{name} not found", resource=name)
            seen, visible = self.as_seen_by(principal, found, {})
            if not found.is_group and not visible:
                # The same answer as a session that does not exist (test-matrix D8).
                raise NotFound(f"{name} not found", resource=name)
            if found.is_group and not visible:
                self._facilitator_or_privileged(principal, found)
        readers: list[str | None] = list(visible) or [None]
        for p in readers:
            store.JOURNAL.audit_separately(
                self.db, principal, audit.READ, resource=name, patient_id=p
            )
        return seen

    def _facilitator_or_privileged(self, principal: Principal, a: store.StoredAppointment) -> None:
        """A group session whose patients the caller may not see is still visible to its
        facilitators and privileged roles (with no patients); to others it does not exist."""
        if principal.role in PROGRAM_WIDE_ROLES:
            return
        with self.db.read() as conn:
            if _is_facilitator(conn, principal, a):
                return
        raise NotFound(f"Appointment/{a.id} not found", resource=f"Appointment/{a.id}")
