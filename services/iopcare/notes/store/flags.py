"""Flags on patients and the crisis workflow of the crisis flags."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Connection, DateTime, Index, String, Table, Text, select

from iopcare.kit.copying import from_row
from iopcare.kit.db import as_utc
from iopcare.kit.versioned import Stored, VersionedTables
from iopcare.notes.cursor import Position, after
from iopcare.notes.store.schema import metadata

#: Flags on patients (a crisis raises one), versioned like every revisable resource.
flags = VersionedTables(metadata, "flag")

#: The crisis workflow of each crisis Flag: raised, acknowledged (by whom, when), re-escalated.
crisis_alert = Table(
    "crisis_alert",
    metadata,
    Column("flag_id", String(64), primary_key=True),
    Column("patient_id", String(64), nullable=False),
    Column("message_id", String(64), nullable=False),
    Column("recipients", Text, nullable=False),
    Column("raised_at", DateTime(timezone=True), nullable=False),
    Column("acknowledged_by", String(200), nullable=True),
    Column("acknowledged_at", DateTime(timezone=True), nullable=True),
    Column("escalated_at", DateTime(timezone=True), nullable=True),
)
Index("ix_crisis_alert_open", crisis_alert.c.acknowledged_at, crisis_alert.c.raised_at)


def flags_page(
    conn: Connection, patient_id: str, limit: int, position: Position | None
) -> list[tuple[Stored, datetime]]:
    """A patient's flags after `position`, oldest first (created time, then id), each with its
    creation time (the page key)."""
    c = flags.current.c
    rows = conn.execute(
        select(flags.current)
        .where((c.patient_id == patient_id) & after(c.created_at, c.id, position))
        .order_by(c.created_at, c.id)
        .limit(limit)
    ).all()
    return [
        (from_row(Stored, row, updated_at=as_utc(row.updated_at)), as_utc(row.created_at))
        for row in rows
    ]


def insert_alert(
    conn: Connection,
    flag_id: str,
    patient_id: str,
    message_id: str,
    recipients: tuple[str, ...],
    at: datetime,
) -> None:
    conn.execute(
        crisis_alert.insert().values(
            flag_id=flag_id,
            patient_id=patient_id,
            message_id=message_id,
            recipients=json.dumps(list(recipients)),
            raised_at=at,
        )
    )


def load_alert(conn: Connection, flag_id: str) -> Any:
    return conn.execute(select(crisis_alert).where(crisis_alert.c.flag_id == flag_id)).first()


def mark_acknowledged(conn: Connection, flag_id: str, by: str, at: datetime) -> None:
    conn.execute(
        crisis_alert.update()
        .where(crisis_alert.c.flag_id == flag_id)
        .values(acknowledged_by=by, acknowledged_at=at)
    )


def overdue_alerts(conn: Connection, raised_before: datetime) -> list[Any]:
    """Alerts nobody acknowledged or re-escalated, raised before the time, oldest flag id first."""
    a = crisis_alert.c
    return list(
        conn.execute(
            select(crisis_alert)
            .where(
                a.acknowledged_at.is_(None)
                & a.escalated_at.is_(None)
                & (a.raised_at <= raised_before)
            )
            .order_by(a.flag_id)
        ).all()
    )


def claim_for_escalation(conn: Connection, flag_id: str, at: datetime) -> bool:
    """Marks an alert escalated if it is still unacknowledged and not escalated (the condition
    is in the UPDATE, which PostgreSQL re-checks after waiting for the row); True if it was."""
    a = crisis_alert.c
    done = conn.execute(
        crisis_alert.update()
        .where((a.flag_id == flag_id) & a.acknowledged_at.is_(None) & a.escalated_at.is_(None))
        .values(escalated_at=at)
    )
    return done.rowcount == 1
