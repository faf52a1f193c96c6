"""Review-due announcements, one per plan and due date."""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    op.create_table(
        "review_notice",
        sa.Column("plan_id", sa.String(64), primary_key=True),
        sa.Column("due", sa.Date, primary_key=True),
        sa.Column("noticed_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("review_notice")
