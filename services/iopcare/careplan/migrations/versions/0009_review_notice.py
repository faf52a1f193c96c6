"""Review-due announcements, one per plan and due date."""

from alembic import op

from iopcare.kit import migration_columns as col

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    op.create_table(
        "review_notice",
        col.key("plan_id"),
        col.day("due", primary_key=True),
        col.at("noticed_at"),
    )


def downgrade() -> None:
    op.drop_table("review_notice")
