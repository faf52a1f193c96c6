"""Booking: individual sessions, group sessions, and seats in them.

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
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, replace
from datetime import UTC, datetime
from typing import ClassVar
from zoneinfo import ZoneInfo

from iopcare.kit import audit
from iopcare.kit.access import PROGRAM_WIDE_ROLES
from iopcare.kit.auth import Principal
from iopcare.kit.db import Database, UnitOfWork
from iopcare.kit.errors import (
    Aborted,
    FailedPrecondition,
    FieldViolations,
    NotFound,
    PermissionDenied,
)
from iopcare.kit.requests import Asked
from iopcare.kit.teams import TeamAccess
from iopcare.kit.versioned import reread
from iopcare.scheduling import codes, fhir_map, store
from iopcare.scheduling.appointment_events import (
    patient_ids,
    publish_appointment,
    publish_response,
)
from iopcare.scheduling.calendars import Calendars
from iopcare.scheduling.checks import (
    check_calendars_open,
    check_code,
    check_free,
    check_id,
    check_staff,
    check_text,
)
from iopcare.scheduling.domain.booking import MAX_SESSION, check_open_for_booking, check_seat
from iopcare.scheduling.domain.calendar import Interval, check_range
from iopcare.scheduling.domain.family import check_family_ids, check_family_known


@dataclass(frozen=True)
class BookingRequest:
    kind: ClassVar[str] = "individual"

    patient_id: str
    practitioner_ids: tuple[str, ...]
    location_id: str
    start: datetime | None
    end: datetime | None
    service_type: str
    description: str
    care_plan_id: str
    #: Family members taking part (a family session): RelatedPersons of the patient.
    related_person_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class GroupRequest:
    kind: ClassVar[str] = "group"
    #: A group session starts with no patient and carries out no plan of its own.
    patient_id: ClassVar[str] = ""
    care_plan_id: ClassVar[str] = ""
    related_person_ids: ClassVar[tuple[str, ...]] = ()

    location_id: str
    facilitator_ids: tuple[str, ...]
    start: datetime | None
    end: datetime | None
    capacity: int
    service_type: str
    description: str

    @property
    def practitioner_ids(self) -> tuple[str, ...]:
        return self.facilitator_ids


def written(db: Database, appointment_id: str) -> store.StoredAppointment:
    """An appointment just written by this request or by its first attempt."""
    return reread(db, store.load_appointment, appointment_id, f"Appointment/{appointment_id}")


@dataclass(eq=False)
class Bookings:
    db: Database
    calendars: Calendars
    access: TeamAccess
    _: KW_ONLY
    zone: ZoneInfo
    notify_outbox: Callable[[], None] = lambda: None

    def _insert_booked(
        self,
        uow: UnitOfWork,
        principal: Principal,
        appointment_id: str,
        r: BookingRequest | GroupRequest,
        wanted: Interval,
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
            r.patient_id,
            "booked",
            wanted.start,
            wanted.end,
            r.care_plan_id or None,
            fhir_map.booked_appointment(
                appointment_id,
                kind=r.kind,
                patients=[r.patient_id] if r.patient_id else [],
                related_persons=list(r.related_person_ids),
                practitioners=list(r.practitioner_ids),
                location=r.location_id or None,
                start=wanted.start,
                end=wanted.end,
                service_type=r.service_type,
                description=r.description,
                care_plan_id=r.care_plan_id,
                capacity=capacity,
                at=now,
            ),
            kind=r.kind,
            capacity=capacity,
            seats_taken=0,
        )
        store.insert_appointment(uow.conn, a, None)
        participants = [(f"Practitioner/{p}", "practitioner") for p in r.practitioner_ids]
        if r.patient_id:
            participants.append((f"Patient/{r.patient_id}", "patient"))
        if r.location_id:
            participants.append((f"Location/{r.location_id}", "location"))
        for actor, role in participants:
            store.add_occupancy(uow.conn, a.id, actor, role, a.start, a.end)
        if a.is_group:
            publish_appointment(uow, a, codes.EVENT_GROUP_SESSION_CREATED, now, patients=[])
        else:
            publish_appointment(uow, a, codes.EVENT_APPOINTMENT_BOOKED, now)
        store.JOURNAL.audit(
            uow,
            principal,
            audit.CREATE,
            resource=f"Appointment/{a.id}",
            patient_id=r.patient_id or None,
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
            check_id(r.patient_id, "patient_id", problems)
            check_staff(r.practitioner_ids, "practitioner_ids", "practitioners", problems)
            check_id(r.location_id, "location_id", problems, required=False)
            check_id(r.care_plan_id, "care_plan_id", problems, required=False)
            check_code(r.service_type, "service_type", problems)
            check_text(r.description, "description", problems)
            check_family_ids(r.related_person_ids, problems, "related_person_ids")
            wanted = check_range(r.start, r.end, problems, longest=MAX_SESSION)
            problems.raise_if_any("the booking is invalid")
            assert wanted is not None

            def _create(uow: UnitOfWork, appointment_id: str) -> None:
                basis = self.access.basis(uow.conn, principal, r.patient_id)
                if r.related_person_ids:
                    family = store.family.family_of(uow.conn, r.patient_id)
                    check_family_known(r.related_person_ids, family)
                staff = [f"Practitioner/{p}" for p in r.practitioner_ids]
                if r.location_id:
                    staff.append(f"Location/{r.location_id}")
                patient = f"Patient/{r.patient_id}"
                store.lock_actors(uow.conn, [patient, *staff])
                check_calendars_open(uow, self.calendars, self.zone, staff, wanted)
                check_free(uow, [patient, *staff], wanted)
                self._insert_booked(uow, principal, appointment_id, r, wanted, 1, basis)

            return self._once(principal, "BookAppointment", request_id, r, _create)

    # Group sessions ------------------------------------------------------------------------------
    def create_group(
        self, principal: Principal, request_id: str, r: GroupRequest
    ) -> store.StoredAppointment:
        with store.JOURNAL.refusals(self.db, principal, audit.CREATE, "Appointment"):
            problems = FieldViolations()
            check_id(r.location_id, "location_id", problems)
            check_staff(r.facilitator_ids, "facilitator_ids", "facilitators", problems)
            if r.capacity < 0:
                problems.add("capacity", "0 (the room's) or more")
            check_code(r.service_type, "service_type", problems)
            check_text(r.description, "description", problems)
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
                check_calendars_open(uow, self.calendars, self.zone, [room, *staff], wanted)
                check_free(uow, [room, *staff], wanted)
                self._insert_booked(uow, principal, appointment_id, r, wanted, capacity, None)

            return self._once(principal, "CreateGroupSession", request_id, r, _create)

    def join(
        self, principal: Principal, request_id: str, appointment_id: str, patient_id: str
    ) -> store.StoredAppointment:
        name = f"Appointment/{appointment_id}"
        with store.JOURNAL.refusals(self.db, principal, audit.UPDATE, name, patient_id or None):
            problems = FieldViolations()
            check_id(appointment_id, "appointment_id", problems)
            check_id(patient_id, "patient_id", problems)
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
        check_seat(session.capacity, patient_ids(uow.conn, session.id), patient_id)
        check_free(uow, [patient], Interval(session.start, session.end))
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
        publish_appointment(uow, joined, codes.EVENT_APPOINTMENT_BOOKED, now, patients=[patient_id])
        publish_response(uow, session.id, patient_id, "accepted", now)
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
        publish_response(uow, session.id, patient_id, "declined", now)
        publish_appointment(
            uow, revised, codes.EVENT_APPOINTMENT_UPDATED, now, patients=[patient_id]
        )
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
        asked = Asked(store.request_log, principal, operation, request_id, body)
        appointment_id, _ = asked.create(self.db, create, lambda: str(uuid.uuid4()))
        self.notify_outbox()
        return written(self.db, appointment_id)
