"""Property-based: whatever sequence of bookings, group joins, cancellations and moves is
attempted, the stored calendar never double-books anyone and no group exceeds its capacity
(issue 3, items 2 and 8), on SQLite and on PostgreSQL."""

from __future__ import annotations

import itertools
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta
from datetime import time as clock
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from iopcare.kit.auth import Principal
from iopcare.kit.db import Database, migrate
from iopcare.kit.errors import IopcareError
from iopcare.scheduling import app, store
from iopcare.scheduling.bookings import BookingRequest, GroupRequest
from iopcare.scheduling.calendars import CalendarInput
from iopcare.scheduling.service import Scheduling
from tests.support.scheduling import future_monday, local

ADMIN = Principal(subject="admin:prop", role="admin")
ALL_DAY = tuple((d, "07:00", "20:00") for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"))
UNIT = timedelta(minutes=15)

#: (what, a, b, c): book patient a%4 with practitioner b%3 at 09:00 + c steps for 1 + a%8 steps;
#: group of capacity 1 + a%3 led by b%3 at c steps; join group a with patient b%4; cancel or move
#: (to c steps) the a-th appointment made.
operations = st.lists(
    st.tuples(
        st.sampled_from(["book", "book", "group", "join", "join", "cancel", "move"]),
        st.integers(0, 9),
        st.integers(0, 9),
        st.integers(0, 24),
    ),
    max_size=25,
)


@pytest.fixture
def scheduling(database_url: str) -> Iterator[Scheduling]:
    db = Database(database_url)
    migrate(db, app.MIGRATIONS)
    yield Scheduling(db, zone=ZoneInfo("America/New_York"))
    db.dispose()


@given(ops=operations)
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_sequence_of_requests_double_books_or_overfills(
    scheduling: Scheduling, ops: list[tuple[object, ...]]
) -> None:
    tag = uuid.uuid4().hex[:8]  # every example its own actors in the shared database
    patients = [f"p{tag}{i}" for i in range(4)]
    staff = [f"t{tag}{i}" for i in range(3)]
    room = f"r{tag}"
    for t in staff:
        scheduling.calendars.create(
            ADMIN,
            str(uuid.uuid4()),
            CalendarInput(f"Practitioner/{t}", "practitioner", "", (), 0, ALL_DAY, (), True),
        )
    scheduling.calendars.create(
        ADMIN,
        str(uuid.uuid4()),
        CalendarInput(f"Location/{room}", "room", "", (), 3, ALL_DAY, (), True),
    )
    base = local(future_monday(), clock(9))
    made: list[str] = []
    groups: list[str] = []
    for kind, a, b, c in ops:
        start = base + UNIT * c
        try:
            if kind == "book":
                request = BookingRequest(
                    patients[a % 4],
                    (staff[b % 3],),
                    "",
                    start,
                    start + UNIT * (1 + a % 8),
                    "",
                    "",
                    "",
                )
                made.append(scheduling.bookings.book(ADMIN, str(uuid.uuid4()), request).id)
            elif kind == "group":
                group = GroupRequest(
                    room, (staff[b % 3],), start, start + timedelta(hours=1), 1 + a % 3, "", ""
                )
                session = scheduling.bookings.create_group(ADMIN, str(uuid.uuid4()), group)
                groups.append(session.id)
                made.append(session.id)
            elif kind == "join" and groups:
                target = groups[a % len(groups)]
                scheduling.bookings.join(ADMIN, str(uuid.uuid4()), target, patients[b % 4])
            elif kind in ("cancel", "move") and made:
                target = made[a % len(made)]
                with scheduling.db.read() as conn:
                    current = store.load_appointment(conn, target)
                assert current is not None
                if kind == "cancel":
                    scheduling.changes.cancel(ADMIN, target, current.version, "property", "")
                else:
                    end = start + (current.end - current.start)
                    scheduling.changes.reschedule(ADMIN, target, current.version, start, end, "p")
        except IopcareError as refused:
            # A refusal is a clear answer, never an internal error.
            assert refused.reason in {
                "DOUBLE_BOOKED",
                "SESSION_FULL",
                "ALREADY_JOINED",
                "SESSION_CLOSED",
                "OVER_ROOM_CAPACITY",
                "OUTSIDE_OPENING_HOURS",
                "INVALID_ARGUMENT",
            }, refused.reason
    with scheduling.db.read() as conn:
        rows = conn.execute(
            select(store.occupancy).where(
                store.occupancy.c.actor.like(f"%{tag}%")
                & store.occupancy.c.active
                & store.occupancy.c.blocking
            )
        ).all()
        sessions = (
            conn.execute(select(store.appointment).where(store.appointment.c.id.in_(groups))).all()
            if groups
            else []
        )
    by_actor: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for r in rows:
        by_actor[r.actor].append((store.as_utc(r.start), store.as_utc(r.end)))
    for actor, spans in by_actor.items():
        for earlier, later in itertools.pairwise(sorted(spans)):
            assert earlier[1] <= later[0], f"{actor} double-booked"
    seated: dict[str, int] = defaultdict(int)
    for r in rows:
        if r.role == "patient":
            seated[r.appointment_id] += 1
    for session in sessions:
        assert session.seats_taken <= session.capacity
        if session.status == "booked":
            assert seated[session.id] == session.seats_taken
