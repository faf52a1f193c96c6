"""The notes service's tables and the queries on them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
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
    func,
    literal_column,
    select,
)
from sqlalchemy import text as sql_text

from iopcare.kit import topics
from iopcare.kit.db import as_utc
from iopcare.kit.journal import Journal
from iopcare.kit.schema import BigId, add_kit_tables
from iopcare.kit.teams import add_member_table, add_projection_table
from iopcare.kit.versioned import VersionedTables
from iopcare.notes import codes

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
#: Where notes' writes leave their events and audit rows (in the writing transaction).
JOURNAL = Journal(codes.SOURCE, topics.NOTES, outbox, audit_log)

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

#: Read receipts: who read which message when (one row per reader and message).
message_receipt = Table(
    "message_receipt",
    metadata,
    Column("message_id", String(64), primary_key=True),
    Column("reader", String(200), primary_key=True),
    Column("read_at", DateTime(timezone=True), nullable=False),
)

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
    in_response_to: str | None = None,
) -> None:
    lock_thread(conn, patient_id)
    conn.execute(
        communication.insert().values(
            in_response_to=in_response_to,
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
        row.status,
        row.category,
        row.version,
    )


def thread(
    conn: Connection, patient_id: str, limit: int, after_seq: int | None
) -> list[StoredMessage]:
    query = select(communication).where(communication.c.patient_id == patient_id)
    if after_seq is not None:
        query = query.where(communication.c.seq > after_seq)
    rows = conn.execute(query.order_by(communication.c.seq).limit(limit)).all()
    return [_from_row(row) for row in rows]


# Clinical notes ---------------------------------------------------------------------------------

#: Clinical notes as DocumentReferences. A draft row changes while its author edits it; once
#: signed a row never changes again (an addendum or amendment is a new row pointing at it).
note = Table(
    "note",
    metadata,
    # seq is the full-text index's row id (SQLite FTS5 rowid) and the keyset of searches.
    Column("seq", BigId, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("patient_id", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("type_code", String(32), nullable=False),
    Column("author", String(200), nullable=False),
    Column("author_role", String(64), nullable=False),
    Column("status", String(32), nullable=False),
    Column("version", Integer, nullable=False),
    Column("title", String(200), nullable=False),
    Column("text", Text, nullable=False),
    Column("shared_text", Text, nullable=False),
    # Title and both parts, as the full-text index sees them (PostgreSQL indexes an expression
    # on this column; SQLite keeps a copy in note_fts).
    Column("search_text", Text, nullable=False),
    Column("confidentiality", String(1), nullable=False),
    # Space-separated sensitivity labels (PSYTHPN, PSY, ETH, SUD).
    Column("sensitivity", String(100), nullable=False),
    # JSON list of the references the author shared a psychotherapy or V note with.
    Column("shared_with", Text, nullable=False),
    # The group session a group note belongs to (its attendees' notes share it).
    Column("group_id", String(64), nullable=True),
    Column("relates_to", String(64), nullable=True),
    Column("relation", String(16), nullable=True),
    Column("relation_reason", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("signed_at", DateTime(timezone=True), nullable=True),
    Column("signed_by", String(200), nullable=True),
    Column("resource", Text, nullable=False),
)
Index("ix_note_patient_created", note.c.patient_id, note.c.created_at)
Index("ix_note_author", note.c.author, note.c.created_at)
Index("ix_note_relates_to", note.c.relates_to)
Index("ix_note_group", note.c.group_id)
# PostgreSQL full-text search: a GIN index on the tsvector of search_text. SQLite has its own
# FTS5 table instead (created by migration 0004), so this index exists on PostgreSQL only.
FTS_CONFIG = "english"
Index(
    "ix_note_fts",
    func.to_tsvector(literal_column(f"'{FTS_CONFIG}'"), note.c.search_text),
    postgresql_using="gin",
).ddl_if(dialect="postgresql")

#: The Provenance of each signature (who signed which note when), FHIR R4 Provenance JSON.
note_provenance = Table(
    "note_provenance",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("note_id", String(64), nullable=False, index=True),
    Column("patient_id", String(64), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("resource", Text, nullable=False),
)

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

#: SQLite full-text index (FTS5, created by migration 0004; not in this metadata because it is a
#: virtual table): rowid = note.seq, columns patient (to narrow a search to one patient inside
#: the index) and body.
SQLITE_FTS = "note_fts"


@dataclass(frozen=True)
class StoredNote:
    seq: int
    id: str
    patient_id: str
    kind: str
    author: str
    author_role: str
    status: str
    version: int
    title: str
    text: str
    shared_text: str
    confidentiality: str
    sensitivity: frozenset[str]
    shared_with: frozenset[str]
    group_id: str | None
    relates_to: str | None
    relation: str | None
    relation_reason: str | None
    created_at: datetime
    signed_at: datetime | None
    signed_by: str | None
    resource: str


def _note_from_row(row: Any) -> StoredNote:
    return StoredNote(
        seq=row.seq,
        id=row.id,
        patient_id=row.patient_id,
        kind=row.kind,
        author=row.author,
        author_role=row.author_role,
        status=row.status,
        version=row.version,
        title=row.title,
        text=row.text,
        shared_text=row.shared_text,
        confidentiality=row.confidentiality,
        sensitivity=frozenset(row.sensitivity.split()),
        shared_with=frozenset(json.loads(row.shared_with)),
        group_id=row.group_id,
        relates_to=row.relates_to,
        relation=row.relation,
        relation_reason=row.relation_reason,
        created_at=as_utc(row.created_at),
        signed_at=as_utc(row.signed_at) if row.signed_at else None,
        signed_by=row.signed_by,
        resource=row.resource,
    )


def search_text(title: str, text: str, shared_text: str) -> str:
    return "\n".join(part for part in (title, shared_text, text) if part)


def _index(conn: Connection, seq: int, patient_id: str, body: str, *, replace: bool) -> None:
    """Keeps SQLite's FTS5 table in step with the note row, in the same transaction."""
    if conn.dialect.name != "sqlite":
        return  # PostgreSQL's GIN index follows the row by itself
    if replace:
        conn.execute(sql_text(f"DELETE FROM {SQLITE_FTS} WHERE rowid = :seq"), {"seq": seq})
    conn.execute(
        sql_text(f"INSERT INTO {SQLITE_FTS}(rowid, patient, body) VALUES (:seq, :patient, :body)"),
        {"seq": seq, "patient": patient_id, "body": body},
    )


def insert_note(conn: Connection, values: dict[str, Any]) -> int:
    """Inserts a note row (and its full-text entry); returns its seq."""
    values = dict(values)
    values["search_text"] = search_text(values["title"], values["text"], values["shared_text"])
    seq = conn.execute(note.insert().values(**values).returning(note.c.seq)).scalar_one()
    _index(conn, int(seq), values["patient_id"], values["search_text"], replace=False)
    return int(seq)


def update_note(conn: Connection, stored: StoredNote, values: dict[str, Any]) -> bool:
    """Stores a new state of a draft if it is still at `stored.version` (compare-and-set in the
    WHERE clause, so concurrent editors cannot both win)."""
    values = dict(values)
    title = values.get("title", stored.title)
    body = search_text(title, values.get("text", stored.text), stored.shared_text)
    values["search_text"] = body
    done = conn.execute(
        note.update()
        .where((note.c.id == stored.id) & (note.c.version == stored.version))
        .values(**values)
    )
    if done.rowcount != 1:
        return False
    _index(conn, stored.seq, stored.patient_id, body, replace=True)
    return True


def load_note(conn: Connection, note_id: str) -> StoredNote | None:
    row = conn.execute(select(note).where(note.c.id == note_id)).first()
    return _note_from_row(row) if row is not None else None


def related_notes(conn: Connection, note_id: str) -> list[StoredNote]:
    """Addenda and amendments of a note, oldest first."""
    rows = conn.execute(select(note).where(note.c.relates_to == note_id).order_by(note.c.seq))
    return [_note_from_row(row) for row in rows]


@dataclass(frozen=True)
class NoteQuery:
    patient_id: str
    author: str = ""
    kinds: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    words: str = ""
    #: Keyset: notes with seq below this (newest first).
    before_seq: int | None = None
    limit: int = 100


def _fts5_query(words: str) -> str:
    """A user's words as an FTS5 query: each word a quoted string, all of them required. Quoting
    keeps FTS5 operators and syntax (AND, NEAR, *, :) in the input from being interpreted."""
    tokens = [w.replace('"', "") for w in words.split() if w.replace('"', "")]
    return " ".join(f'"{t}"' for t in tokens)


def search_notes(conn: Connection, q: NoteQuery) -> list[StoredNote]:
    """Notes of one patient matching the query, newest first (access is decided by the caller)."""
    query = select(note).where(note.c.patient_id == q.patient_id)
    if q.author:
        query = query.where(note.c.author == q.author)
    if q.kinds:
        query = query.where(note.c.kind.in_(q.kinds))
    if q.since is not None:
        query = query.where(note.c.created_at >= q.since)
    if q.until is not None:
        query = query.where(note.c.created_at < q.until)
    if q.before_seq is not None:
        query = query.where(note.c.seq < q.before_seq)
    if q.words.strip():
        if conn.dialect.name == "sqlite":
            match = _fts5_query(q.words)
            if not match:
                return []  # only quotes: no word can match (and FTS5 would refuse the query)
            patient = '"' + q.patient_id.replace('"', '""') + '"'
            hits = sql_text(
                f"SELECT rowid FROM {SQLITE_FTS} WHERE {SQLITE_FTS} MATCH :match"
            ).bindparams(match=f"patient:{patient} AND body:({match})")
            query = query.where(note.c.seq.in_(hits.columns(literal_column("rowid"))))
        else:
            config: Any = literal_column(f"'{FTS_CONFIG}'")
            query = query.where(
                func.to_tsvector(config, note.c.search_text).op("@@")(
                    func.plainto_tsquery(config, q.words)
                )
            )
    rows = conn.execute(query.order_by(note.c.seq.desc()).limit(q.limit)).all()
    return [_note_from_row(row) for row in rows]


def insert_provenance(
    conn: Connection, provenance_id: str, note_id: str, patient_id: str, at: datetime, body: str
) -> None:
    conn.execute(
        note_provenance.insert().values(
            id=provenance_id, note_id=note_id, patient_id=patient_id, recorded_at=at, resource=body
        )
    )


def provenance_for(conn: Connection, note_id: str) -> list[str]:
    rows = conn.execute(
        select(note_provenance.c.resource)
        .where(note_provenance.c.note_id == note_id)
        .order_by(note_provenance.c.recorded_at)
    ).scalars()
    return [str(r) for r in rows]


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


def _consent_from_row(row: Any) -> StoredConsent:
    return StoredConsent(
        row.id,
        row.patient_id,
        row.recipient,
        row.scope,
        row.status,
        row.version,
        as_utc(row.period_start) if row.period_start else None,
        as_utc(row.period_end) if row.period_end else None,
        row.resource,
    )


def consents_for(conn: Connection, patient_id: str) -> list[StoredConsent]:
    rows = conn.execute(
        select(consent).where(consent.c.patient_id == patient_id).order_by(consent.c.recorded_at)
    )
    return [_consent_from_row(row) for row in rows]


def load_consent(conn: Connection, consent_id: str) -> StoredConsent | None:
    row = conn.execute(select(consent).where(consent.c.id == consent_id)).first()
    return _consent_from_row(row) if row is not None else None


def notes_of_group(conn: Connection, group_id: str) -> list[StoredNote]:
    rows = conn.execute(select(note).where(note.c.group_id == group_id).order_by(note.c.seq))
    return [_note_from_row(row) for row in rows]


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


@dataclass(frozen=True)
class StoredDraft:
    id: str
    patient_id: str
    sender: str
    version: int
    body: dict[str, Any]
    updated_at: datetime


def _draft_from_row(row: Any) -> StoredDraft:
    return StoredDraft(
        row.id,
        row.patient_id,
        row.sender,
        row.version,
        json.loads(row.body),
        as_utc(row.updated_at),
    )


def load_draft(conn: Connection, draft_id: str) -> StoredDraft | None:
    row = conn.execute(select(message_draft).where(message_draft.c.id == draft_id)).first()
    return _draft_from_row(row) if row is not None else None


def drafts_of(conn: Connection, sender: str, patient_id: str) -> list[StoredDraft]:
    rows = conn.execute(
        select(message_draft)
        .where((message_draft.c.sender == sender) & (message_draft.c.patient_id == patient_id))
        .order_by(message_draft.c.updated_at)
    )
    return [_draft_from_row(row) for row in rows]
