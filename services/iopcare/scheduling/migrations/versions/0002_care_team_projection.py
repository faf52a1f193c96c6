"""Care team memberships projected from careplan's events, for access control."""

from iopcare.kit import migration_steps

revision = "0002"
down_revision = "0001"
upgrade, downgrade = migration_steps.TEAM_PROJECTION_V1
