"""The request log keeps each request's fingerprint (kit.requests): a request id reused for a
different request is refused instead of answered with the first result (issue 11, item 2)."""

from iopcare.kit import migration_steps

revision = "0013"
down_revision = "0012"
upgrade, downgrade = migration_steps.REQUEST_FINGERPRINT_V2
