"""IOP enrolment: EpisodeOfCare, versioned like plans (its versions are the level-of-care
history)."""

from iopcare.kit import migration_steps

revision = "0005"
down_revision = "0004"
upgrade, downgrade = migration_steps.versioned_tables_v1("episode_of_care")
