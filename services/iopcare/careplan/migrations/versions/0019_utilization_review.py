"""Utilization review: coverage, authorizations (ClaimResponse) and the alerts raised on them."""

from alembic import op

from iopcare.kit import migration_columns as col
from iopcare.kit.migration_steps import versioned_tables_v1

revision = "0019"
down_revision = "0018"

_tables = versioned_tables_v1("coverage", "claim_response")


def upgrade() -> None:
    _tables.upgrade()
    op.create_table(
        "authorization_alert",
        col.key("authorization_id"),
        col.string("kind", 32, primary_key=True),
        col.ref("patient_id"),
        col.text("task"),
        col.at("raised_at"),
    )


def downgrade() -> None:
    op.drop_table("authorization_alert")
    _tables.downgrade()
