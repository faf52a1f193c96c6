"""Reading appointments: one, or a listing by patient or by practitioner or room; a group
session shows only the patients the caller may see."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import Connection

from iopcare.kit import audit, fhir, paging, teams
from iopcare.kit.access import PROGRAM_WIDE_ROLES
from iopcare.kit.auth import Principal
from iopcare.kit.db import Database
from iopcare.kit.errors import (
    FieldViolation,
    FieldViolations,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from iopcare.scheduling import fhir_map, store
from iopcare.scheduling.checks import is_facilitator, search_refusals

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


def _is_staff_reference(actor: str) -> bool:
    kind, _, rest = actor.partition("/")
    return kind in {"Practitioner", "Location"} and fhir.is_valid_id(rest)


@dataclass(frozen=True)
class Listing:
    """What ListAppointments asks for: one patient's sessions or one practitioner's or room's
    (`actor`), with these statuses (any when empty), starting in [start_from, start_before), a
    page at a time."""

    patient_id: str
    actor: str
    statuses: list[str]
    start_from: datetime | None
    start_before: datetime | None
    page_size: int
    page_token: str


def _check_listing(listing: Listing) -> tuple[int, tuple[datetime, str] | None]:
    """The page size and the keyset position of a valid listing request; INVALID_ARGUMENT
    naming every bad field otherwise."""
    problems = FieldViolations()
    if bool(listing.patient_id) == bool(listing.actor):
        problems.add("patient_id", "exactly one of patient_id and actor")
    if listing.actor and not _is_staff_reference(listing.actor):
        problems.add("actor", "Practitioner/{id} or Location/{id}")
    for i, status in enumerate(listing.statuses):
        if status not in APPOINTMENT_STATUSES:
            problems.add(f"statuses[{i}]", "a FHIR appointmentstatus code")
    start_from, start_before = listing.start_from, listing.start_before
    if start_from and start_before and start_before <= start_from:
        problems.add("end_time", "after start_time")
    size = paging.page_size(listing.page_size)
    problems.raise_if_any("the listing is invalid")
    position = paging.decode(listing.page_token, {"start": str, "id": str})
    if position is None:
        return size, None
    try:
        return size, (datetime.fromisoformat(position["start"]), str(position["id"]))
    except ValueError:
        raise InvalidArgument(
            "page_token is not one this server issued",
            [FieldViolation("page_token", "invalid page token")],
        ) from None


class Appointments:
    def __init__(self, db: Database, access: teams.TeamAccess) -> None:
        self.db = db
        self.access = access

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
            if is_facilitator(conn, principal, a):
                return
        raise NotFound(f"Appointment/{a.id} not found", resource=f"Appointment/{a.id}")

    def list_appointments(
        self, principal: Principal, listing: Listing
    ) -> tuple[list[store.StoredAppointment], str]:
        """A patient's sessions (their care team), or a practitioner's or room's (the
        practitioner, or a privileged role); either way a group session shows only the patients
        the caller may see."""
        patient_id, actor = listing.patient_id, listing.actor
        with search_refusals(self.db, principal, patient_id):
            size, after = _check_listing(listing)
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
                statuses=listing.statuses,
                start_from=listing.start_from,
                start_before=listing.start_before,
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
                shown, visible = self.as_seen_by(principal, item, cache, conn)
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
