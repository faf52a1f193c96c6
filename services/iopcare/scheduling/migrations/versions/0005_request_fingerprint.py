"""What each idempotent request asked for, so a request id reused for another request is refused.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from alembic import op

from iopcare.scheduling.migrations.legacy import create_request_fingerprint_table

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_request_fingerprint_table(op)


def downgrade() -> None:
    op.drop_table("request_fingerprint")
