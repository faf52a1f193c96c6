"""After-hours coverage (issue 12): the on-call roster, each urgent alert's route along it, and
who each message is addressed to (the on-call clinician's WatchThread across threads).

Messages stored before this migration have no recipient rows: a clinician's own stream starts at
the newest message addressed to them, so none of those is ever asked for."""

import sqlalchemy as sa
from alembic import op

from iopcare.kit import migration_columns as col
from iopcare.kit.schema import BigId

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    op.create_table(
        "oncall_roster",
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        col.text("shifts"),
        col.at("updated_at"),
        col.who("updated_by"),
    )
    op.create_table(
        "crisis_route",
        col.key("flag_id"),
        sa.Column("step", sa.Integer, primary_key=True, autoincrement=False),
        col.ref("patient_id"),
        col.who("clinician"),
        col.at("notified_at"),
    )
    op.create_index("ix_crisis_route_clinician", "crisis_route", ["clinician", "patient_id"])
    op.create_table(
        "message_recipient",
        sa.Column("row_id", BigId, primary_key=True, autoincrement=True),
        col.who("recipient"),
        sa.Column("seq", BigId, nullable=False),
        col.ref("message_id"),
        col.at("stored_at"),
    )
    op.create_index("ix_message_recipient_seq", "message_recipient", ["recipient", "seq"])


def downgrade() -> None:
    op.drop_table("message_recipient")
    op.drop_table("crisis_route")
    op.drop_table("oncall_roster")
