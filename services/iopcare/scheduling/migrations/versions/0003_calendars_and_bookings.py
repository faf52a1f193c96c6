"""Calendars, bookings and group sessions: schedules, occupancy rows, calendar locks, alerts."""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    with op.batch_alter_table("appointment") as batch:
        batch.alter_column("patient_id", existing_type=sa.String(64), nullable=True)
        batch.add_column(
            sa.Column("kind", sa.String(16), nullable=False, server_default="individual")
        )
        batch.add_column(sa.Column("capacity", sa.Integer, nullable=False, server_default="1"))
        batch.add_column(sa.Column("seats_taken", sa.Integer, nullable=False, server_default="0"))
        # The database's own guard against overbooking a group, whatever the code does.
        batch.create_check_constraint(
            "ck_appointment_seats", "seats_taken >= 0 AND seats_taken <= capacity"
        )
    op.create_table(
        "schedule",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("role", sa.String(64), nullable=True),
        sa.Column("service_types", sa.String(1000), nullable=False),
        sa.Column("capacity", sa.Integer, nullable=False),
        sa.Column("hours", sa.Text, nullable=False),
        sa.Column("closed_dates", sa.Text, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("resource", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("actor", name="uq_schedule_actor"),
    )
    op.create_index("ix_schedule_role", "schedule", ["role"])
    op.create_table(
        "occupancy",
        sa.Column("appointment_id", sa.String(64), primary_key=True),
        sa.Column("actor", sa.String(200), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("blocking", sa.Boolean, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("attendance", sa.String(32), nullable=True),
        sa.Column("occurrence_key", sa.String(200), nullable=True),
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
        sa.Column("plan_id", sa.String(64), primary_key=True),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("resource", sa.Text, nullable=False),
        sa.Column("horizon_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
    )
    op.create_table(
        "daily_checkin",
        sa.Column("patient_id", sa.String(64), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("checked_in_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("late", sa.Boolean, nullable=False),
    )
    op.create_table(
        "calendar_lock",
        sa.Column("actor", sa.String(200), primary_key=True),
        sa.Column("bookings", sa.Integer, nullable=False),
    )
    op.create_table(
        "alert_raised",
        sa.Column("patient_id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("about", sa.String(200), primary_key=True),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
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
