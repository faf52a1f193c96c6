"""The scheduling service's tables and the queries on them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Connection,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    func,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from iopcare.kit import topics
from iopcare.kit.db import as_utc
from iopcare.kit.journal import Journal
from iopcare.kit.schema import add_kit_tables
from iopcare.kit.teams import add_member_table, add_projection_table
from iopcare.scheduling import codes

metadata = MetaData()
kit = add_kit_tables(metadata)
#: The care team memberships, projected from careplan's careteam events: who may see a patient.
care_team_member = add_member_table(metadata)
care_team_seen = add_projection_table(metadata)
outbox, inbox, request_log, audit_log = (
    kit["outbox"],
    kit["inbox"],
    kit["request_log"],
    kit["audit_log"],
)
#: Where scheduling's writes leave their events (published on iopcare.scheduling.v1 after
#: commit) and audit rows, in the writing transaction.
JOURNAL = Journal(codes.SOURCE, topics.SCHEDULING, outbox, audit_log)

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


@dataclass(frozen=True)
class StoredAppointment:
    id: str
    version: int
    patient_id: str
    status: str
    start: datetime
    end: datetime
    care_plan_id: str | None
    resource: str
    kind: str = "individual"
    capacity: int = 1
    seats_taken: int = 0

    @property
    def is_group(self) -> bool:
        return self.kind == "group"


def _from_row(row: Any) -> StoredAppointment:
    return StoredAppointment(
        row.id,
        row.version,
        row.patient_id or "",
        row.status,
        as_utc(row.start),
        as_utc(row.end),
        row.care_plan_id,
        row.resource,
        row.kind,
        row.capacity,
        row.seats_taken,
    )


def occurrence_exists(conn: Connection, key: str) -> bool:
    """Whether a plan activity occurrence was carried out already: proposed or booked as its own
    appointment, or as the patient's seat in a group session."""
    if (
        conn.execute(select(appointment.c.id).where(appointment.c.occurrence_key == key)).first()
        is not None
    ):
        return True
    return (
        conn.execute(
            select(occupancy.c.appointment_id).where(occupancy.c.occurrence_key == key)
        ).first()
        is not None
    )


def release_occurrence(conn: Connection, appointment_id: str) -> None:
    """Frees the occurrence key of a session the plan itself withdrew (activity changed, plan
    suspended), so that the occurrence can be proposed again if the plan brings it back."""
    conn.execute(
        appointment.update().where(appointment.c.id == appointment_id).values(occurrence_key=None)
    )


def plan_seats(conn: Connection, plan_id: str, after: datetime) -> list[tuple[str, str, str]]:
    """(appointment id, patient actor, occurrence key) of the group seats the plan's series holds
    in sessions starting after `after`."""
    rows = conn.execute(
        select(occupancy.c.appointment_id, occupancy.c.actor, occupancy.c.occurrence_key).where(
            occupancy.c.occurrence_key.like(f"{plan_id}/%")
            & occupancy.c.active
            & (occupancy.c.start > after)
        )
    ).all()
    return [(r.appointment_id, r.actor, r.occurrence_key) for r in rows]


def future_occurrences(
    conn: Connection, plan_id: str, after: datetime
) -> list[tuple[StoredAppointment, str]]:
    """The plan's own future open sessions with their occurrence keys (locked on PostgreSQL)."""
    rows = conn.execute(
        select(appointment)
        .where(
            (appointment.c.care_plan_id == plan_id)
            & (appointment.c.start > after)
            & appointment.c.occurrence_key.is_not(None)
            & (appointment.c.status.in_(["proposed", "pending", "booked"]))
        )
        .order_by(appointment.c.start)
        .with_for_update()
    ).all()
    return [(_from_row(row), row.occurrence_key) for row in rows]


def group_sessions_at(conn: Connection, start: datetime, facilitators: list[str]) -> list[str]:
    """Ids of the open group sessions starting at `start` that one of the facilitators leads:
    the cohort a plan's group activity joins."""
    if not facilitators:
        return []
    rows = conn.execute(
        select(appointment.c.id)
        .join(occupancy, occupancy.c.appointment_id == appointment.c.id)
        .where(
            (appointment.c.kind == "group")
            & (appointment.c.status == "booked")
            & (appointment.c.start == start)
            & occupancy.c.actor.in_(facilitators)
            & occupancy.c.active
        )
        .order_by(appointment.c.id)
    ).scalars()
    return list(dict.fromkeys(rows))


def insert_appointment(conn: Connection, a: StoredAppointment, occurrence_key: str | None) -> None:
    conn.execute(
        appointment.insert().values(
            id=a.id,
            patient_id=a.patient_id or None,
            care_plan_id=a.care_plan_id,
            occurrence_key=occurrence_key,
            status=a.status,
            start=a.start,
            end=a.end,
            version=a.version,
            resource=a.resource,
            updated_at=datetime.now(UTC),
            kind=a.kind,
            capacity=a.capacity,
            seats_taken=a.seats_taken,
        )
    )


def list_appointments(
    conn: Connection,
    actor: str,
    limit: int,
    after: tuple[datetime, str] | None,
    *,
    statuses: list[str] | None = None,
    start_from: datetime | None = None,
    start_before: datetime | None = None,
) -> list[StoredAppointment]:
    """Appointments an actor (Patient/..., Practitioner/..., Location/...) takes part in, by
    start then id (a keyset page after `after`)."""
    taking_part = select(occupancy.c.appointment_id).where(
        (occupancy.c.actor == actor) & occupancy.c.active
    )
    query = select(appointment).where(appointment.c.id.in_(taking_part))
    if statuses:
        query = query.where(appointment.c.status.in_(statuses))
    if start_from is not None:
        query = query.where(appointment.c.start >= start_from)
    if start_before is not None:
        query = query.where(appointment.c.start < start_before)
    if after is not None:
        start, last_id = after
        query = query.where(
            or_(
                appointment.c.start > start,
                and_(appointment.c.start == start, appointment.c.id > last_id),
            )
        )
    rows = conn.execute(query.order_by(appointment.c.start, appointment.c.id).limit(limit)).all()
    return [_from_row(row) for row in rows]


def load_appointment(conn: Connection, appointment_id: str) -> StoredAppointment | None:
    row = conn.execute(select(appointment).where(appointment.c.id == appointment_id)).first()
    return _from_row(row) if row is not None else None


def update_appointment(conn: Connection, a: StoredAppointment, expected_version: int) -> bool:
    """Stores a new version if `expected_version` is still current (the check is in the WHERE)."""
    updated = conn.execute(
        appointment.update()
        .where((appointment.c.id == a.id) & (appointment.c.version == expected_version))
        .values(
            status=a.status,
            version=a.version,
            resource=a.resource,
            start=a.start,
            end=a.end,
            seats_taken=a.seats_taken,
            updated_at=datetime.now(UTC),
        )
    )
    return updated.rowcount == 1


def load_appointment_for_update(conn: Connection, appointment_id: str) -> StoredAppointment | None:
    """The appointment, its row locked until the transaction ends (PostgreSQL; SQLite's write
    transaction already excludes every other writer)."""
    row = conn.execute(
        select(appointment).where(appointment.c.id == appointment_id).with_for_update()
    ).first()
    return _from_row(row) if row is not None else None


# Calendar locks and occupancy ------------------------------------------------------------------
def lock_actors(conn: Connection, actors: list[str]) -> None:
    """Takes the calendar lock of every actor, in sorted order (two bookings that share actors
    lock them in the same order, so they queue instead of deadlocking).

    The row is created on first use; a concurrent first use of the same actor waits on the
    primary key until the other transaction ends, then finds the row (ON CONFLICT DO NOTHING).
    The UPDATE then holds the row lock on PostgreSQL until commit: whoever books the same actor
    next waits here, and reads occupancy only after this booking committed.
    """
    insert = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
    for actor in sorted(set(actors)):
        conn.execute(
            insert(calendar_lock)
            .values(actor=actor, bookings=0)
            .on_conflict_do_nothing(index_elements=["actor"])
        )
        conn.execute(
            calendar_lock.update()
            .where(calendar_lock.c.actor == actor)
            .values(bookings=calendar_lock.c.bookings + 1)
        )


def busy(
    conn: Connection, actors: list[str], start: datetime, end: datetime
) -> list[tuple[str, datetime, datetime, str]]:
    """(actor, start, end, appointment id) of the actors' bookings that overlap [start, end)."""
    rows = conn.execute(
        select(occupancy.c.actor, occupancy.c.start, occupancy.c.end, occupancy.c.appointment_id)
        .where(
            occupancy.c.actor.in_(actors)
            & occupancy.c.active
            & occupancy.c.blocking
            & (occupancy.c.start < end)
            & (occupancy.c.end > start)
        )
        .order_by(occupancy.c.start)
    ).all()
    return [(r.actor, as_utc(r.start), as_utc(r.end), r.appointment_id) for r in rows]


def add_occupancy(
    conn: Connection,
    appointment_id: str,
    actor: str,
    role: str,
    start: datetime,
    end: datetime,
    *,
    blocking: bool = True,
    occurrence_key: str | None = None,
) -> None:
    """A participant joins a session; a row left by an earlier departure is reactivated."""
    reactivated = conn.execute(
        occupancy.update()
        .where((occupancy.c.appointment_id == appointment_id) & (occupancy.c.actor == actor))
        .values(
            active=True,
            blocking=blocking,
            start=start,
            end=end,
            attendance=None,
            occurrence_key=occurrence_key,
        )
    )
    if reactivated.rowcount == 0:
        conn.execute(
            occupancy.insert().values(
                appointment_id=appointment_id,
                actor=actor,
                role=role,
                start=start,
                end=end,
                blocking=blocking,
                active=True,
                attendance=None,
                occurrence_key=occurrence_key,
            )
        )


def participants(conn: Connection, appointment_id: str) -> list[tuple[str, str, str | None]]:
    """(actor, role, attendance) of a session's active participants."""
    rows = conn.execute(
        select(occupancy.c.actor, occupancy.c.role, occupancy.c.attendance)
        .where((occupancy.c.appointment_id == appointment_id) & occupancy.c.active)
        .order_by(occupancy.c.actor)
    ).all()
    return [(r.actor, r.role, r.attendance) for r in rows]


def set_occupancy(
    conn: Connection,
    appointment_id: str,
    *,
    actor: str | None = None,
    **values: Any,
) -> None:
    """Updates a session's participant rows (one actor's, or all of them)."""
    where = occupancy.c.appointment_id == appointment_id
    if actor is not None:
        where = where & (occupancy.c.actor == actor)
    conn.execute(occupancy.update().where(where).values(**values))


def adopt_seat(conn: Connection, appointment_id: str, actor: str, occurrence_key: str) -> None:
    """Marks a patient's seat, taken by hand, as carrying out a plan occurrence (unless it
    carries one already), so the plan's series follows it from then on."""
    conn.execute(
        occupancy.update()
        .where(
            (occupancy.c.appointment_id == appointment_id)
            & (occupancy.c.actor == actor)
            & occupancy.c.active
            & occupancy.c.occurrence_key.is_(None)
        )
        .values(occurrence_key=occurrence_key)
    )


def busy_in_range(
    conn: Connection, actors: list[str], start: datetime, end: datetime
) -> dict[str, list[tuple[datetime, datetime]]]:
    """Every blocking booking of the actors overlapping [start, end), by actor."""
    result: dict[str, list[tuple[datetime, datetime]]] = {a: [] for a in actors}
    for actor, s, e, _ in busy(conn, actors, start, end):
        result[actor].append((s, e))
    return result


def open_group_sessions(
    conn: Connection, rooms: list[str], start: datetime, end: datetime
) -> list[tuple[str, StoredAppointment]]:
    """(room, session) for the rooms' booked group sessions in [start, end) with seats left."""
    rows = conn.execute(
        select(occupancy.c.actor, appointment)
        .join(appointment, appointment.c.id == occupancy.c.appointment_id)
        .where(
            occupancy.c.actor.in_(rooms)
            & occupancy.c.active
            & (appointment.c.kind == "group")
            & (appointment.c.status == "booked")
            & (appointment.c.seats_taken < appointment.c.capacity)
            & (appointment.c.start >= start)
            & (appointment.c.start < end)
        )
        .order_by(appointment.c.start)
    ).all()
    return [(row.actor, _from_row(row)) for row in rows]


def patient_sessions(
    conn: Connection, patient_id: str, start: datetime, end: datetime
) -> list[tuple[str, datetime, datetime, str | None, bool, str]]:
    """(appointment id, start, end, attendance, cancelled, status) of the patient's sessions
    starting in [start, end), proposed ones included (they are the plan's intended hours)."""
    rows = conn.execute(
        select(
            occupancy.c.appointment_id,
            occupancy.c.start,
            occupancy.c.end,
            occupancy.c.attendance,
            occupancy.c.active,
            appointment.c.status,
        )
        .join(appointment, appointment.c.id == occupancy.c.appointment_id)
        .where(
            (occupancy.c.actor == f"Patient/{patient_id}")
            & (occupancy.c.start >= start)
            & (occupancy.c.start < end)
        )
        .order_by(occupancy.c.start)
    ).all()
    return [
        (
            r.appointment_id,
            as_utc(r.start),
            as_utc(r.end),
            r.attendance,
            (not r.active) or r.status in ("cancelled", "entered-in-error"),
            r.status,
        )
        for r in rows
    ]


def first_session_start(conn: Connection, patient_id: str) -> datetime | None:
    """When the patient's first session of any status starts: their admission, as far as
    scheduling knows it."""
    first = conn.execute(
        select(func.min(occupancy.c.start)).where(occupancy.c.actor == f"Patient/{patient_id}")
    ).scalar()
    return as_utc(first) if first is not None else None


def raise_alert_once(conn: Connection, patient_id: str, kind: str, about: str) -> bool:
    """Records that an alert was raised; False if it had been (the caller then emits nothing).

    ON CONFLICT DO NOTHING: two places raising the same alert at once (two no-shows recorded
    together, two replicas' periodic checks) agree on one of them, and neither fails on the key."""
    insert = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
    inserted = conn.execute(
        insert(alert_raised)
        .values(patient_id=patient_id, kind=kind, about=about, raised_at=datetime.now(UTC))
        .on_conflict_do_nothing(index_elements=["patient_id", "kind", "about"])
        .returning(alert_raised.c.kind)
    ).first()
    return inserted is not None


def patients_with_sessions(conn: Connection, start: datetime, end: datetime) -> list[str]:
    rows = conn.execute(
        select(occupancy.c.actor)
        .where(
            (occupancy.c.role == "patient")
            & (occupancy.c.start >= start)
            & (occupancy.c.start < end)
        )
        .distinct()
    ).scalars()
    return sorted(r.split("/", 1)[1] for r in rows)


# Schedules --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StoredSchedule:
    id: str
    version: int
    actor: str
    kind: str
    role: str | None
    service_types: tuple[str, ...]
    capacity: int
    hours: tuple[tuple[str, str, str], ...]
    closed_dates: tuple[str, ...]
    active: bool
    resource: str

    @property
    def subject(self) -> str:
        """The event subject of this version."""
        return f"Schedule/{self.id}/_history/{self.version}"


def _schedule_from_row(row: Any) -> StoredSchedule:
    return StoredSchedule(
        row.id,
        row.version,
        row.actor,
        row.kind,
        row.role,
        tuple(row.service_types.split()),
        row.capacity,
        tuple(tuple(h) for h in json.loads(row.hours)),
        tuple(json.loads(row.closed_dates)),
        row.active,
        row.resource,
    )


def _schedule_values(s: StoredSchedule) -> dict[str, Any]:
    return {
        "actor": s.actor,
        "kind": s.kind,
        "role": s.role,
        "service_types": f" {' '.join(s.service_types)} ",
        "capacity": s.capacity,
        "hours": json.dumps([list(h) for h in s.hours]),
        "closed_dates": json.dumps(list(s.closed_dates)),
        "active": s.active,
        "version": s.version,
        "resource": s.resource,
        "updated_at": datetime.now(UTC),
    }


def insert_schedule(conn: Connection, s: StoredSchedule) -> None:
    conn.execute(schedule.insert().values(id=s.id, **_schedule_values(s)))


def update_schedule(conn: Connection, s: StoredSchedule, expected_version: int) -> bool:
    updated = conn.execute(
        schedule.update()
        .where((schedule.c.id == s.id) & (schedule.c.version == expected_version))
        .values(**_schedule_values(s))
    )
    return updated.rowcount == 1


def load_schedule(conn: Connection, schedule_id: str) -> StoredSchedule | None:
    row = conn.execute(select(schedule).where(schedule.c.id == schedule_id)).first()
    return _schedule_from_row(row) if row is not None else None


def schedule_of(conn: Connection, actor: str) -> StoredSchedule | None:
    row = conn.execute(select(schedule).where(schedule.c.actor == actor)).first()
    return _schedule_from_row(row) if row is not None else None


def find_schedules(
    conn: Connection,
    *,
    schedule_id: str = "",
    actor: str = "",
    kind: str = "",
    role: str = "",
    service_type: str = "",
    active_only: bool = False,
    after_id: str = "",
    limit: int = 1000,
) -> list[StoredSchedule]:
    query = select(schedule)
    if schedule_id:
        query = query.where(schedule.c.id == schedule_id)
    if actor:
        query = query.where(schedule.c.actor == actor)
    if kind:
        query = query.where(schedule.c.kind == kind)
    if role:
        query = query.where(schedule.c.role == role)
    if service_type:
        # Codes are validated to contain no spaces or wildcards, so this matches whole codes only.
        query = query.where(schedule.c.service_types.like(f"% {service_type} %"))
    if active_only:
        query = query.where(schedule.c.active)
    if after_id:
        query = query.where(schedule.c.id > after_id)
    rows = conn.execute(query.order_by(schedule.c.id).limit(limit)).all()
    return [_schedule_from_row(row) for row in rows]


# Plan series ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class StoredSeries:
    plan_id: str
    patient_id: str
    version: int
    resource: str
    horizon_end: datetime
    active: bool
    started_at: datetime | None = None


def load_series(conn: Connection, plan_id: str) -> StoredSeries | None:
    row = conn.execute(
        select(plan_series).where(plan_series.c.plan_id == plan_id).with_for_update()
    ).first()
    if row is None:
        return None
    return StoredSeries(
        row.plan_id,
        row.patient_id,
        row.version,
        row.resource,
        as_utc(row.horizon_end),
        row.active,
        as_utc(row.started_at) if row.started_at is not None else None,
    )


def save_series(conn: Connection, s: StoredSeries) -> None:
    values = {
        "patient_id": s.patient_id,
        "version": s.version,
        "resource": s.resource,
        "horizon_end": s.horizon_end,
        "active": s.active,
        "started_at": s.started_at,
    }
    updated = conn.execute(
        plan_series.update().where(plan_series.c.plan_id == s.plan_id).values(**values)
    )
    if updated.rowcount == 0:
        conn.execute(plan_series.insert().values(plan_id=s.plan_id, **values))


def series_due(conn: Connection, before: datetime, limit: int = 500) -> list[str]:
    """Active series whose horizon ends before `before` (they need extending)."""
    return list(
        conn.execute(
            select(plan_series.c.plan_id)
            .where(plan_series.c.active & (plan_series.c.horizon_end < before))
            .order_by(plan_series.c.horizon_end)
            .limit(limit)
        ).scalars()
    )


# Daily check-ins ------------------------------------------------------------------------------
def check_in(
    conn: Connection, patient_id: str, day: date, at: datetime, late: bool
) -> tuple[datetime, bool, bool]:
    """Records the day's check-in unless there is one; returns (time, late, already recorded).

    INSERT ... ON CONFLICT DO NOTHING: of two simultaneous check-ins (two devices) one inserts
    and the other, on PostgreSQL, waits for it to commit and then inserts nothing; both then read
    the one row, so the second answers "already recorded" instead of failing on the key."""
    insert = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
    inserted = conn.execute(
        insert(daily_checkin)
        .values(patient_id=patient_id, day=day, checked_in_at=at, late=late)
        .on_conflict_do_nothing(index_elements=["patient_id", "day"])
        .returning(daily_checkin.c.patient_id)
    ).first()
    if inserted is not None:
        return at, late, False
    row = conn.execute(
        select(daily_checkin.c.checked_in_at, daily_checkin.c.late).where(
            (daily_checkin.c.patient_id == patient_id) & (daily_checkin.c.day == day)
        )
    ).one()
    return as_utc(row.checked_in_at), row.late, True


def missing_check_ins(conn: Connection, day: date, start: datetime, end: datetime) -> list[str]:
    """Patients with a session in [start, end) (the local day) and no check-in for `day`."""
    checked = select(daily_checkin.c.patient_id).where(daily_checkin.c.day == day)
    rows = conn.execute(
        select(occupancy.c.actor)
        .join(appointment, appointment.c.id == occupancy.c.appointment_id)
        .where(
            (occupancy.c.role == "patient")
            & occupancy.c.active
            & (occupancy.c.start >= start)
            & (occupancy.c.start < end)
            & appointment.c.status.not_in(["cancelled", "entered-in-error"])
        )
        .distinct()
    ).scalars()
    patients = {r.split("/", 1)[1] for r in rows}
    done = set(conn.execute(checked).scalars())
    return sorted(patients - done)
