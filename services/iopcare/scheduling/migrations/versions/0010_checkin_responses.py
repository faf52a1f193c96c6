"""The patient's daily check-in answers (issue 12): one QuestionnaireResponse per answered
check-in."""

from alembic import op

from iopcare.kit import migration_columns as col

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    op.create_table(
        "checkin_response",
        col.key(),
        col.ref("patient_id"),
        col.day("day"),
        col.at("authored_at"),
        col.resource(),
    )
    op.create_index(
        "ix_checkin_response_patient", "checkin_response", ["patient_id", "authored_at"]
    )


def downgrade() -> None:
    op.drop_table("checkin_response")
