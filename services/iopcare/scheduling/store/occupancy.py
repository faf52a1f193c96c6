"""Who takes part in which session when: calendar locks, overlap checks, participants and
the patient's sessions (the occupancy rows)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, true
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from iopcare.kit.db import as_utc
from iopcare.scheduling.domain.booking import MAX_SESSION
from iopcare.scheduling.store.appointments import StoredAppointment, appointment_from_row
from iopcare.scheduling.store.tables import (
    appointment,
    calendar_lock,
    occupancy,
)


def lock_actors(conn: Connection, actors: list[str]) -> None:
    """Takes the calendar lock of every actor, in sorted order (two bookings that share actors
    lock them in the same order, so they queue instead of deadlocking).

    The row is created on first use; a concurrent first use of the same actor waits on the
    primary key until the other transaction ends, then finds the row (ON CONFLICT DO NOTHING).
    The UPDATE then holds the row lock on PostgreSQL until commit: whoever books the same actor
    next waits here, and reads occupancy only after this booking committed.
    """
    insert = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
    for actor in sorted(set(actors)):
        conn.execute(
            insert(calendar_lock)
            .values(actor=actor, bookings=0)
            .on_conflict_do_nothing(index_elements=["actor"])
        )
        conn.execute(
            calendar_lock.update()
            .where(calendar_lock.c.actor == actor)
            .values(bookings=calendar_lock.c.bookings + 1)
        )


def busy(
    conn: Connection, actors: list[str], start: datetime, end: datetime
) -> list[tuple[str, datetime, datetime, str]]:
    """(actor, start, end, appointment id) of the actors' bookings that overlap [start, end).

    A blocking row is at most MAX_SESSION long (every path that books checks it), so only rows
    starting after `start - MAX_SESSION` can overlap: with `ix_occupancy_busy` the query reads
    the actor's blocking rows in that window, whatever the actor's history holds (issue 16)."""
    rows = conn.execute(
        select(occupancy.c.actor, occupancy.c.start, occupancy.c.end, occupancy.c.appointment_id)
        .where(
            occupancy.c.actor.in_(actors)
            & (occupancy.c.blocking == true())
            & (occupancy.c.start > start - MAX_SESSION)
            & (occupancy.c.start < end)
            & (occupancy.c.end > start)
            & occupancy.c.active
        )
        .order_by(occupancy.c.start)
    ).all()
    return [(r.actor, as_utc(r.start), as_utc(r.end), r.appointment_id) for r in rows]


def add_occupancy(
    conn: Connection,
    appointment_id: str,
    actor: str,
    role: str,
    start: datetime,
    end: datetime,
    *,
    blocking: bool = True,
    occurrence_key: str | None = None,
) -> None:
    """A participant joins a session; a row left by an earlier departure is reactivated."""
    joined = {
        "active": True,
        "blocking": blocking,
        "start": start,
        "end": end,
        "attendance": None,
        "occurrence_key": occurrence_key,
    }
    reactivated = conn.execute(
        occupancy.update()
        .where((occupancy.c.appointment_id == appointment_id) & (occupancy.c.actor == actor))
        .values(joined)
    )
    if reactivated.rowcount == 0:
        conn.execute(
            occupancy.insert().values(
                appointment_id=appointment_id, actor=actor, role=role, **joined
            )
        )


def participants(conn: Connection, appointment_id: str) -> list[tuple[str, str, str | None]]:
    """(actor, role, attendance) of a session's active participants."""
    rows = conn.execute(
        select(occupancy.c.actor, occupancy.c.role, occupancy.c.attendance)
        .where((occupancy.c.appointment_id == appointment_id) & occupancy.c.active)
        .order_by(occupancy.c.actor)
    ).all()
    return [(r.actor, r.role, r.attendance) for r in rows]


def set_occupancy(
    conn: Connection,
    appointment_id: str,
    *,
    actor: str | None = None,
    **values: Any,
) -> None:
    """Updates a session's participant rows (one actor's, or all of them)."""
    where = occupancy.c.appointment_id == appointment_id
    if actor is not None:
        where = where & (occupancy.c.actor == actor)
    conn.execute(occupancy.update().where(where).values(**values))


def adopt_seat(conn: Connection, appointment_id: str, actor: str, occurrence_key: str) -> None:
    """Marks a patient's seat, taken by hand, as carrying out a plan occurrence (unless it
    carries one already), so the plan's series follows it from then on."""
    conn.execute(
        occupancy.update()
        .where(
            (occupancy.c.appointment_id == appointment_id)
            & (occupancy.c.actor == actor)
            & occupancy.c.active
            & occupancy.c.occurrence_key.is_(None)
        )
        .values(occurrence_key=occurrence_key)
    )


def busy_in_range(
    conn: Connection, actors: list[str], start: datetime, end: datetime
) -> dict[str, list[tuple[datetime, datetime]]]:
    """Every blocking booking of the actors overlapping [start, end), by actor."""
    result: dict[str, list[tuple[datetime, datetime]]] = {a: [] for a in actors}
    for actor, s, e, _ in busy(conn, actors, start, end):
        result[actor].append((s, e))
    return result


def open_group_sessions(
    conn: Connection, rooms: list[str], start: datetime, end: datetime
) -> list[tuple[str, StoredAppointment]]:
    """(room, session) for the rooms' booked group sessions in [start, end) with seats left."""
    rows = conn.execute(
        select(occupancy.c.actor, appointment)
        .join(appointment, appointment.c.id == occupancy.c.appointment_id)
        .where(
            occupancy.c.actor.in_(rooms)
            & (occupancy.c.start >= start)
            & (occupancy.c.start < end)
            & occupancy.c.active
            & (appointment.c.kind == "group")
            & (appointment.c.status == "booked")
            & (appointment.c.seats_taken < appointment.c.capacity)
            & (appointment.c.start >= start)
            & (appointment.c.start < end)
        )
        .order_by(appointment.c.start)
    ).all()
    return [(row.actor, appointment_from_row(row)) for row in rows]


def patient_sessions(
    conn: Connection, patient_id: str, start: datetime, end: datetime
) -> list[tuple[str, datetime, datetime, str | None, bool, str]]:
    """(appointment id, start, end, attendance, cancelled, status) of the patient's sessions
    starting in [start, end), proposed ones included (they are the plan's intended hours)."""
    rows = conn.execute(
        select(
            occupancy.c.appointment_id,
            occupancy.c.start,
            occupancy.c.end,
            occupancy.c.attendance,
            occupancy.c.active,
            appointment.c.status,
        )
        .join(appointment, appointment.c.id == occupancy.c.appointment_id)
        .where(
            (occupancy.c.actor == f"Patient/{patient_id}")
            & (occupancy.c.start >= start)
            & (occupancy.c.start < end)
        )
        .order_by(occupancy.c.start)
    ).all()
    return [
        (
            r.appointment_id,
            as_utc(r.start),
            as_utc(r.end),
            r.attendance,
            (not r.active) or r.status in ("cancelled", "entered-in-error"),
            r.status,
        )
        for r in rows
    ]


def first_session_start(conn: Connection, patient_id: str) -> datetime | None:
    """When the patient's first session of any status starts: their admission, as far as
    scheduling knows it."""
    first = conn.execute(
        select(func.min(occupancy.c.start)).where(occupancy.c.actor == f"Patient/{patient_id}")
    ).scalar()
    return as_utc(first) if first is not None else None


def patients_with_sessions(conn: Connection, start: datetime, end: datetime) -> list[str]:
    rows = conn.execute(
        select(occupancy.c.actor)
        .where(
            (occupancy.c.role == "patient")
            & (occupancy.c.start >= start)
            & (occupancy.c.start < end)
        )
        .distinct()
    ).scalars()
    return sorted(r.split("/", 1)[1] for r in rows)
