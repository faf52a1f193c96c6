"""Message drafts: messages their sender saved without sending."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Connection, DateTime, Index, Integer, String, Table, Text, select

from iopcare.kit.copying import from_row
from iopcare.kit.db import as_utc
from iopcare.notes.cursor import Position, after
from iopcare.notes.store.schema import metadata

#: Messages their sender saved without sending (only the sender sees them). Sending one posts it
#: like any message and deletes the draft in the same transaction.
message_draft = Table(
    "message_draft",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("patient_id", String(64), nullable=False),
    Column("sender", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    # The fields of the message to be (JSON: text, priority, category, recipients, ...).
    Column("body", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
Index("ix_message_draft_sender", message_draft.c.sender, message_draft.c.patient_id)


@dataclass(frozen=True)
class StoredDraft:
    id: str
    patient_id: str
    sender: str
    version: int
    body: dict[str, Any]
    updated_at: datetime


def _draft_from_row(row: Any) -> StoredDraft:
    return from_row(StoredDraft, row, body=json.loads(row.body), updated_at=as_utc(row.updated_at))


def load_draft(conn: Connection, draft_id: str) -> StoredDraft | None:
    row = conn.execute(select(message_draft).where(message_draft.c.id == draft_id)).first()
    return _draft_from_row(row) if row is not None else None


def insert_draft(
    conn: Connection, draft_id: str, patient_id: str, sender: str, body: str, at: datetime
) -> None:
    conn.execute(
        message_draft.insert().values(
            id=draft_id,
            patient_id=patient_id,
            sender=sender,
            version=1,
            body=body,
            updated_at=at,
        )
    )


def update_draft(conn: Connection, draft_id: str, version: int, body: str, at: datetime) -> bool:
    """Stores a new version of a draft if it is still at `version`; True if this call did."""
    done = conn.execute(
        message_draft.update()
        .where((message_draft.c.id == draft_id) & (message_draft.c.version == version))
        .values(version=version + 1, body=body, updated_at=at)
    )
    return done.rowcount == 1


def delete_draft(conn: Connection, draft_id: str, version: int | None = None) -> bool:
    """Deletes a draft (only at `version` if given); True if this call did."""
    where = message_draft.c.id == draft_id
    if version is not None:
        where = where & (message_draft.c.version == version)
    return conn.execute(message_draft.delete().where(where)).rowcount == 1


def drafts_page(
    conn: Connection, sender: str, patient_id: str, limit: int, position: Position | None
) -> list[StoredDraft]:
    """The sender's drafts about a patient after `position`, oldest first (last saved, then id).
    A draft saved again moves to the end of this order."""
    c = message_draft.c
    rows = conn.execute(
        select(message_draft)
        .where(
            (c.sender == sender)
            & (c.patient_id == patient_id)
            & after(c.updated_at, c.id, position)
        )
        .order_by(c.updated_at, c.id)
        .limit(limit)
    )
    return [_draft_from_row(row) for row in rows]
