"""Team thread messages, and the kit tables (outbox, inbox, request log, audit log)."""

import sqlalchemy as sa
from alembic import op

from iopcare.kit.migration_steps import drop_kit_tables_v1
from iopcare.kit.schema import BigId, create_kit_tables_v1

revision = "0001"
down_revision = None


def upgrade() -> None:
    create_kit_tables_v1(op)
    op.create_table(
        "communication",
        sa.Column("seq", BigId, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("sender", sa.String(200), nullable=False),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source_event_id", sa.String(64), nullable=True, unique=True),
        sa.Column("resource", sa.Text, nullable=False),
    )
    op.create_index("ix_communication_patient_seq", "communication", ["patient_id", "seq"])


def downgrade() -> None:
    op.drop_index("ix_communication_patient_seq", "communication")
    op.drop_table("communication")
    drop_kit_tables_v1(op)
