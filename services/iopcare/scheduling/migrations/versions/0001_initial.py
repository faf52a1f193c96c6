"""Appointments, and the kit tables (outbox, inbox, request log, audit log)."""

import sqlalchemy as sa
from alembic import op

from iopcare.kit import migration_columns as col
from iopcare.kit.migration_steps import drop_kit_tables_v1
from iopcare.kit.schema import create_kit_tables_v1

revision = "0001"
down_revision = None


def upgrade() -> None:
    create_kit_tables_v1(op)
    op.create_table(
        "appointment",
        col.key(),
        col.ref("patient_id"),
        col.ref("care_plan_id", nullable=True),
        col.string("occurrence_key", 200, nullable=True),
        col.string("status", 32),
        col.at("start"),
        col.at("end"),
        col.version(),
        col.resource(),
        col.at("updated_at"),
        sa.UniqueConstraint("occurrence_key", name="uq_appointment_occurrence"),
    )
    op.create_index("ix_appointment_patient_start", "appointment", ["patient_id", "start"])


def downgrade() -> None:
    op.drop_index("ix_appointment_patient_start", "appointment")
    op.drop_table("appointment")
    drop_kit_tables_v1(op)
