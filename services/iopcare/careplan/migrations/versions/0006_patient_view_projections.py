"""Projections of scheduling's sessions and notes' messages for the holistic patient view."""

import sqlalchemy as sa
from alembic import op

from iopcare.careplan.migrations.history import session_view_columns

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.create_table(
        "session_view", *session_view_columns(), sa.PrimaryKeyConstraint("appointment_id")
    )
    op.create_index("ix_session_view_patient_start", "session_view", ["patient_id", "start"])
    op.create_table(
        "note_view",
        sa.Column("communication_id", sa.String(64), primary_key=True),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("sender", sa.String(200), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_note_view_patient_sent", "note_view", ["patient_id", "sent_at"])


def downgrade() -> None:
    op.drop_table("note_view")
    op.drop_table("session_view")
