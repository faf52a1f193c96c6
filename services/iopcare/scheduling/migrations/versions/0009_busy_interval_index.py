"""Indexes that keep proposing a plan's sessions independent of how many are booked (issue 16).

`ix_occupancy_busy` (actor, blocking, start): an overlap check reads only the actor's blocking
rows that start within one longest session before the wanted interval, instead of every row the
actor ever had. `ix_occupancy_actor_start` stays for listings by actor. `ix_appointment_plan`
(care_plan_id, start): a changed or closed plan finds its future sessions without a scan."""

from alembic import op

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    op.create_index("ix_occupancy_busy", "occupancy", ["actor", "blocking", "start"])
    op.create_index("ix_appointment_plan", "appointment", ["care_plan_id", "start"])


def downgrade() -> None:
    op.drop_index("ix_appointment_plan", table_name="appointment")
    op.drop_index("ix_occupancy_busy", table_name="occupancy")
