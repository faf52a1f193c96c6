"""Daily check-ins."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Connection, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from iopcare.kit.db import as_utc
from iopcare.scheduling.store.tables import (
    appointment,
    checkin_response,
    daily_checkin,
    occupancy,
)


def check_in(
    conn: Connection, patient_id: str, day: date, at: datetime, late: bool
) -> tuple[datetime, bool, bool]:
    """Records the day's check-in unless there is one; returns (time, late, already recorded).

    INSERT ... ON CONFLICT DO NOTHING: of two simultaneous check-ins (two devices) one inserts
    and the other, on PostgreSQL, waits for it to commit and then inserts nothing; both then read
    the one row, so the second answers "already recorded" instead of failing on the key."""
    insert = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
    inserted = conn.execute(
        insert(daily_checkin)
        .values(patient_id=patient_id, day=day, checked_in_at=at, late=late)
        .on_conflict_do_nothing(index_elements=["patient_id", "day"])
        .returning(daily_checkin.c.patient_id)
    ).first()
    if inserted is not None:
        return at, late, False
    row = conn.execute(
        select(daily_checkin.c.checked_in_at, daily_checkin.c.late).where(
            (daily_checkin.c.patient_id == patient_id) & (daily_checkin.c.day == day)
        )
    ).one()
    return as_utc(row.checked_in_at), row.late, True


def missing_check_ins(conn: Connection, day: date, start: datetime, end: datetime) -> list[str]:
    """Patients with a session in [start, end) (the local day) and no check-in for `day`."""
    checked = select(daily_checkin.c.patient_id).where(daily_checkin.c.day == day)
    rows = conn.execute(
        select(occupancy.c.actor)
        .join(appointment, appointment.c.id == occupancy.c.appointment_id)
        .where(
            (occupancy.c.role == "patient")
            & occupancy.c.active
            & (occupancy.c.start >= start)
            & (occupancy.c.start < end)
            & appointment.c.status.not_in(["cancelled", "entered-in-error"])
        )
        .distinct()
    ).scalars()
    patients = {r.split("/", 1)[1] for r in rows}
    done = set(conn.execute(checked).scalars())
    return sorted(patients - done)


def check_in_of(conn: Connection, patient_id: str, day: date) -> tuple[datetime, bool] | None:
    """(time, late) of the patient's check-in for `day`, if there is one."""
    row = conn.execute(
        select(daily_checkin.c.checked_in_at, daily_checkin.c.late).where(
            (daily_checkin.c.patient_id == patient_id) & (daily_checkin.c.day == day)
        )
    ).first()
    return (as_utc(row.checked_in_at), row.late) if row is not None else None


@dataclass(frozen=True)
class StoredResponse:
    """A patient's check-in answers as stored (`resource`: the QuestionnaireResponse JSON)."""

    id: str
    patient_id: str
    authored_at: datetime
    resource: str


def insert_checkin_response(conn: Connection, response: StoredResponse, day: date) -> None:
    conn.execute(
        checkin_response.insert().values(
            id=response.id,
            patient_id=response.patient_id,
            day=day,
            authored_at=response.authored_at,
            resource=response.resource,
        )
    )


def checkin_responses(
    conn: Connection, patient_id: str, limit: int, before: tuple[datetime, str] | None = None
) -> list[StoredResponse]:
    """The patient's check-in answers, newest first (authored time, then id), after `before`
    (the last of the previous page) when given; a response by id when `limit` is 0 is not
    offered (the caller pages)."""
    c = checkin_response.c
    query = select(c.id, c.patient_id, c.authored_at, c.resource).where(c.patient_id == patient_id)
    if before is not None:
        at, last_id = before
        query = query.where((c.authored_at < at) | ((c.authored_at == at) & (c.id < last_id)))
    rows = conn.execute(query.order_by(c.authored_at.desc(), c.id.desc()).limit(limit)).all()
    return [StoredResponse(r.id, r.patient_id, as_utc(r.authored_at), r.resource) for r in rows]


def checkin_response_by_id(conn: Connection, response_id: str) -> StoredResponse | None:
    c = checkin_response.c
    row = conn.execute(
        select(c.id, c.patient_id, c.authored_at, c.resource).where(c.id == response_id)
    ).first()
    return (
        StoredResponse(row.id, row.patient_id, as_utc(row.authored_at), row.resource)
        if row
        else None
    )
