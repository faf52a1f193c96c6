"""Encounters for billing: one FHIR Encounter per patient and attended session, written in the
transaction that records the attendance (scheduling.encounters)."""

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
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    or_,
    select,
)

from iopcare.kit.db import as_utc
from iopcare.scheduling.store.tables import metadata, plan_series

encounter = Table(
    "encounter",
    metadata,
    Column("id", String(64), primary_key=True),
    # The session and whose attendance it is: one Encounter per patient and session, so a
    # repeated attendance record finds the Encounter it made.
    Column("appointment_id", String(64), nullable=False),
    Column("patient_id", String(64), nullable=False),
    Column("status", String(32), nullable=False),
    Column("start", DateTime(timezone=True), nullable=False),
    # The first billing code ("" when none), for the search by type.
    Column("code", String(32), nullable=False),
    Column("version", Integer, nullable=False),
    Column("resource", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("appointment_id", "patient_id", name="uq_encounter_session_patient"),
)
Index("ix_encounter_patient_start", encounter.c.patient_id, encounter.c.start)
Index("ix_encounter_start", encounter.c.start, encounter.c.id)


@dataclass(frozen=True)
class StoredEncounter:
    id: str
    appointment_id: str
    patient_id: str
    status: str
    start: datetime
    code: str
    version: int
    resource: str


def _from_row(row: Any) -> StoredEncounter:
    return StoredEncounter(
        row.id,
        row.appointment_id,
        row.patient_id,
        row.status,
        as_utc(row.start),
        row.code,
        row.version,
        row.resource,
    )


def encounter_of(conn: Connection, appointment_id: str, patient_id: str) -> StoredEncounter | None:
    row = conn.execute(
        select(encounter).where(
            (encounter.c.appointment_id == appointment_id) & (encounter.c.patient_id == patient_id)
        )
    ).first()
    return _from_row(row) if row is not None else None


def load_encounter(conn: Connection, encounter_id: str) -> StoredEncounter | None:
    row = conn.execute(select(encounter).where(encounter.c.id == encounter_id)).first()
    return _from_row(row) if row is not None else None


def save_encounter(conn: Connection, e: StoredEncounter) -> None:
    """Inserts version 1 or replaces the stored version (the caller holds the session's write)."""
    values = {
        "appointment_id": e.appointment_id,
        "patient_id": e.patient_id,
        "status": e.status,
        "start": e.start,
        "code": e.code,
        "version": e.version,
        "resource": e.resource,
        "updated_at": datetime.now(UTC),
    }
    if e.version == 1:
        conn.execute(encounter.insert().values(id=e.id, **values))
    else:
        conn.execute(encounter.update().where(encounter.c.id == e.id).values(**values))


def list_encounters(
    conn: Connection,
    *,
    patient_ids: list[str] | None,
    start_from: datetime | None,
    start_before: datetime | None,
    code: str,
    limit: int,
    after: tuple[datetime, str] | None,
) -> list[StoredEncounter]:
    """Encounters by start then id (a keyset page after `after`); `patient_ids` None: anyone's."""
    query = select(encounter)
    if patient_ids is not None:
        query = query.where(encounter.c.patient_id.in_(patient_ids))
    if start_from is not None:
        query = query.where(encounter.c.start >= start_from)
    if start_before is not None:
        query = query.where(encounter.c.start < start_before)
    if code:
        query = query.where(encounter.c.code == code)
    if after is not None:
        start, last_id = after
        query = query.where(
            or_(
                encounter.c.start > start,
                and_(encounter.c.start == start, encounter.c.id > last_id),
            )
        )
    rows = conn.execute(query.order_by(encounter.c.start, encounter.c.id).limit(limit)).all()
    return [_from_row(r) for r in rows]


def plan_resource(conn: Connection, plan_id: str) -> str | None:
    """The CarePlan a series follows, as stored, read without a lock (an attendance must not
    wait for, nor hold up, the series extending the plan's sessions)."""
    return conn.execute(
        select(plan_series.c.resource).where(plan_series.c.plan_id == plan_id)
    ).scalar()
