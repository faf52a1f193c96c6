"""Care teams, versioned like plans, and the membership rows access control reads.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

from iopcare.kit.schema import BigId
from iopcare.kit.versioned import create_versioned_tables_v1

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_versioned_tables_v1(op, "care_team")
    op.create_table(
        "care_team_member",
        sa.Column("row_id", BigId, primary_key=True, autoincrement=True),
        sa.Column("team_id", sa.String(64), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("member", sa.String(200), nullable=False),
        sa.Column("role", sa.String(64), nullable=True),
        sa.Column("period_start", sa.Date, nullable=True),
        sa.Column("period_end", sa.Date, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_care_team_member_lookup", "care_team_member", ["member", "patient_id"])
    op.create_index("ix_care_team_member_team", "care_team_member", ["team_id"])


def downgrade() -> None:
    op.drop_table("care_team_member")
    op.drop_table("care_team_history")
    op.drop_index("ix_care_team_patient_id", "care_team")
    op.drop_table("care_team")
