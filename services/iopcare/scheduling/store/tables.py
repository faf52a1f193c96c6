"""The scheduling service's tables (the schema; the queries are in the modules beside it)."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from iopcare.kit import topics
from iopcare.kit.service_schema import ServiceSchema
from iopcare.scheduling import codes

SCHEMA = ServiceSchema(codes.SOURCE, topics.SCHEDULING)
metadata, JOURNAL = SCHEMA.metadata, SCHEMA.journal
outbox, inbox, request_log, audit_log = SCHEMA.kit_tables
#: The care team memberships, projected from careplan's careteam events: who may see a patient.
care_team_member = SCHEMA.care_team_member
care_team_seen = SCHEMA.add_team_projection()

appointment = Table(
    "appointment",
    metadata,
    Column("id", String(64), primary_key=True),
    # The patient of an individual session; NULL for a group session (its patients are rows of
    # `occupancy`, like every participant).
    Column("patient_id", String(64), nullable=True),
    Column("care_plan_id", String(64), nullable=True),
    # Which plan activity occurrence this carries out: a replayed plan event can never book the
    # same occurrence twice, even if the inbox were bypassed.
    Column("occurrence_key", String(200), nullable=True),
    Column("status", String(32), nullable=False),
    Column("start", DateTime(timezone=True), nullable=False),
    Column("end", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False),
    Column("resource", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # individual or group.
    Column("kind", String(16), nullable=False, server_default="individual"),
    # A group session's seats and how many are taken. Joining is one conditional UPDATE
    # (`seats_taken < capacity`), so the database itself refuses the seat after the last one.
    Column("capacity", Integer, nullable=False, server_default="1"),
    Column("seats_taken", Integer, nullable=False, server_default="0"),
    UniqueConstraint("occurrence_key", name="uq_appointment_occurrence"),
    CheckConstraint("seats_taken >= 0 AND seats_taken <= capacity", name="ck_appointment_seats"),
)
Index("ix_appointment_patient_start", appointment.c.patient_id, appointment.c.start)
Index("ix_appointment_plan", appointment.c.care_plan_id, appointment.c.start)

#: Calendars: one per practitioner or room.
schedule = Table(
    "schedule",
    metadata,
    Column("id", String(64), primary_key=True),
    # Practitioner/{id} or Location/{id}: one calendar per actor.
    Column("actor", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("role", String(64), nullable=True),
    # Session types it serves, space-separated with a leading and trailing space (" a b "), so a
    # LIKE '% a %' finds one without a join table.
    Column("service_types", String(1000), nullable=False),
    Column("capacity", Integer, nullable=False),
    # Opening hours [[day, opens, closes], ...] and closed dates [...] as JSON (local times).
    Column("hours", Text, nullable=False),
    Column("closed_dates", Text, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("version", Integer, nullable=False),
    Column("resource", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("actor", name="uq_schedule_actor"),
)
Index("ix_schedule_role", schedule.c.role)

#: Who takes part in which session when: one row per participant (patient, practitioner, room)
#: and appointment. Overlap checks and slot computation read these rows by actor and time.
occupancy = Table(
    "occupancy",
    metadata,
    Column("appointment_id", String(64), primary_key=True),
    Column("actor", String(200), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("start", DateTime(timezone=True), nullable=False),
    Column("end", DateTime(timezone=True), nullable=False),
    # Whether this row holds the actor's time: a booked session does; a proposed or cancelled
    # one does not (it stays listed with its status).
    Column("blocking", Boolean, nullable=False),
    # False once the participant left a group session (they are no longer in it).
    Column("active", Boolean, nullable=False),
    # A patient's attendance in this session (arrived, checked-in, fulfilled, noshow).
    Column("attendance", String(32), nullable=True),
    # The plan activity occurrence a seat in a group carries out, when the plan's series seated
    # the patient (plan/activity/start); unique, like the appointment's, so replays seat once.
    Column("occurrence_key", String(200), nullable=True),
    UniqueConstraint("occurrence_key", name="uq_occupancy_occurrence"),
)
Index("ix_occupancy_actor_start", occupancy.c.actor, occupancy.c.start)
#: Overlap checks (`busy`): an actor's blocking rows by start, read only within one longest
#: session before the interval asked about (issue 16: the cost must not grow with the bookings).
Index("ix_occupancy_busy", occupancy.c.actor, occupancy.c.blocking, occupancy.c.start)

#: The plans whose activities scheduling carries out, and how far ahead their sessions exist: a
#: periodic task extends each active series day by day (the rolling horizon).
plan_series = Table(
    "plan_series",
    metadata,
    Column("plan_id", String(64), primary_key=True),
    Column("patient_id", String(64), nullable=False),
    # The plan version the series follows; an older one arriving late is ignored.
    Column("version", Integer, nullable=False),
    Column("resource", Text, nullable=False),
    Column("horizon_end", DateTime(timezone=True), nullable=False),
    Column("active", Boolean, nullable=False),
    # When the series began: a timing with no days of the week and no bounds repeats from here
    # (a weekly activity keeps the weekday it began on, a count counts from here), whatever window
    # a later extension or revision fills.
    Column("started_at", DateTime(timezone=True), nullable=True),
)

#: Daily check-ins: one per patient and program day (local date).
daily_checkin = Table(
    "daily_checkin",
    metadata,
    Column("patient_id", String(64), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("checked_in_at", DateTime(timezone=True), nullable=False),
    Column("late", Boolean, nullable=False),
)

#: The patient's daily check-in answers: one QuestionnaireResponse per answered check-in
#: (checkin_form); a patient may answer more than once a day (each answer is kept).
checkin_response = Table(
    "checkin_response",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("patient_id", String(64), nullable=False),
    Column("day", Date, nullable=False),
    Column("authored_at", DateTime(timezone=True), nullable=False),
    Column("resource", Text, nullable=False),
)
Index("ix_checkin_response_patient", checkin_response.c.patient_id, checkin_response.c.authored_at)

#: One row per bookable actor, locked by every booking that involves the actor (see
#: docs/decisions/0007-booking-locks.md): bookings of one practitioner, patient or room take turns.
calendar_lock = Table(
    "calendar_lock",
    metadata,
    Column("actor", String(200), primary_key=True),
    Column("bookings", Integer, nullable=False),
)

#: Alerts already raised (dropout risk, a week below the minimum), so each is raised once.
alert_raised = Table(
    "alert_raised",
    metadata,
    Column("patient_id", String(64), primary_key=True),
    Column("kind", String(32), primary_key=True),
    # What it is about: an ISO week (2026-W48), a day, or when a streak of missed sessions began.
    Column("about", String(200), primary_key=True),
    Column("raised_at", DateTime(timezone=True), nullable=False),
)
