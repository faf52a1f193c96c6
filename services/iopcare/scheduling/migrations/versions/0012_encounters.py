"""Encounters for billing: one per patient and attended session (issue 14, part 5)."""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"


def upgrade() -> None:
    op.create_table(
        "encounter",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("appointment_id", sa.String(64), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("resource", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("appointment_id", "patient_id", name="uq_encounter_session_patient"),
    )
    op.create_index("ix_encounter_patient_start", "encounter", ["patient_id", "start"])
    op.create_index("ix_encounter_start", "encounter", ["start", "id"])


def downgrade() -> None:
    op.drop_table("encounter")
