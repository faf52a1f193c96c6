"""Clinical notes with full-text search, signatures, consents; message status and receipts."""

import sqlalchemy as sa
from alembic import op

from iopcare.kit import migration_columns as col
from iopcare.kit.schema import BigId

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    with op.batch_alter_table("communication") as batch:
        batch.add_column(col.string("status", 32, server_default="completed"))
        batch.add_column(col.ref("in_response_to", nullable=True))
        batch.add_column(col.version(server_default="1"))
    op.create_table(
        "message_receipt",
        col.key("message_id"),
        col.who("reader", primary_key=True),
        col.at("read_at"),
    )
    op.create_table(
        "note",
        sa.Column("seq", BigId, primary_key=True, autoincrement=True),
        col.ref("id", unique=True),
        col.ref("patient_id"),
        col.string("kind", 32),
        col.string("type_code", 32),
        col.who("author"),
        col.string("author_role", 64),
        col.string("status", 32),
        col.version(),
        col.string("title", 200),
        col.text("text"),
        col.text("shared_text"),
        col.text("search_text"),
        col.string("confidentiality", 1),
        col.string("sensitivity", 100),
        col.text("shared_with"),
        col.ref("group_id", nullable=True),
        col.ref("relates_to", nullable=True),
        col.string("relation", 16, nullable=True),
        col.text("relation_reason", nullable=True),
        col.at("created_at"),
        col.at("updated_at"),
        col.at("signed_at", nullable=True),
        col.who("signed_by", nullable=True),
        col.resource(),
    )
    op.create_index("ix_note_patient_created", "note", ["patient_id", "created_at"])
    op.create_index("ix_note_author", "note", ["author", "created_at"])
    op.create_index("ix_note_relates_to", "note", ["relates_to"])
    op.create_index("ix_note_group", "note", ["group_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE INDEX ix_note_fts ON note USING gin (to_tsvector('english', search_text))"
        )
    else:
        # rowid = note.seq. `patient` is indexed too, so a search in one patient's notes is an
        # intersection inside the index rather than a scan of every hit in the program.
        op.execute(
            "CREATE VIRTUAL TABLE note_fts USING fts5(patient, body, tokenize = 'porter unicode61')"
        )
    op.create_table(
        "note_provenance",
        col.key(),
        col.ref("note_id"),
        col.ref("patient_id"),
        col.at("recorded_at"),
        col.resource(),
    )
    op.create_index("ix_note_provenance_note_id", "note_provenance", ["note_id"])
    op.create_table(
        "consent",
        col.key(),
        col.ref("patient_id"),
        col.who("recipient"),
        col.string("scope", 16),
        col.string("status", 16),
        col.version(),
        col.at("period_start", nullable=True),
        col.at("period_end", nullable=True),
        col.who("recorded_by"),
        col.at("recorded_at"),
        col.at("revoked_at", nullable=True),
        col.resource(),
    )
    op.create_index("ix_consent_patient_id", "consent", ["patient_id"])


def downgrade() -> None:
    op.drop_table("consent")
    op.drop_table("note_provenance")
    if op.get_bind().dialect.name != "postgresql":
        op.execute("DROP TABLE note_fts")
    op.drop_table("note")
    op.drop_table("message_receipt")
    with op.batch_alter_table("communication") as batch:
        batch.drop_column("version")
        batch.drop_column("in_response_to")
        batch.drop_column("status")
