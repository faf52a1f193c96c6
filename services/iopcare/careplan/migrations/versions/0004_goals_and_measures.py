"""Goals (versioned like plans) and recorded outcome measures (Observations)."""

import sqlalchemy as sa
from alembic import op

from iopcare.kit.versioned import create_versioned_tables_v1

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    create_versioned_tables_v1(op, "goal")
    op.create_table(
        "observation",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("effective", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resource", sa.Text, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_observation_trend", "observation", ["patient_id", "code", "effective"])


def downgrade() -> None:
    op.drop_table("observation")
    op.drop_table("goal_history")
    op.drop_table("goal")
