"""Crisis flags and their acknowledgement and re-escalation."""

from alembic import op

from iopcare.kit import migration_columns as col
from iopcare.kit.migration_steps import drop_versioned_tables_v1
from iopcare.kit.versioned import create_versioned_tables_v1

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    create_versioned_tables_v1(op, "flag")
    op.create_table(
        "crisis_alert",
        col.key("flag_id"),
        col.ref("patient_id"),
        col.ref("message_id"),
        col.text("recipients"),
        col.at("raised_at"),
        col.who("acknowledged_by", nullable=True),
        col.at("acknowledged_at", nullable=True),
        col.at("escalated_at", nullable=True),
    )
    op.create_index("ix_crisis_alert_open", "crisis_alert", ["acknowledged_at", "raised_at"])


def downgrade() -> None:
    op.drop_table("crisis_alert")
    drop_versioned_tables_v1(op, "flag")
