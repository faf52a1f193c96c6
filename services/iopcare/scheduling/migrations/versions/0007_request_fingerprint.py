"""The request log keeps each request's fingerprint (kit.requests): a request id reused for a
different request is refused instead of answered with the first result (issue 11, item 2)."""

from alembic import op

from iopcare.kit.migration_steps import REQUEST_FINGERPRINT_V2
from iopcare.scheduling.migrations.legacy import create_request_fingerprint_table

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    REQUEST_FINGERPRINT_V2.upgrade()
    # scheduling's own fingerprint table is replaced by the column. Its hashes were of another
    # form, so they are not carried over: those rows answer as before (no fingerprint).
    op.drop_table("request_fingerprint")


def downgrade() -> None:
    create_request_fingerprint_table(op)
    REQUEST_FINGERPRINT_V2.downgrade()
