"""Signed clinical notes in the holistic view (reference, type, author and labels only)."""

from alembic import op

from iopcare.kit import migration_columns as col

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    op.create_table(
        "document_view",
        col.key("document_id"),
        col.ref("patient_id"),
        col.version(),
        col.who("author"),
        col.string("kind", 32),
        col.string("title", 200),
        col.string("confidentiality", 1),
        col.string("sensitivity", 100),
        col.at("signed_at"),
    )
    op.create_index("ix_document_view_patient_signed", "document_view", ["patient_id", "signed_at"])


def downgrade() -> None:
    op.drop_index("ix_document_view_patient_signed", "document_view")
    op.drop_table("document_view")
