"""A patient's Consents to disclosure."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Connection, DateTime, Integer, String, Table, Text, select

from iopcare.kit.copying import from_row
from iopcare.kit.db import as_utc
from iopcare.notes.cursor import Position, after
from iopcare.notes.store.schema import metadata

#: A patient's Consents to disclose records to a recipient outside the program (42 CFR 2.31).
consent = Table(
    "consent",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("patient_id", String(64), nullable=False, index=True),
    Column("recipient", String(200), nullable=False),
    Column("scope", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("version", Integer, nullable=False),
    Column("period_start", DateTime(timezone=True), nullable=True),
    Column("period_end", DateTime(timezone=True), nullable=True),
    Column("recorded_by", String(200), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("resource", Text, nullable=False),
)


@dataclass(frozen=True)
class StoredConsent:
    id: str
    patient_id: str
    recipient: str
    scope: str
    status: str
    version: int
    period_start: datetime | None
    period_end: datetime | None
    resource: str
    recorded_at: datetime


def _consent_from_row(row: Any) -> StoredConsent:
    return from_row(
        StoredConsent,
        row,
        period_start=as_utc(row.period_start) if row.period_start else None,
        period_end=as_utc(row.period_end) if row.period_end else None,
        recorded_at=as_utc(row.recorded_at),
    )


def consents_for(conn: Connection, patient_id: str) -> list[StoredConsent]:
    rows = conn.execute(
        select(consent).where(consent.c.patient_id == patient_id).order_by(consent.c.recorded_at)
    )
    return [_consent_from_row(row) for row in rows]


def load_consent(conn: Connection, consent_id: str) -> StoredConsent | None:
    row = conn.execute(select(consent).where(consent.c.id == consent_id)).first()
    return _consent_from_row(row) if row is not None else None


def consents_page(
    conn: Connection,
    patient_id: str,
    limit: int,
    position: Position | None,
    recipient: str | None = None,
) -> list[StoredConsent]:
    """A patient's consents after `position`, oldest first (recorded time, then id); with a
    `recipient`, only those naming it."""
    c = consent.c
    where = (c.patient_id == patient_id) & after(c.recorded_at, c.id, position)
    if recipient is not None:
        where = where & (c.recipient == recipient)
    rows = conn.execute(select(consent).where(where).order_by(c.recorded_at, c.id).limit(limit))
    return [_consent_from_row(row) for row in rows]


def revoke(conn: Connection, current: StoredConsent, resource: str, at: datetime) -> bool:
    """Revokes a consent if it is still active (the status is in the WHERE clause, so of two
    racing revocations one does it); True if this call did."""
    done = conn.execute(
        consent.update()
        .where((consent.c.id == current.id) & (consent.c.status == "active"))
        .values(status="inactive", version=current.version + 1, revoked_at=at, resource=resource)
    )
    return done.rowcount == 1


def insert_consent(conn: Connection, new: StoredConsent, recorded_by: str) -> None:
    conn.execute(
        # Every field of the record is a column of the same name.
        consent.insert().values(**asdict(new), recorded_by=recorded_by)
    )
