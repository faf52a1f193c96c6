"""Signed clinical notes in the holistic view (reference, type, author and labels only)."""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    op.create_table(
        "document_view",
        sa.Column("document_id", sa.String(64), primary_key=True),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("confidentiality", sa.String(1), nullable=False),
        sa.Column("sensitivity", sa.String(100), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_document_view_patient_signed", "document_view", ["patient_id", "signed_at"])


def downgrade() -> None:
    op.drop_index("ix_document_view_patient_signed", "document_view")
    op.drop_table("document_view")
