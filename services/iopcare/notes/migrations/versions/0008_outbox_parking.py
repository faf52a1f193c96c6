"""Outbox rows the brokers refuse for good are parked, not retried forever (kit.relay; issue 10).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from alembic import op

from iopcare.kit.schema import add_outbox_parking_v2

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_outbox_parking_v2(op)


def downgrade() -> None:
    op.drop_column("outbox", "park_reason")
    op.drop_column("outbox", "parked_at")
