"""When each plan series began: the anchor of timings that name no days or bounds."""

from alembic import op

from iopcare.kit import migration_columns as col

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    # Nullable: series stored before this revision have no recorded start (they keep the old
    # behaviour, anchored at each window, until their plan is created again).
    with op.batch_alter_table("plan_series") as batch:
        batch.add_column(col.at("started_at", nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("plan_series") as batch:
        batch.drop_column("started_at")
