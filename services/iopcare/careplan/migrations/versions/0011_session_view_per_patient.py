"""One row per session and patient in the view: a group session has several patients, each with
their own attendance (scheduling sends each its own copy of the Appointment)."""

import sqlalchemy as sa
from alembic import op

from iopcare.careplan.migrations.history import session_view_columns

revision = "0011"
down_revision = "0010"

COLUMNS = 'appointment_id, patient_id, care_plan_id, start, "end", status, description, version'


def _table(name: str, *primary_key: str) -> None:
    op.create_table(
        name,
        *session_view_columns(),
        sa.PrimaryKeyConstraint(*primary_key, name=f"pk_{name}"),
    )


def _swap(*primary_key: str) -> None:
    # A projection: copied across, the old table dropped, the new one renamed into its place.
    _table("session_view_next", *primary_key)
    op.execute(f"INSERT INTO session_view_next ({COLUMNS}) SELECT {COLUMNS} FROM session_view")
    op.drop_index("ix_session_view_patient_start", "session_view")
    op.drop_table("session_view")
    op.rename_table("session_view_next", "session_view")
    op.create_index("ix_session_view_patient_start", "session_view", ["patient_id", "start"])


def upgrade() -> None:
    _swap("appointment_id", "patient_id")


def _rename_primary_key(old: str, new: str) -> None:
    """On PostgreSQL a primary key is a relation (its index) and keeps its name when its table is
    renamed: after upgrade() session_view's is `pk_session_view_next`, the name _swap() gives the
    next table's, so the downgrade must move it aside first (SQLite has no such collision)."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE session_view RENAME CONSTRAINT {old} TO {new}")


def downgrade() -> None:
    op.execute(
        "DELETE FROM session_view WHERE EXISTS (SELECT 1 FROM session_view o WHERE "
        "o.appointment_id = session_view.appointment_id AND o.patient_id < session_view.patient_id)"
    )
    _rename_primary_key("pk_session_view_next", "session_view_replaced_pkey")
    _swap("appointment_id")
    # Back to 0006's name (PostgreSQL's default), so that upgrade() can run again.
    _rename_primary_key("pk_session_view_next", "session_view_pkey")
