"""The registry: patients with their identifiers, practitioners and practitioner roles."""

from alembic import op

from iopcare.kit import migration_columns as col
from iopcare.kit.migration_steps import versioned_tables_v1

revision = "0008"
down_revision = "0007"

REGISTRY = versioned_tables_v1("patient", "practitioner", "practitioner_role")


def upgrade() -> None:
    REGISTRY.upgrade()
    op.create_table(
        "patient_identifier",
        col.string("system", 200, primary_key=True),
        col.string("value", 200, primary_key=True),
        col.ref("patient_id", index=True),
    )


def downgrade() -> None:
    op.drop_table("patient_identifier")
    REGISTRY.downgrade()
