"""Projections of scheduling's sessions and notes' messages for the holistic patient view."""

import sqlalchemy as sa
from alembic import op

from iopcare.careplan.migrations.history import session_view_columns
from iopcare.kit import migration_columns as col

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.create_table(
        "session_view", *session_view_columns(), sa.PrimaryKeyConstraint("appointment_id")
    )
    op.create_index("ix_session_view_patient_start", "session_view", ["patient_id", "start"])
    op.create_table(
        "note_view",
        col.key("communication_id"),
        col.ref("patient_id"),
        col.who("sender"),
        col.string("title", 200),
        col.string("category", 32),
        col.string("priority", 16),
        col.at("sent_at"),
    )
    op.create_index("ix_note_view_patient_sent", "note_view", ["patient_id", "sent_at"])


def downgrade() -> None:
    op.drop_table("note_view")
    op.drop_table("session_view")
