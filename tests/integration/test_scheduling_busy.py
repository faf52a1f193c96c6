"""Overlap checks stay exact and cheap however many sessions an actor has (issue 16).

`store.busy` reads only the actor's blocking rows that start within one longest session before
the interval asked about (`ix_occupancy_busy`, migration 0009). These tests hold it to both
halves: every overlapping booking is still found, up to the longest session a booking may have,
on both databases; and the work of one check does not grow with the actor's history (SQLite's
virtual machine steps, counted exactly, at 100 and at 2,000 earlier sessions).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from iopcare.kit.db import Database, UnitOfWork, migrate
from iopcare.scheduling import app, store
from iopcare.scheduling.domain.booking import MAX_SESSION

T0 = datetime(2027, 3, 1, 12, tzinfo=UTC)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    migrate(database, app.MIGRATIONS)
    yield database
    database.dispose()


def _session(
    uow: UnitOfWork,
    actor: str,
    start: datetime,
    length: timedelta,
    *,
    blocking: bool = True,
    active: bool = True,
) -> str:
    appointment_id = f"a-{actor.split('/')[1]}-{start.timestamp():.0f}-{length.seconds}"
    store.insert_appointment(
        uow.conn,
        store.StoredAppointment(
            appointment_id, 1, "p", "booked", start, start + length, None, "{}"
        ),
        None,
    )
    store.add_occupancy(
        uow.conn, appointment_id, actor, "patient", start, start + length, blocking=blocking
    )
    if not active:
        store.set_occupancy(uow.conn, appointment_id, actor=actor, active=False)
    return appointment_id


def test_busy_finds_every_overlap_up_to_the_longest_session_and_nothing_else(
    db: Database,
) -> None:
    actor = "Patient/busy-1"
    with UnitOfWork(db) as uow:
        # Overlapping [T0, T0 + 1h): the longest session a booking may be, ending inside it...
        longest = _session(uow, actor, T0 - MAX_SESSION + timedelta(minutes=30), MAX_SESSION)
        # ...a short one inside it, and one beginning at its last minute.
        inside = _session(uow, actor, T0 + timedelta(minutes=10), timedelta(minutes=20))
        late = _session(uow, actor, T0 + timedelta(minutes=59), timedelta(hours=2))
        # Not overlapping, or not holding the actor's time.
        _session(uow, actor, T0 - MAX_SESSION, MAX_SESSION)  # ends exactly at T0
        _session(uow, actor, T0 + timedelta(hours=1), timedelta(hours=1))  # starts at the end
        _session(uow, actor, T0, timedelta(hours=1), blocking=False)  # a proposal
        _session(uow, actor, T0 - timedelta(hours=1), timedelta(hours=3), active=False)  # left
        _session(uow, "Patient/someone-else", T0, timedelta(hours=1))
        uow.commit()
    with db.read() as conn:
        found = {row[3] for row in store.busy(conn, [actor], T0, T0 + timedelta(hours=1))}
    assert found == {longest, inside, late}


def _steps_of_one_check(path: Path, earlier: int) -> int:
    """SQLite VM steps of one overlap check for a patient with `earlier` past sessions and as
    many proposals at the hour checked (the issue's load: one patient, one body, many plans)."""
    db = Database(f"sqlite:///{path}")
    migrate(db, app.MIGRATIONS)
    actor = "Patient/busy-history"
    with UnitOfWork(db) as uow:
        for i in range(earlier):
            _session(uow, actor, T0 - timedelta(hours=2 * i + 2), timedelta(minutes=50))
            store.add_occupancy(
                uow.conn,
                f"proposal-{i}",
                actor,
                "patient",
                T0,
                T0 + timedelta(hours=1),
                blocking=False,
            )
        uow.commit()
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    with db.read() as conn:
        raw = conn.connection.driver_connection
        assert isinstance(raw, sqlite3.Connection)
        raw.set_progress_handler(count, 1)
        store.busy(conn, [actor], T0, T0 + timedelta(hours=1))
        raw.set_progress_handler(None, 1)
    db.dispose()
    return steps


def test_one_overlap_check_costs_the_same_after_100_or_2000_sessions(tmp_path: Path) -> None:
    few = _steps_of_one_check(tmp_path / "few.db", 100)
    many = _steps_of_one_check(tmp_path / "many.db", 2000)
    # Reading the whole history would take about 20 times the steps at 2,000.
    assert many <= few * 1.2, (few, many)
