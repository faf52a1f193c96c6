"""Clinical notes with full-text search, signatures, consents; message status and receipts."""

import sqlalchemy as sa
from alembic import op

from iopcare.kit.schema import BigId

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    with op.batch_alter_table("communication") as batch:
        batch.add_column(
            sa.Column("status", sa.String(32), nullable=False, server_default="completed")
        )
        batch.add_column(sa.Column("in_response_to", sa.String(64), nullable=True))
        batch.add_column(sa.Column("version", sa.Integer, nullable=False, server_default="1"))
    op.create_table(
        "message_receipt",
        sa.Column("message_id", sa.String(64), primary_key=True),
        sa.Column("reader", sa.String(200), primary_key=True),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "note",
        sa.Column("seq", BigId, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("type_code", sa.String(32), nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("author_role", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("shared_text", sa.Text, nullable=False),
        sa.Column("search_text", sa.Text, nullable=False),
        sa.Column("confidentiality", sa.String(1), nullable=False),
        sa.Column("sensitivity", sa.String(100), nullable=False),
        sa.Column("shared_with", sa.Text, nullable=False),
        sa.Column("group_id", sa.String(64), nullable=True),
        sa.Column("relates_to", sa.String(64), nullable=True),
        sa.Column("relation", sa.String(16), nullable=True),
        sa.Column("relation_reason", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("signed_by", sa.String(200), nullable=True),
        sa.Column("resource", sa.Text, nullable=False),
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
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("note_id", sa.String(64), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resource", sa.Text, nullable=False),
    )
    op.create_index("ix_note_provenance_note_id", "note_provenance", ["note_id"])
    op.create_table(
        "consent",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("recipient", sa.String(200), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recorded_by", sa.String(200), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resource", sa.Text, nullable=False),
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
