"""The medication list (MedicationStatement and MedicationRequest, versioned like plans) and the
reconciliation items of inbound medications (issue 12, part 1)."""

from alembic import op

from iopcare.kit import migration_columns as col
from iopcare.kit.migration_steps import versioned_tables_v1

revision = "0015"
down_revision = "0014"

MEDICATIONS = versioned_tables_v1("medication_statement", "medication_request")


def upgrade() -> None:
    MEDICATIONS.upgrade()
    op.create_table(
        "medication_reconciliation",
        col.key(),
        col.ref("patient_id", index=True),
        col.ref("care_plan_id"),
        col.string("source", 64),
        col.resource(),
        col.at("received_at"),
        col.string("decision", 16, nullable=True),
        col.who("decided_by", nullable=True),
        col.at("decided_at", nullable=True),
        col.text("reason", nullable=True),
        col.ref("medication_id", nullable=True),
        col.at("task_raised_at", nullable=True),
    )


def downgrade() -> None:
    op.drop_table("medication_reconciliation")
    MEDICATIONS.downgrade()
