"""What each idempotent request asked for, so a request id reused for another request is refused."""

from alembic import op

from iopcare.scheduling.migrations.legacy import create_request_fingerprint_table

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    create_request_fingerprint_table(op)


def downgrade() -> None:
    op.drop_table("request_fingerprint")
