"""Goals (versioned like plans) and recorded outcome measures (Observations)."""

import sqlalchemy as sa
from alembic import op

from iopcare.kit import migration_columns as col
from iopcare.kit.migration_steps import drop_versioned_tables_v1
from iopcare.kit.versioned import create_versioned_tables_v1

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    create_versioned_tables_v1(op, "goal")
    op.create_table(
        "observation",
        col.key(),
        col.ref("patient_id"),
        col.string("code", 32),
        col.string("status", 16),
        sa.Column("value", sa.Float, nullable=True),
        col.at("effective"),
        col.resource(),
        col.at("recorded_at"),
    )
    op.create_index("ix_observation_trend", "observation", ["patient_id", "code", "effective"])


def downgrade() -> None:
    op.drop_table("observation")
    drop_versioned_tables_v1(op, "goal")
