"""Scheduling's consumer lag (issue 16): does proposing a plan's sessions cost more once many
plans are booked on the same practitioners and rooms?

N CarePlans, all with the same four practitioners (as in a program where a few clinicians serve
every patient), are handed to scheduling's `on_care_plan_created` one after the other, each in
its own unit of work, on a throwaway SQLite database (in-process: the handler is what the
consumer runs per event; Kafka and the inbox add a constant per event). The therapist leads a
group on Monday mornings that seats the first patients; the rest of every plan becomes proposed
appointments. Two loads:

- `one-patient`: every plan is for the same patient, as when the issue's load generator posted
  one body 3,000 times: the patient's proposals pile up at the same hours.
- `many-patients`: each plan its own patient, and each plan also leaves one past session booked
  with one of the four practitioners (their calendars fill up as plans are carried out).

The CPU time of the next `--probe` plans is measured after 100 and after N plans: the time per
session proposed (or seated) at both points and their ratio (1.0: independent of N).

    .venv/bin/python -m bench.scheduling_lag [--plans 2000] [--probe 50] [--database URL]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from bench.common import machine
from iopcare.demo import demo_care_plan
from iopcare.kit import fhir
from iopcare.kit.auth import Principal
from iopcare.kit.db import Database, UnitOfWork, migrate
from iopcare.kit.events import Event, ReceivedEvent
from iopcare.scheduling import app, store
from iopcare.scheduling.bookings import GroupRequest
from iopcare.scheduling.calendars import CalendarInput
from iopcare.scheduling.service import Scheduling

ZONE = ZoneInfo("America/New_York")
ADMIN = Principal(subject="admin:bench", role="admin")
PRACTITIONERS = ("lag-therapist", "lag-psychiatrist", "lag-dietitian", "lag-nurse")
ROOM = "lag-room"
LOADS = ("one-patient", "many-patients")
WEEK = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _calendars(scheduling: Scheduling) -> None:
    hours = tuple((d, "07:00", "20:00") for d in WEEK)
    for p in PRACTITIONERS:
        scheduling.calendars.create(
            ADMIN,
            f"cal-{p}",
            CalendarInput(f"Practitioner/{p}", "practitioner", "", (), 0, hours, (), True),
        )
    scheduling.calendars.create(
        ADMIN, "cal-room", CalendarInput(f"Location/{ROOM}", "room", "", (), 40, hours, (), True)
    )


def _monday_groups(scheduling: Scheduling, start: datetime) -> None:
    """The therapist's Monday group (09:00-12:00 local) for the next three weeks."""
    local = start.astimezone(ZONE).date()
    monday = local + timedelta(days=(7 - local.weekday()) % 7 or 7)
    for week in range(3):
        day: date = monday + timedelta(weeks=week)
        begins = datetime.combine(day, clock(9), tzinfo=ZONE).astimezone(UTC)
        scheduling.bookings.create_group(
            ADMIN,
            f"group-{week}",
            GroupRequest(
                ROOM, (PRACTITIONERS[0],), begins, begins + timedelta(hours=3), 40, "", ""
            ),
        )


def _patient(i: int, load: str) -> str:
    return "lag-patient" if load == "one-patient" else f"lag-patient-{i}"


def _plan(i: int, start: datetime, load: str) -> dict[str, Any]:
    """The demo IOP plan for plan i, its activities spread over the four practitioners."""
    plan = demo_care_plan(start, "lag-team")
    plan["id"] = f"lag-plan-{i}"
    plan["meta"] = {"versionId": "1"}
    plan["subject"] = {"reference": f"Patient/{_patient(i, load)}"}
    for n, activity in enumerate(plan["activity"]):
        activity["detail"]["performer"] = [
            {"reference": f"Practitioner/{PRACTITIONERS[n % len(PRACTITIONERS)]}"}
        ]
    return plan


def _received(plan: dict[str, Any], at: datetime, offset: int) -> ReceivedEvent:
    text = json.dumps(plan)
    event = Event(
        type="iopcare.careplan.created.v1",
        source="iopcare.careplan",
        subject=f"CarePlan/{plan['id']}/_history/1",
        key=plan["subject"]["reference"],
        data=text,
        time=at,
    )
    return ReceivedEvent(event, fhir.parse_resource(text, "CarePlan"), "bench", 0, offset)


def _proposals(db: Database) -> int:
    with db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(store.appointment)).scalar_one())


def _book_past_session(uow: UnitOfWork, i: int, load: str, at: datetime) -> None:
    """A session of plan i that took place: booked with one of the practitioners, an hour each,
    going back from `at` (the practitioners' history grows with the plans)."""
    start = at - timedelta(hours=i + 1)
    appointment_id = f"lag-past-{i}"
    patient = _patient(i, load)
    store.insert_appointment(
        uow.conn,
        store.StoredAppointment(
            appointment_id,
            1,
            patient,
            "fulfilled",
            start,
            start + timedelta(minutes=50),
            None,
            "{}",
        ),
        None,
    )
    for actor, role in (
        (f"Patient/{patient}", "patient"),
        (f"Practitioner/{PRACTITIONERS[i % len(PRACTITIONERS)]}", "practitioner"),
    ):
        store.add_occupancy(
            uow.conn, appointment_id, actor, role, start, start + timedelta(minutes=50)
        )


def _feed(scheduling: Scheduling, first: int, count: int, at: datetime, load: str) -> float:
    """Hands plans first..first+count to the handler; returns the CPU seconds it took."""
    began = time.process_time()
    for i in range(first, first + count):
        with UnitOfWork(scheduling.db) as uow:
            scheduling.on_care_plan_created(uow, _received(_plan(i, at, load), at, i))
            if load == "many-patients":
                _book_past_session(uow, i, load, at)
            uow.commit()
    return time.process_time() - began


def _probe(
    scheduling: Scheduling, first: int, count: int, at: datetime, load: str
) -> tuple[float, float]:
    """(CPU ms per plan, CPU ms per proposed or seated session) of the next `count` plans."""
    before = _proposals(scheduling.db)
    samples = [_feed(scheduling, i, 1, at, load) for i in range(first, first + count)]
    made = max(_proposals(scheduling.db) - before, 1)
    return statistics.mean(samples) * 1000, sum(samples) * 1000 / made


def bench_scheduling_lag(database_url: str, plans: int, probe: int, load: str) -> dict[str, Any]:
    db = Database(database_url)
    migrate(db, app.MIGRATIONS)
    scheduling = Scheduling(db, zone=ZONE, horizon=timedelta(days=14))
    at = datetime.now(UTC).replace(microsecond=0)
    _calendars(scheduling)
    _monday_groups(scheduling, at)
    small = 100
    _feed(scheduling, 0, small, at, load)
    per_plan_small, per_session_small = _probe(scheduling, small, probe, at, load)
    _feed(scheduling, small + probe, plans - small - probe, at, load)
    per_plan_large, per_session_large = _probe(scheduling, plans, probe, at, load)
    db.dispose()
    return {
        "load": load,
        "plans": plans,
        "ms_per_plan_at_100": round(per_plan_small, 2),
        "ms_per_session_at_100": round(per_session_small, 2),
        f"ms_per_plan_at_{plans}": round(per_plan_large, 2),
        f"ms_per_session_at_{plans}": round(per_session_large, 2),
        "ratio": round(per_session_large / per_session_small, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plans", type=int, default=2000, help="plans booked before the probe")
    parser.add_argument("--probe", type=int, default=50, help="plans timed at each point")
    parser.add_argument("--database", default="", help="an empty database (default: temp SQLite)")
    parser.add_argument("--load", choices=LOADS, action="append", help="default: both")
    args = parser.parse_args()
    print(machine())
    for load in args.load or LOADS:
        with tempfile.TemporaryDirectory() as tmp:
            url = args.database or f"sqlite:///{Path(tmp) / 'scheduling.db'}"
            print(json.dumps(bench_scheduling_lag(url, args.plans, args.probe, load)))


if __name__ == "__main__":
    main()
