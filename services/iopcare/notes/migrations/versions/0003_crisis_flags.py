"""Crisis flags and their acknowledgement and re-escalation."""

import sqlalchemy as sa
from alembic import op

from iopcare.kit.versioned import create_versioned_tables_v1

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    create_versioned_tables_v1(op, "flag")
    op.create_table(
        "crisis_alert",
        sa.Column("flag_id", sa.String(64), primary_key=True),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("recipients", sa.Text, nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_by", sa.String(200), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_crisis_alert_open", "crisis_alert", ["acknowledged_at", "raised_at"])


def downgrade() -> None:
    op.drop_table("crisis_alert")
    op.drop_table("flag_history")
    op.drop_table("flag")
