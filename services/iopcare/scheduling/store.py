"""The scheduling service's tables and the queries on them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    or_,
    select,
)

from iopcare.kit.db import as_utc
from iopcare.kit.schema import add_kit_tables
from iopcare.kit.teams import add_member_table, add_projection_table

metadata = MetaData()
kit = add_kit_tables(metadata)
#: The care team memberships, projected from careplan's careteam events: who may see a patient.
care_team_member = add_member_table(metadata)
care_team_seen = add_projection_table(metadata)
outbox, inbox, request_log, audit_log = (
    kit["outbox"],
    kit["inbox"],
    kit["request_log"],
    kit["audit_log"],
)

appointment = Table(
    "appointment",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("patient_id", String(64), nullable=False),
    Column("care_plan_id", String(64), nullable=True),
    # Which plan activity occurrence this carries out: a replayed plan event can never book the
    # same occurrence twice, even if the inbox were bypassed.
    Column("occurrence_key", String(200), nullable=True),
    Column("status", String(32), nullable=False),
    Column("start", DateTime(timezone=True), nullable=False),
    Column("end", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False),
    Column("resource", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("occurrence_key", name="uq_appointment_occurrence"),
)
Index("ix_appointment_patient_start", appointment.c.patient_id, appointment.c.start)


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


def _from_row(row: Any) -> StoredAppointment:
    return StoredAppointment(
        row.id,
        row.version,
        row.patient_id,
        row.status,
        as_utc(row.start),
        as_utc(row.end),
        row.care_plan_id,
        row.resource,
    )


def occurrence_exists(conn: Connection, key: str) -> bool:
    return (
        conn.execute(select(appointment.c.id).where(appointment.c.occurrence_key == key)).first()
        is not None
    )


def insert_appointment(conn: Connection, a: StoredAppointment, occurrence_key: str | None) -> None:
    conn.execute(
        appointment.insert().values(
            id=a.id,
            patient_id=a.patient_id,
            care_plan_id=a.care_plan_id,
            occurrence_key=occurrence_key,
            status=a.status,
            start=a.start,
            end=a.end,
            version=a.version,
            resource=a.resource,
            updated_at=datetime.now(UTC),
        )
    )


def list_for_patient(
    conn: Connection, patient_id: str, limit: int, after: tuple[datetime, str] | None
) -> list[StoredAppointment]:
    query = select(appointment).where(appointment.c.patient_id == patient_id)
    if after is not None:
        start, last_id = after
        query = query.where(
            or_(
                appointment.c.start > start,
                and_(appointment.c.start == start, appointment.c.id > last_id),
            )
        )
    rows = conn.execute(query.order_by(appointment.c.start, appointment.c.id).limit(limit)).all()
    return [_from_row(row) for row in rows]


def load_appointment(conn: Connection, appointment_id: str) -> StoredAppointment | None:
    row = conn.execute(select(appointment).where(appointment.c.id == appointment_id)).first()
    return _from_row(row) if row is not None else None


def update_appointment(conn: Connection, a: StoredAppointment, expected_version: int) -> bool:
    """Stores a new version if `expected_version` is still current (the check is in the WHERE)."""
    updated = conn.execute(
        appointment.update()
        .where((appointment.c.id == a.id) & (appointment.c.version == expected_version))
        .values(
            status=a.status, version=a.version, resource=a.resource, updated_at=datetime.now(UTC)
        )
    )
    return updated.rowcount == 1


def future_for_plan(conn: Connection, plan_id: str, after: datetime) -> list[StoredAppointment]:
    """The plan's sessions that have not started yet and are still open (locked on PostgreSQL)."""
    rows = conn.execute(
        select(appointment)
        .where(
            (appointment.c.care_plan_id == plan_id)
            & (appointment.c.start > after)
            & (appointment.c.status.in_(["proposed", "pending", "booked"]))
        )
        .order_by(appointment.c.start)
        .with_for_update()
    ).all()
    return [_from_row(row) for row in rows]
