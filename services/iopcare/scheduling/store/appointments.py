"""Appointments: sessions, their versions and the plan occurrences they carry out."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, or_, select

from iopcare.kit.copying import by_name, from_row
from iopcare.kit.db import as_utc
from iopcare.scheduling.store.tables import (
    appointment,
    occupancy,
)


@dataclass(frozen=True)
class StoredAppointment:
    id: str
    version: int
    patient_id: str
    status: str
    start: datetime
    end: datetime
    care_plan_id: str | None
    resource: str
    kind: str = "individual"
    capacity: int = 1
    seats_taken: int = 0

    @property
    def is_group(self) -> bool:
        return self.kind == "group"


def appointment_from_row(row: Any) -> StoredAppointment:
    return from_row(
        StoredAppointment,
        row,
        patient_id=row.patient_id or "",
        start=as_utc(row.start),
        end=as_utc(row.end),
    )


def occurrence_exists(conn: Connection, key: str) -> bool:
    """Whether a plan activity occurrence was carried out already: proposed or booked as its own
    appointment, or as the patient's seat in a group session."""
    if (
        conn.execute(select(appointment.c.id).where(appointment.c.occurrence_key == key)).first()
        is not None
    ):
        return True
    return (
        conn.execute(
            select(occupancy.c.appointment_id).where(occupancy.c.occurrence_key == key)
        ).first()
        is not None
    )


def release_occurrence(conn: Connection, appointment_id: str) -> None:
    """Frees the occurrence key of a session the plan itself withdrew (activity changed, plan
    suspended), so that the occurrence can be proposed again if the plan brings it back."""
    conn.execute(
        appointment.update().where(appointment.c.id == appointment_id).values(occurrence_key=None)
    )


def plan_seats(conn: Connection, plan_id: str, after: datetime) -> list[tuple[str, str, str]]:
    """(appointment id, patient actor, occurrence key) of the group seats the plan's series holds
    in sessions starting after `after`."""
    rows = conn.execute(
        select(occupancy.c.appointment_id, occupancy.c.actor, occupancy.c.occurrence_key).where(
            occupancy.c.occurrence_key.like(f"{plan_id}/%")
            & occupancy.c.active
            & (occupancy.c.start > after)
        )
    ).all()
    return [(r.appointment_id, r.actor, r.occurrence_key) for r in rows]


def future_occurrences(
    conn: Connection, plan_id: str, after: datetime
) -> list[tuple[StoredAppointment, str]]:
    """The plan's own future open sessions with their occurrence keys (locked on PostgreSQL)."""
    rows = conn.execute(
        select(appointment)
        .where(
            (appointment.c.care_plan_id == plan_id)
            & (appointment.c.start > after)
            & appointment.c.occurrence_key.is_not(None)
            & (appointment.c.status.in_(["proposed", "pending", "booked"]))
        )
        .order_by(appointment.c.start)
        .with_for_update()
    ).all()
    return [(appointment_from_row(row), row.occurrence_key) for row in rows]


def group_sessions_at(conn: Connection, start: datetime, facilitators: list[str]) -> list[str]:
    """Ids of the open group sessions starting at `start` that one of the facilitators leads:
    the cohort a plan's group activity joins."""
    if not facilitators:
        return []
    rows = conn.execute(
        select(appointment.c.id)
        .join(occupancy, occupancy.c.appointment_id == appointment.c.id)
        .where(
            # The participant rows start with their session: the index finds them by actor and
            # start, not by reading every session the facilitators ever led.
            occupancy.c.actor.in_(facilitators)
            & (occupancy.c.start == start)
            & occupancy.c.active
            & (appointment.c.kind == "group")
            & (appointment.c.status == "booked")
            & (appointment.c.start == start)
        )
        .order_by(appointment.c.id)
    ).scalars()
    return list(dict.fromkeys(rows))


def insert_appointment(conn: Connection, a: StoredAppointment, occurrence_key: str | None) -> None:
    conn.execute(
        # Every field of the record is a column of the same name; a group session has no patient.
        appointment.insert().values(
            asdict(a)
            | {
                "patient_id": a.patient_id or None,
                "occurrence_key": occurrence_key,
                "updated_at": datetime.now(UTC),
            }
        )
    )


def list_appointments(
    conn: Connection,
    actor: str,
    limit: int,
    after: tuple[datetime, str] | None,
    *,
    statuses: list[str] | None = None,
    start_from: datetime | None = None,
    start_before: datetime | None = None,
) -> list[StoredAppointment]:
    """Appointments an actor (Patient/..., Practitioner/..., Location/...) takes part in, by
    start then id (a keyset page after `after`)."""
    taking_part = select(occupancy.c.appointment_id).where(
        (occupancy.c.actor == actor) & occupancy.c.active
    )
    query = select(appointment).where(appointment.c.id.in_(taking_part))
    if statuses:
        query = query.where(appointment.c.status.in_(statuses))
    if start_from is not None:
        query = query.where(appointment.c.start >= start_from)
    if start_before is not None:
        query = query.where(appointment.c.start < start_before)
    if after is not None:
        start, last_id = after
        query = query.where(
            or_(
                appointment.c.start > start,
                and_(appointment.c.start == start, appointment.c.id > last_id),
            )
        )
    rows = conn.execute(query.order_by(appointment.c.start, appointment.c.id).limit(limit)).all()
    return [appointment_from_row(row) for row in rows]


def load_appointment(conn: Connection, appointment_id: str) -> StoredAppointment | None:
    row = conn.execute(select(appointment).where(appointment.c.id == appointment_id)).first()
    return appointment_from_row(row) if row is not None else None


def update_appointment(conn: Connection, a: StoredAppointment, expected_version: int) -> bool:
    """Stores a new version if `expected_version` is still current (the check is in the WHERE)."""
    updated = conn.execute(
        appointment.update()
        .where((appointment.c.id == a.id) & (appointment.c.version == expected_version))
        .values(
            **by_name(a, "status version resource start end seats_taken"),
            updated_at=datetime.now(UTC),
        )
    )
    return updated.rowcount == 1


def load_appointment_for_update(conn: Connection, appointment_id: str) -> StoredAppointment | None:
    """The appointment, its row locked until the transaction ends (PostgreSQL; SQLite's write
    transaction already excludes every other writer)."""
    row = conn.execute(
        select(appointment).where(appointment.c.id == appointment_id).with_for_update()
    ).first()
    return appointment_from_row(row) if row is not None else None
