"""Patients' birth dates and family members, projected from careplan (family sessions, minors'
after-school sessions and the adolescent intensity rule)."""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"


def upgrade() -> None:
    op.create_table(
        "patient_profile",
        sa.Column("patient_id", sa.String(64), primary_key=True),
        sa.Column("birth_date", sa.Date, nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_table(
        "related_person_view",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index("ix_related_person_view_patient_id", "related_person_view", ["patient_id"])


def downgrade() -> None:
    op.drop_table("related_person_view")
    op.drop_table("patient_profile")
