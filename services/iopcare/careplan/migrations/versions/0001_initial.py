"""Care plans with history, and the kit tables (outbox, inbox, request log, audit log)."""

import sqlalchemy as sa
from alembic import op

from iopcare.kit.migration_steps import drop_kit_tables_v1
from iopcare.kit.schema import create_kit_tables_v1

revision = "0001"
down_revision = None


def upgrade() -> None:
    create_kit_tables_v1(op)
    op.create_table(
        "care_plan",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("resource", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_care_plan_patient_id", "care_plan", ["patient_id"])
    op.create_table(
        "care_plan_history",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("resource", sa.Text, nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.String(200), nullable=False),
        sa.Column("change", sa.String(40), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("care_plan_history")
    op.drop_index("ix_care_plan_patient_id", "care_plan")
    op.drop_table("care_plan")
    drop_kit_tables_v1(op)
