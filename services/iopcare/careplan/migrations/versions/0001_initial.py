"""Care plans with history, and the kit tables (outbox, inbox, request log, audit log)."""

from alembic import op

from iopcare.kit import migration_columns as col
from iopcare.kit.migration_steps import drop_kit_tables_v1
from iopcare.kit.schema import create_kit_tables_v1

revision = "0001"
down_revision = None


def upgrade() -> None:
    create_kit_tables_v1(op)
    op.create_table(
        "care_plan",
        col.key(),
        col.ref("patient_id"),
        col.string("status", 32),
        col.version(),
        col.resource(),
        col.at("created_at"),
        col.at("updated_at"),
    )
    op.create_index("ix_care_plan_patient_id", "care_plan", ["patient_id"])
    op.create_table(
        "care_plan_history",
        col.key(),
        col.version(primary_key=True),
        col.resource(),
        col.at("changed_at"),
        col.who("changed_by"),
        col.string("change", 40),
    )


def downgrade() -> None:
    op.drop_table("care_plan_history")
    op.drop_index("ix_care_plan_patient_id", "care_plan")
    op.drop_table("care_plan")
    drop_kit_tables_v1(op)
