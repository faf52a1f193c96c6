"""Team thread messages, and the kit tables (outbox, inbox, request log, audit log)."""

import sqlalchemy as sa
from alembic import op

from iopcare.kit import migration_columns as col
from iopcare.kit.migration_steps import drop_kit_tables_v1
from iopcare.kit.schema import BigId, create_kit_tables_v1

revision = "0001"
down_revision = None


def upgrade() -> None:
    create_kit_tables_v1(op)
    op.create_table(
        "communication",
        sa.Column("seq", BigId, primary_key=True, autoincrement=True),
        col.ref("id", unique=True),
        col.ref("patient_id"),
        col.who("sender"),
        col.string("priority", 16),
        col.string("category", 32),
        col.text("text"),
        col.at("sent_at"),
        col.ref("source_event_id", nullable=True, unique=True),
        col.resource(),
    )
    op.create_index("ix_communication_patient_seq", "communication", ["patient_id", "seq"])


def downgrade() -> None:
    op.drop_index("ix_communication_patient_seq", "communication")
    op.drop_table("communication")
    drop_kit_tables_v1(op)
