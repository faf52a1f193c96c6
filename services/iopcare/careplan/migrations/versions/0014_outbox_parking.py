"""Outbox rows the brokers refuse for good are parked, not retried forever (kit.relay; issue 10)."""

from iopcare.kit import migration_steps

revision = "0014"
down_revision = "0013"
upgrade, downgrade = migration_steps.OUTBOX_PARKING_V2
