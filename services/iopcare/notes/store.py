"""The notes service's tables and the queries on them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Index,
    MetaData,
    String,
    Table,
    Text,
    select,
)

from iopcare.kit.db import as_utc
from iopcare.kit.schema import BigId, add_kit_tables
from iopcare.kit.teams import add_member_table, add_projection_table
from iopcare.kit.versioned import VersionedTables

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

communication = Table(
    "communication",
    metadata,
    # seq orders a thread as messages were stored; keyset paging follows it.
    Column("seq", BigId, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("patient_id", String(64), nullable=False),
    Column("sender", String(200), nullable=False),
    Column("priority", String(16), nullable=False),
    Column("category", String(32), nullable=False),
    Column("text", Text, nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=False),
    # The event a system message was written for: at most one message per event, whatever
    # happens to the inbox.
    Column("source_event_id", String(64), nullable=True, unique=True),
    Column("resource", Text, nullable=False),
)
Index("ix_communication_patient_seq", communication.c.patient_id, communication.c.seq)

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


@dataclass(frozen=True)
class StoredMessage:
    seq: int
    id: str
    patient_id: str
    sender: str
    priority: str
    text: str
    sent_at: datetime
    resource: str


def insert_message(
    conn: Connection,
    *,
    message_id: str,
    patient_id: str,
    sender: str,
    priority: str,
    category: str,
    text: str,
    sent_at: datetime,
    resource: str,
    source_event_id: str | None = None,
) -> None:
    conn.execute(
        communication.insert().values(
            id=message_id,
            patient_id=patient_id,
            sender=sender,
            priority=priority,
            category=category,
            text=text,
            sent_at=sent_at,
            resource=resource,
            source_event_id=source_event_id,
        )
    )


def message_for_event(conn: Connection, event_id: str) -> str | None:
    return conn.execute(
        select(communication.c.id).where(communication.c.source_event_id == event_id)
    ).scalar()


def load_message(conn: Connection, message_id: str) -> StoredMessage | None:
    row = conn.execute(select(communication).where(communication.c.id == message_id)).first()
    return _from_row(row) if row is not None else None


def _from_row(row: Any) -> StoredMessage:
    return StoredMessage(
        row.seq,
        row.id,
        row.patient_id,
        row.sender,
        row.priority,
        row.text,
        as_utc(row.sent_at),
        row.resource,
    )


def thread(
    conn: Connection, patient_id: str, limit: int, after_seq: int | None
) -> list[StoredMessage]:
    query = select(communication).where(communication.c.patient_id == patient_id)
    if after_seq is not None:
        query = query.where(communication.c.seq > after_seq)
    rows = conn.execute(query.order_by(communication.c.seq).limit(limit)).all()
    return [_from_row(row) for row in rows]
