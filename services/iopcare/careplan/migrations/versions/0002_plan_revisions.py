"""Plan revisions: each history row records the plan's status and the author's reason."""

from alembic import op

from iopcare.kit import migration_columns as col

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    with op.batch_alter_table("care_plan_history") as batch:
        batch.add_column(col.string("status", 32, nullable=True))
        batch.add_column(col.text("reason", nullable=True))
    # Existing rows are creations: their status is the plan's current one only if it never
    # changed, which is true of every plan before this migration (there was no update).
    op.execute(
        "UPDATE care_plan_history SET status = "
        "(SELECT status FROM care_plan WHERE care_plan.id = care_plan_history.id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("care_plan_history") as batch:
        batch.drop_column("reason")
        batch.drop_column("status")
