"""Appointments, and the kit tables (outbox, inbox, request log, audit log)."""

import sqlalchemy as sa
from alembic import op

from iopcare.kit.migration_steps import drop_kit_tables_v1
from iopcare.kit.schema import create_kit_tables_v1

revision = "0001"
down_revision = None


def upgrade() -> None:
    create_kit_tables_v1(op)
    op.create_table(
        "appointment",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("care_plan_id", sa.String(64), nullable=True),
        sa.Column("occurrence_key", sa.String(200), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("resource", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("occurrence_key", name="uq_appointment_occurrence"),
    )
    op.create_index("ix_appointment_patient_start", "appointment", ["patient_id", "start"])


def downgrade() -> None:
    op.drop_index("ix_appointment_patient_start", "appointment")
    op.drop_table("appointment")
    drop_kit_tables_v1(op)
