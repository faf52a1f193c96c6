"""The request log keeps each request's fingerprint (kit.requests): a request id reused for a
different request is refused instead of answered with the first result (issue 11, item 2).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from alembic import op

from iopcare.kit.schema import add_request_fingerprint_v2

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_request_fingerprint_v2(op)


def downgrade() -> None:
    op.drop_column("request_log", "fingerprint")
