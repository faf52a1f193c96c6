"""Clinical notes (DocumentReferences), their signatures (Provenance) and their full-text index."""

from __future__ import annotations

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
    String,
    Table,
    Text,
    func,
    literal_column,
    select,
)
from sqlalchemy import text as sql_text

from iopcare.kit.copying import from_row
from iopcare.kit.db import as_utc
from iopcare.kit.schema import BigId
from iopcare.notes.store.schema import metadata

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
    return from_row(
        StoredNote,
        row,
        sensitivity=frozenset(row.sensitivity.split()),
        shared_with=frozenset(json.loads(row.shared_with)),
        created_at=as_utc(row.created_at),
        signed_at=as_utc(row.signed_at) if row.signed_at else None,
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


def notes_of_group(conn: Connection, group_id: str) -> list[StoredNote]:
    rows = conn.execute(select(note).where(note.c.group_id == group_id).order_by(note.c.seq))
    return [_note_from_row(row) for row in rows]
