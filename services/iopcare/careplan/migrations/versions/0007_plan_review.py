"""Plan reviews with each discipline's attestation."""

from alembic import op

from iopcare.kit import migration_columns as col

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    op.create_table(
        "plan_review",
        col.key("plan_id"),
        col.version(primary_key=True),
        col.day("reviewed_on"),
        col.string("outcome", 32),
        col.text("summary"),
        col.text("attestations"),
        col.who("recorded_by"),
        col.at("recorded_at"),
    )


def downgrade() -> None:
    op.drop_table("plan_review")
