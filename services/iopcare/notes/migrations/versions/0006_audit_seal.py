"""Audit rows sealed with an HMAC of their content (kit.audit; test-matrix C12)."""

from iopcare.kit import migration_steps

revision = "0006"
down_revision = "0005"
upgrade, downgrade = migration_steps.AUDIT_SEAL_V2
