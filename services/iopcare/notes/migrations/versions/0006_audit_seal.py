"""Audit rows sealed with an HMAC of their content (kit.audit; test-matrix C12).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from alembic import op

from iopcare.kit.schema import add_audit_seal_v2

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_audit_seal_v2(op)


def downgrade() -> None:
    op.drop_column("audit_log", "seal")
