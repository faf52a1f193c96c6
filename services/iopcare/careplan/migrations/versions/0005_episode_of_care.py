"""IOP enrolment: EpisodeOfCare, versioned like plans (its versions are the level-of-care
history)."""

from alembic import op

from iopcare.kit.versioned import create_versioned_tables_v1

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    create_versioned_tables_v1(op, "episode_of_care")


def downgrade() -> None:
    op.drop_table("episode_of_care_history")
    op.drop_table("episode_of_care")
