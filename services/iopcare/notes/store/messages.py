"""The team thread's tables: messages (FHIR Communications) and their read receipts."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
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
    func,
    select,
)
from sqlalchemy import text as sql_text

from iopcare.kit.copying import by_name, from_row
from iopcare.kit.db import as_utc
from iopcare.kit.schema import BigId
from iopcare.notes.domain.messages import NewMessage
from iopcare.notes.store.oncall import add_recipients
from iopcare.notes.store.schema import metadata

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
    # completed, or entered-in-error once its sender retracts it (kept for the record).
    Column("status", String(32), nullable=False, server_default="completed"),
    Column("in_response_to", String(64), nullable=True),
    Column("version", Integer, nullable=False, server_default="1"),
)
Index("ix_communication_patient_seq", communication.c.patient_id, communication.c.seq)


#: Read receipts: who read which message when (one row per reader and message).
message_receipt = Table(
    "message_receipt",
    metadata,
    Column("message_id", String(64), primary_key=True),
    Column("reader", String(200), primary_key=True),
    Column("read_at", DateTime(timezone=True), nullable=False),
)


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
    status: str = "completed"
    category: str = "update"
    version: int = 1


#: Namespace of the per-patient thread locks (pg_advisory_xact_lock(int, int)); kit.events uses
#: 0x10C for its outbox locks. Notes takes the thread lock first, then the outbox lock.
_THREAD_LOCK_SPACE = 0x4E7


def lock_thread(conn: Connection, patient_id: str) -> None:
    """Holds, until this transaction ends, the right to append to the patient's thread.

    Why: `seq` comes from a sequence on PostgreSQL, handed out at insert and not at commit. Two
    transactions posting to one thread could commit in the opposite order of their seqs, and a
    WatchThread stream (or a ListThread page) that already read the higher seq would move its
    cursor past the lower one and never deliver it: a gap. Taken before the insert and held to
    commit, the lock makes one patient's messages commit in seq order, so "everything after my
    cursor" is exact. SQLite has one writer at a time: commit order is insert order already.
    """
    if conn.dialect.name != "postgresql":
        return
    digest = hashlib.blake2b(patient_id.encode(), digest_size=4).digest()
    conn.execute(
        sql_text("SELECT pg_advisory_xact_lock(:space, :key)"),
        {"space": _THREAD_LOCK_SPACE, "key": int.from_bytes(digest, "big", signed=True)},
    )


def insert_message(
    conn: Connection,
    message_id: str,
    message: NewMessage,
    resource: str,
    sent_at: datetime,
    source_event_id: str | None = None,
) -> None:
    """Stores `message` as sent at `sent_at` (its FHIR Communication: `resource`), after taking
    its thread's lock; `source_event_id` is the event a system message was written for."""
    lock_thread(conn, message.patient_id)
    inserted = conn.execute(
        communication.insert().values(
            id=message_id,
            **by_name(message, "patient_id sender priority category text in_response_to"),
            sent_at=sent_at,
            resource=resource,
            source_event_id=source_event_id,
        )
    )
    key = inserted.inserted_primary_key
    assert key is not None
    seq = int(key[0])
    add_recipients(conn, message_id, seq, message.recipients, sent_at)


def message_for_event(conn: Connection, event_id: str) -> str | None:
    return conn.execute(
        select(communication.c.id).where(communication.c.source_event_id == event_id)
    ).scalar()


def load_message(conn: Connection, message_id: str) -> StoredMessage | None:
    row = conn.execute(select(communication).where(communication.c.id == message_id)).first()
    return _from_row(row) if row is not None else None


def _from_row(row: Any) -> StoredMessage:
    return from_row(StoredMessage, row, sent_at=as_utc(row.sent_at))


def thread(
    conn: Connection, patient_id: str, limit: int, after_seq: int | None
) -> list[StoredMessage]:
    query = select(communication).where(communication.c.patient_id == patient_id)
    if after_seq is not None:
        query = query.where(communication.c.seq > after_seq)
    rows = conn.execute(query.order_by(communication.c.seq).limit(limit)).all()
    return [_from_row(row) for row in rows]


def last_seq(conn: Connection, patient_id: str) -> int:
    """The position of the newest message in a patient's thread (0 when it has none)."""
    value = conn.execute(
        select(func.max(communication.c.seq)).where(communication.c.patient_id == patient_id)
    ).scalar()
    return int(value or 0)


def receipts(conn: Connection, message_id: str) -> list[tuple[str, datetime]]:
    rows = conn.execute(
        select(message_receipt.c.reader, message_receipt.c.read_at)
        .where(message_receipt.c.message_id == message_id)
        .order_by(message_receipt.c.read_at)
    ).all()
    return [(row.reader, as_utc(row.read_at)) for row in rows]


def add_receipt(conn: Connection, message_id: str, reader: str, at: datetime) -> int:
    """Inserts a receipt unless the reader has one already; returns 1 if it was new."""
    exists = conn.execute(
        select(message_receipt.c.reader).where(
            (message_receipt.c.message_id == message_id) & (message_receipt.c.reader == reader)
        )
    ).first()
    if exists is not None:
        return 0
    conn.execute(message_receipt.insert().values(message_id=message_id, reader=reader, read_at=at))
    return 1


def mark_retracted(conn: Connection, message_id: str, version: int, resource: str) -> bool:
    """Marks a message entered-in-error if it is still at `version` (compare-and-set); True if
    this call did."""
    done = conn.execute(
        communication.update()
        .where((communication.c.id == message_id) & (communication.c.version == version))
        .values(status="entered-in-error", version=version + 1, resource=resource)
    )
    return done.rowcount == 1
