"""The registry: patients with their identifiers, practitioners and practitioner roles."""

import sqlalchemy as sa
from alembic import op

from iopcare.kit.versioned import create_versioned_tables_v1

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    for name in ("patient", "practitioner", "practitioner_role"):
        create_versioned_tables_v1(op, name)
    op.create_table(
        "patient_identifier",
        sa.Column("system", sa.String(200), primary_key=True),
        sa.Column("value", sa.String(200), primary_key=True),
        sa.Column("patient_id", sa.String(64), nullable=False, index=True),
    )


def downgrade() -> None:
    op.drop_table("patient_identifier")
    for name in ("practitioner_role", "practitioner", "patient"):
        op.drop_table(f"{name}_history")
        op.drop_table(name)
