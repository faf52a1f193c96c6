"""Care team memberships projected from careplan's events, for access control.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from alembic import op

from iopcare.kit.teams import create_member_table_v1, create_projection_table_v1

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_member_table_v1(op)
    create_projection_table_v1(op)


def downgrade() -> None:
    op.drop_table("care_team_seen")
    op.drop_table("care_team_member")
