"""The request log keeps each request's fingerprint (kit.requests): a request id reused for a
different request is refused instead of answered with the first result (issue 11, item 2).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

from iopcare.kit.schema import add_request_fingerprint_v2

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_request_fingerprint_v2(op)
    # scheduling's own fingerprint table is replaced by the column. Its hashes were of another
    # form, so they are not carried over: those rows answer as before (no fingerprint).
    op.drop_table("request_fingerprint")


def downgrade() -> None:
    op.create_table(
        "request_fingerprint",
        sa.Column("principal", sa.String(200), primary_key=True),
        sa.Column("operation", sa.String(100), primary_key=True),
        sa.Column("request_id", sa.String(100), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
    )
    op.drop_column("request_log", "fingerprint")
