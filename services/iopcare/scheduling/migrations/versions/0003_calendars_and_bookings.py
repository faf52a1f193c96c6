"""Calendars, bookings and group sessions: schedules, occupancy rows, calendar locks, alerts."""

import sqlalchemy as sa
from alembic import op

from iopcare.kit import migration_columns as col

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    with op.batch_alter_table("appointment") as batch:
        batch.alter_column("patient_id", existing_type=sa.String(64), nullable=True)
        batch.add_column(col.string("kind", 16, server_default="individual"))
        batch.add_column(col.number("capacity", server_default="1"))
        batch.add_column(col.number("seats_taken", server_default="0"))
        # The database's own guard against overbooking a group, whatever the code does.
        batch.create_check_constraint(
            "ck_appointment_seats", "seats_taken >= 0 AND seats_taken <= capacity"
        )
    op.create_table(
        "schedule",
        col.key(),
        col.who("actor"),
        col.string("kind", 16),
        col.string("role", 64, nullable=True),
        col.string("service_types", 1000),
        col.number("capacity"),
        col.text("hours"),
        col.text("closed_dates"),
        col.flag("active"),
        col.version(),
        col.resource(),
        col.at("updated_at"),
        sa.UniqueConstraint("actor", name="uq_schedule_actor"),
    )
    op.create_index("ix_schedule_role", "schedule", ["role"])
    op.create_table(
        "occupancy",
        col.key("appointment_id"),
        col.who("actor", primary_key=True),
        col.string("role", 16),
        col.at("start"),
        col.at("end"),
        col.flag("blocking"),
        col.flag("active"),
        col.string("attendance", 32, nullable=True),
        col.string("occurrence_key", 200, nullable=True),
        sa.UniqueConstraint("occurrence_key", name="uq_occupancy_occurrence"),
    )
    op.create_index("ix_occupancy_actor_start", "occupancy", ["actor", "start"])
    # Sessions proposed before this revision take part as their patient's (non-blocking) rows.
    op.execute(
        """
        INSERT INTO occupancy (appointment_id, actor, role, start, "end", blocking, active,
                               attendance)
        SELECT id, 'Patient/' || patient_id, 'patient', start, "end", false,
               status NOT IN ('cancelled', 'entered-in-error'),
               CASE WHEN status IN ('arrived', 'checked-in', 'fulfilled', 'noshow')
                    THEN status END
        FROM appointment
        """
    )
    op.create_table(
        "plan_series",
        col.key("plan_id"),
        col.ref("patient_id"),
        col.version(),
        col.resource(),
        col.at("horizon_end"),
        col.flag("active"),
    )
    op.create_table(
        "daily_checkin",
        col.key("patient_id"),
        col.day("day", primary_key=True),
        col.at("checked_in_at"),
        col.flag("late"),
    )
    op.create_table(
        "calendar_lock",
        col.who("actor", primary_key=True),
        col.number("bookings"),
    )
    op.create_table(
        "alert_raised",
        col.key("patient_id"),
        col.string("kind", 32, primary_key=True),
        col.string("about", 200, primary_key=True),
        col.at("raised_at"),
    )


def downgrade() -> None:
    op.drop_table("alert_raised")
    op.drop_table("calendar_lock")
    op.drop_table("plan_series")
    op.drop_table("daily_checkin")
    op.drop_index("ix_occupancy_actor_start", "occupancy")
    op.drop_table("occupancy")
    op.drop_index("ix_schedule_role", "schedule")
    op.drop_table("schedule")
    with op.batch_alter_table("appointment") as batch:
        batch.drop_constraint("ck_appointment_seats", type_="check")
        batch.drop_column("seats_taken")
        batch.drop_column("capacity")
        batch.drop_column("kind")
        batch.alter_column("patient_id", existing_type=sa.String(64), nullable=False)
