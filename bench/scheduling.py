"""Scheduling: FindSlots over a loaded calendar, and bookings under contention (issue 3, item 8).

The calendar (50 practitioners, 10 rooms, 500 patients, 12 weeks of sessions) is loaded straight
into scheduling's tables, as the service itself stores bookings (appointment and occupancy rows),
so loading takes seconds; the timed parts are gRPC calls against scheduling running as its own
process. Target on a 2-core machine: FindSlots p99 <= 50 ms.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from zoneinfo import ZoneInfo

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from bench.common import summary
from iopcare.devtools.kafka_broker import free_port
from iopcare.devtools.processes import ServiceProcess
from iopcare.kit.db import Database, migrate
from iopcare.scheduling import app, fhir_map, store
from iopcare.scheduling.v1 import scheduling_service_pb2 as sc
from iopcare.scheduling.v1 import scheduling_service_pb2_grpc as sc_grpc

ZONE = ZoneInfo("America/New_York")
ROLES = ("therapist", "psychiatrist", "psychologist", "dietitian", "nurse")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")


def _ts(value: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(value.astimezone(UTC))
    return out


def _local(day: date, hour: int) -> datetime:
    return datetime.combine(day, clock(hour), tzinfo=ZONE).astimezone(UTC)


def create_calendars(
    stub: sc_grpc.SchedulingServiceStub,
    metadata: list[tuple[str, str]],
    practitioners: int,
    rooms: int,
) -> None:
    hours = [sc.OpeningHours(day_of_week=d, opens="08:00", closes="18:00") for d in WEEKDAYS]
    for i in range(practitioners):
        stub.CreateSchedule(
            sc.CreateScheduleRequest(
                request_id=f"cal-p{i}",
                schedule=sc.Schedule(
                    actor=f"Practitioner/bp{i}",
                    kind="practitioner",
                    role=ROLES[i % len(ROLES)],
                    service_types=["individual-therapy"],
                    opening_hours=hours,
                ),
            ),
            metadata=metadata,
            timeout=30,
        )
    for i in range(rooms):
        stub.CreateSchedule(
            sc.CreateScheduleRequest(
                request_id=f"cal-r{i}",
                schedule=sc.Schedule(
                    actor=f"Location/br{i}",
                    kind="room",
                    capacity=12,
                    service_types=["group-therapy"],
                    opening_hours=hours,
                ),
            ),
            metadata=metadata,
            timeout=30,
        )


def load_bookings(
    database_url: str, first_monday: date, weeks: int, practitioners: int, rooms: int, patients: int
) -> int:
    """12 weeks of sessions: each practitioner 4 individual hours a weekday, each room a morning
    group with 8 patients. Returns how many appointments were loaded."""
    db = Database(database_url)
    migrate(db, app.MIGRATIONS)
    now = datetime.now(UTC)
    appointments: list[dict[str, object]] = []
    occupancy: list[dict[str, object]] = []
    for week in range(weeks):
        for weekday in range(5):
            day = first_monday + timedelta(days=7 * week + weekday)
            for p in range(practitioners):
                for n, hour in enumerate((13, 14, 15, 16)):
                    patient = f"bpat{(p + practitioners * n + weekday) % patients}"
                    start, end = _local(day, hour), _local(day, hour + 1)
                    appointment_id = str(uuid.uuid4())
                    resource = (
                        fhir_map.booked_appointment(
                            appointment_id,
                            kind="individual",
                            patients=[patient],
                            practitioners=[f"bp{p}"],
                            location=None,
                            start=start,
                            end=end,
                            service_type="individual-therapy",
                            description="",
                            care_plan_id="",
                            capacity=1,
                            at=now,
                        )
                        if not appointments
                        else _reuse(appointments[0], appointment_id, patient, p, start, end)
                    )
                    appointments.append(
                        {
                            "id": appointment_id,
                            "patient_id": patient,
                            "status": "booked",
                            "start": start,
                            "end": end,
                            "version": 1,
                            "resource": resource,
                            "updated_at": now,
                            "kind": "individual",
                            "capacity": 1,
                            "seats_taken": 0,
                        }
                    )
                    for actor, role in (
                        (f"Patient/{patient}", "patient"),
                        (f"Practitioner/bp{p}", "practitioner"),
                    ):
                        occupancy.append(_occupancy(appointment_id, actor, role, start, end))
            for r in range(rooms):
                start, end = _local(day, 9), _local(day, 12)
                appointment_id = str(uuid.uuid4())
                members = [f"bpat{(200 + r * 8 + k + week) % patients}" for k in range(8)]
                appointments.append(
                    {
                        "id": appointment_id,
                        "patient_id": None,
                        "status": "booked",
                        "start": start,
                        "end": end,
                        "version": 1,
                        "resource": json.dumps(
                            {"resourceType": "Appointment", "id": appointment_id}
                        ),
                        "updated_at": now,
                        "kind": "group",
                        "capacity": 12,
                        "seats_taken": len(members),
                    }
                )
                occupancy.append(
                    _occupancy(appointment_id, f"Location/br{r}", "location", start, end)
                )
                for m in members:
                    occupancy.append(
                        _occupancy(appointment_id, f"Patient/{m}", "patient", start, end)
                    )
    with db.write() as conn:
        for table, rows in ((store.appointment, appointments), (store.occupancy, occupancy)):
            for i in range(0, len(rows), 5000):
                conn.execute(table.insert(), rows[i : i + 5000])
    db.dispose()
    return len(appointments)


def _reuse(
    first: dict[str, object],
    appointment_id: str,
    patient: str,
    p: int,
    start: datetime,
    end: datetime,
) -> str:
    """The first appointment's JSON with this one's id, patient, practitioner and times (building
    every resource through the R4 model would make loading minutes instead of seconds)."""
    data = json.loads(str(first["resource"]))
    data["id"] = appointment_id
    data["start"], data["end"] = start.isoformat(), end.isoformat()
    data["participant"][0]["actor"]["reference"] = f"Patient/{patient}"
    data["participant"][1]["actor"]["reference"] = f"Practitioner/bp{p}"
    return json.dumps(data)


def _occupancy(
    appointment_id: str, actor: str, role: str, start: datetime, end: datetime
) -> dict[str, object]:
    return {
        "appointment_id": appointment_id,
        "actor": actor,
        "role": role,
        "start": start,
        "end": end,
        "blocking": True,
        "active": True,
        "attendance": None,
        "occurrence_key": None,
    }


def bench_find_slots(
    address: str, metadata: list[tuple[str, str]], first_monday: date, weeks: int, calls: int
) -> None:
    rng = random.Random(7)
    kinds: dict[str, list[float]] = {
        "practitioner, 1 week": [],
        "role, 1 day": [],
        "rooms by session type, 1 week": [],
    }
    with grpc.insecure_channel(address) as channel:
        stub = sc_grpc.SchedulingServiceStub(channel)
        for n in range(calls):
            day = first_monday + timedelta(weeks=rng.randrange(weeks - 1), days=rng.randrange(5))
            start = _local(day, 0)
            kind = list(kinds)[n % 3]
            if kind.startswith("practitioner"):
                request = sc.FindSlotsRequest(
                    actor=f"Practitioner/bp{rng.randrange(50)}",
                    start_time=_ts(start),
                    end_time=_ts(start + timedelta(days=7)),
                    duration_minutes=60,
                )
            elif kind.startswith("role"):
                request = sc.FindSlotsRequest(
                    role=rng.choice(ROLES),
                    start_time=_ts(start),
                    end_time=_ts(start + timedelta(days=1)),
                    duration_minutes=50,
                )
            else:
                request = sc.FindSlotsRequest(
                    service_type="group-therapy",
                    start_time=_ts(start),
                    end_time=_ts(start + timedelta(days=7)),
                    duration_minutes=90,
                )
            started = time.perf_counter()
            found = stub.FindSlots(request, metadata=metadata, timeout=30)
            kinds[kind].append((time.perf_counter() - started) * 1000)
            assert found.slots, request
    every = [v for values in kinds.values() for v in values]
    print(f"    FindSlots, all: {summary(every)}", flush=True)
    for kind, values in kinds.items():
        print(f"    FindSlots by {kind}: {summary(values)}", flush=True)


def bench_last_seat(address: str, metadata: list[tuple[str, str]], day: date, callers: int) -> None:
    with grpc.insecure_channel(address) as channel:
        stub = sc_grpc.SchedulingServiceStub(channel)
        session = stub.CreateGroupSession(
            sc.CreateGroupSessionRequest(
                request_id=str(uuid.uuid4()),
                location_id="br0",
                facilitator_ids=["bp0"],
                start_time=_ts(_local(day, 17)),
                end_time=_ts(_local(day, 18)),
                capacity=1,
            ),
            metadata=metadata,
            timeout=30,
        ).appointment
    outcomes: dict[str, int] = {}
    lock = threading.Lock()
    barrier = threading.Barrier(callers)
    channels = [grpc.insecure_channel(address) for _ in range(8)]

    def attempt(i: int) -> None:
        stub = sc_grpc.SchedulingServiceStub(channels[i % len(channels)])
        request = sc.JoinGroupSessionRequest(
            request_id=str(uuid.uuid4()), appointment_id=session.id, patient_id=f"seat-{i}"
        )
        barrier.wait()
        try:
            stub.JoinGroupSession(request, metadata=metadata, timeout=300)
            code = "OK"
        except grpc.RpcError as exc:
            code = exc.code().name
        with lock:
            outcomes[code] = outcomes.get(code, 0) + 1

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(callers)]
    for t in threads:
        t.start()
    started = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    for c in channels:
        c.close()
    print(
        f"    {callers} simultaneous joins for the last seat in {wall:.1f}s "
        f"({callers / wall:.0f}/s): {outcomes}",
        flush=True,
    )


def _book_concurrently(
    address: str,
    metadata: list[tuple[str, str]],
    threads: int,
    requests: Callable[[int], Iterator[sc.BookAppointmentRequest]],
) -> tuple[list[float], dict[str, int], float]:
    """Each of `threads` client threads sends the bookings `requests(thread)` yields, one after
    another on its own channel; returns the latencies (ms), the outcomes by status code and the
    wall time (s)."""
    outcomes: dict[str, int] = {}
    latencies: list[float] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        with grpc.insecure_channel(address) as channel:
            stub = sc_grpc.SchedulingServiceStub(channel)
            for request in requests(k):
                began = time.perf_counter()
                try:
                    stub.BookAppointment(request, metadata=metadata, timeout=60)
                    code = "OK"
                except grpc.RpcError as exc:
                    code = exc.code().name
                with lock:
                    latencies.append((time.perf_counter() - began) * 1000)
                    outcomes[code] = outcomes.get(code, 0) + 1

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    started = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return latencies, outcomes, time.perf_counter() - started


def bench_contended_bookings(
    address: str, metadata: list[tuple[str, str]], day: date, threads: int, per_thread: int
) -> None:
    """Every thread books random hours with the same 5 practitioners on one day: most requests
    contend for the same calendar locks, and most are refused once the hours fill up."""

    def requests(k: int) -> Iterator[sc.BookAppointmentRequest]:
        rng = random.Random(k)
        for n in range(per_thread):
            start = _local(day, 8) + timedelta(minutes=15 * rng.randrange(16))
            yield sc.BookAppointmentRequest(
                request_id=str(uuid.uuid4()),
                patient_id=f"contend-{k}-{n}",
                practitioner_ids=[f"bp{rng.randrange(5)}"],
                start_time=_ts(start),
                end_time=_ts(start + timedelta(minutes=45)),
            )

    latencies, outcomes, wall = _book_concurrently(address, metadata, threads, requests)
    print(
        f"    {len(latencies)} bookings for 5 practitioners' mornings, {threads} client threads: "
        f"{len(latencies) / wall:.0f} decisions/s; {outcomes}; {summary(latencies)}",
        flush=True,
    )


def bench_accepted_bookings(
    address: str, metadata: list[tuple[str, str]], first_day: date, threads: int, total: int
) -> None:
    """Bookings that all succeed but contend: every thread books the next free hour of the same
    5 practitioners (so each calendar lock is fought over), each for a new patient."""
    plan = [
        (first_day + timedelta(days=d), hour, p)
        for d in range(0, 400)
        if (first_day + timedelta(days=d)).weekday() < 5
        for hour in range(8, 18)
        for p in range(5)
    ][:total]
    work = iter(plan)
    lock = threading.Lock()

    def requests(_k: int) -> Iterator[sc.BookAppointmentRequest]:
        while True:
            with lock:  # the threads share one list of hours: each takes the next one
                item = next(work, None)
            if item is None:
                return
            day, hour, p = item
            yield sc.BookAppointmentRequest(
                request_id=str(uuid.uuid4()),
                patient_id=f"acc-{uuid.uuid4().hex[:12]}",
                practitioner_ids=[f"bp{p}"],
                start_time=_ts(_local(day, hour)),
                end_time=_ts(_local(day, hour + 1)),
            )

    latencies, outcomes, wall = _book_concurrently(address, metadata, threads, requests)
    print(
        f"    {len(latencies)} accepted bookings on 5 practitioners' calendars, {threads} client "
        f"threads: {outcomes.get('OK', 0) / wall:.0f} bookings/s; {outcomes}; {summary(latencies)}",
        flush=True,
    )


def bench_scheduling(
    env: dict[str, str],
    data_dir: Path,
    metadata: list[tuple[str, str]],
    label: str,
    database_url: str,
    *,
    slot_calls: int,
    seat_callers: int,
    accepted_bookings: int = 1000,
) -> None:
    today = datetime.now(ZONE).date()
    first_monday = today + timedelta(days=7 - today.weekday())
    weeks = 12
    url = database_url or f"sqlite:///{data_dir / f'scheduling-{label}.db'}"
    extra = {
        "IOPCARE_SCHEDULING_DATABASE_URL": url,
        "IOPCARE_SCHEDULING_CONSUMER_GROUP": f"bench-{uuid.uuid4().hex[:6]}",
        # 32 workers admit 1,024 calls at once (the server refuses more with RESOURCE_EXHAUSTED).
        "IOPCARE_SCHEDULING_GRPC_WORKERS": "32",
    }
    process = ServiceProcess(
        "scheduling", free_port(), {**env, **extra}, data_dir / f"scheduling-{label}.log"
    )
    process.start()
    try:
        with grpc.insecure_channel(process.address) as channel:
            create_calendars(sc_grpc.SchedulingServiceStub(channel), metadata, 50, 10)
        started = time.perf_counter()
        loaded = load_bookings(url, first_monday, weeks, 50, 10, 500)
        print(
            f"  {label}: loaded {loaded} appointments (12 weeks, 50 practitioners, 10 rooms, "
            f"500 patients) in {time.perf_counter() - started:.1f}s",
            flush=True,
        )
        bench_find_slots(process.address, metadata, first_monday, weeks, slot_calls)
        after = first_monday + timedelta(weeks=weeks + 1)
        bench_contended_bookings(process.address, metadata, after, 8, 50)
        bench_accepted_bookings(
            process.address, metadata, after + timedelta(weeks=2), 8, accepted_bookings
        )
        bench_last_seat(process.address, metadata, after + timedelta(days=1), seat_callers)
    finally:
        process.stop()
