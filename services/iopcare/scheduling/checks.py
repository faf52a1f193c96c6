"""Checks shared by the booking use cases: input checks, and the rules that read the database
(calendars open, actors free, who may manage a session)."""

from __future__ import annotations

from collections.abc import Collection
from contextlib import AbstractContextManager
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from iopcare.kit import audit, fhir
from iopcare.kit.access import PROGRAM_WIDE_ROLES
from iopcare.kit.auth import Principal
from iopcare.kit.db import Database, UnitOfWork
from iopcare.kit.errors import FailedPrecondition, FieldViolations, NotFound, PermissionDenied
from iopcare.kit.teams import TeamAccess
from iopcare.scheduling import store
from iopcare.scheduling.calendars import CODE, Calendars
from iopcare.scheduling.domain.booking import Busy, check_no_overlap, check_participants
from iopcare.scheduling.domain.calendar import Interval

MAX_TEXT = 500


def check_id(value: str, field: str, problems: FieldViolations, required: bool = True) -> None:
    if not value and not required:
        return
    if not fhir.is_valid_id(value):
        problems.add(field, "1 to 64 characters of A-Z, a-z, 0-9, '-' and '.'")


def check_staff(ids: tuple[str, ...], field: str, kind: str, problems: FieldViolations) -> None:
    """One or two distinct practitioners (or facilitators), each a valid id."""
    check_participants(list(ids), problems, field, kind=kind)
    for i, p in enumerate(ids):
        check_id(p, f"{field}[{i}]", problems)


def check_text(value: str, field: str, problems: FieldViolations) -> None:
    if len(value) > MAX_TEXT:
        problems.add(field, f"at most {MAX_TEXT} characters")


def check_code(value: str, field: str, problems: FieldViolations) -> None:
    if value and not CODE.match(value):
        problems.add(field, "a code of letters, digits, '.' and '-'")


def check_version(expected_version: int, problems: FieldViolations) -> None:
    if expected_version < 1:
        problems.add("expected_version", "required, >= 1")


def session_named(uow: UnitOfWork, name: str, *, lock: bool = True) -> store.StoredAppointment:
    """The appointment `name` (Appointment/{id}) as `uow` reads it, its row locked for the change
    unless not `lock`; NotFound naming it if there is none."""
    appointment_id = name.split("/", 1)[1]
    load = store.load_appointment_for_update if lock else store.load_appointment
    found = load(uow.conn, appointment_id)
    if found is None:
        raise NotFound(f"{name} not found", resource=name)
    return found


def is_facilitator(conn: Connection, principal: Principal, a: store.StoredAppointment) -> bool:
    """Whether the caller is one of the session's practitioners (a group's facilitators)."""
    facilitators = {
        actor for actor, role, _ in store.participants(conn, a.id) if role == "practitioner"
    }
    return bool(principal.practitioner_id) and principal.reference in facilitators


def may_manage_session(
    access: TeamAccess, conn: Connection, principal: Principal, a: store.StoredAppointment
) -> str:
    """Why the caller may change a session as a whole: a facilitator of it, or a privileged
    role; for an individual session, the patient's care team."""
    if not a.is_group:
        return access.basis(conn, principal, a.patient_id)
    if principal.role in PROGRAM_WIDE_ROLES:
        return f"role:{principal.role}"
    if is_facilitator(conn, principal, a):
        return "facilitator"
    raise PermissionDenied("only the group's facilitators may change it", reason="NOT_FACILITATOR")


def check_calendars_open(
    uow: UnitOfWork, calendars: Calendars, zone: ZoneInfo, actors: list[str], wanted: Interval
) -> None:
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
        if not calendars.calendar(schedule).is_open(wanted, zone):
            raise FailedPrecondition(
                f"{actor} is not available then (opening hours or a closed day)",
                reason="OUTSIDE_OPENING_HOURS",
            )


def check_free(
    uow: UnitOfWork,
    actors: list[str],
    wanted: Interval,
    ignore: str | None = None,
    unnamed: Collection[str] = (),
) -> None:
    """No actor has a blocking booking overlapping `wanted` (but `ignore`, the session moved)."""
    busy = [
        Busy(actor, Interval(s, e), appointment_id)
        for actor, s, e, appointment_id in store.busy(uow.conn, actors, wanted.start, wanted.end)
    ]
    check_no_overlap(wanted, busy, ignore, unnamed)


def search_refusals(
    db: Database, principal: Principal, patient_id: str
) -> AbstractContextManager[None]:
    """Audits a search of Appointments refused for its input, like every other refusal
    (test-matrix C11); the patient is named only when the id is a valid one."""
    named = patient_id if fhir.is_valid_id(patient_id) else None
    return store.JOURNAL.refusals(db, principal, audit.SEARCH, "Appointment", named)
