"""Care teams, versioned like plans, and the membership rows access control reads."""

from alembic import op

from iopcare.kit.migration_steps import drop_member_table_v1, drop_versioned_tables_v1
from iopcare.kit.teams import create_member_table_v1
from iopcare.kit.versioned import create_versioned_tables_v1

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    create_versioned_tables_v1(op, "care_team")
    create_member_table_v1(op)


def downgrade() -> None:
    drop_member_table_v1(op)
    drop_versioned_tables_v1(op, "care_team")
