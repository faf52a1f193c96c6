"""Safety plans (Stanley-Brown, a versioned QuestionnaireResponse per patient) and the reviews a
crisis makes due (issue 12, part 3)."""

import sqlalchemy as sa
from alembic import op

from iopcare.kit import migration_columns as col
from iopcare.kit.migration_steps import drop_versioned_tables_v1
from iopcare.kit.versioned import create_versioned_tables_v1

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    create_versioned_tables_v1(op, "safety_plan")
    op.create_index("ux_safety_plan_patient", "safety_plan", ["patient_id"], unique=True)
    op.create_table(
        "safety_plan_review",
        col.key(),
        col.ref("patient_id", index=True),
        col.at("due_since"),
        col.text("reason"),
        col.ref("flag_id", nullable=True),
        col.number("crises"),
        col.at("cleared_at", nullable=True),
        col.who("cleared_by", nullable=True),
        sa.Column("cleared_version", sa.Integer, nullable=True),
    )
    op.create_table(
        "plan_part2_label",
        col.key("plan_id"),
        col.ref("patient_id", index=True),
        col.text("labels"),
    )


def downgrade() -> None:
    op.drop_table("plan_part2_label")
    op.drop_table("safety_plan_review")
    drop_versioned_tables_v1(op, "safety_plan")
