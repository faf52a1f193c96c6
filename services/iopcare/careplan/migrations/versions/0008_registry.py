"""The registry: patients with their identifiers, practitioners and practitioner roles."""

from alembic import op

from iopcare.kit import migration_columns as col
from iopcare.kit.versioned import create_versioned_tables_v1

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    for name in ("patient", "practitioner", "practitioner_role"):
        create_versioned_tables_v1(op, name)
    op.create_table(
        "patient_identifier",
        col.string("system", 200, primary_key=True),
        col.string("value", 200, primary_key=True),
        col.ref("patient_id", index=True),
    )


def downgrade() -> None:
    op.drop_table("patient_identifier")
    for name in ("practitioner_role", "practitioner", "patient"):
        op.drop_table(f"{name}_history")
        op.drop_table(name)
