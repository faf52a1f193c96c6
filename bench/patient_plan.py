"""GetPatientPlan with many patients loaded (issue 6 target: p99 <= 20 ms with 10,000 patients).

The patients are loaded straight into careplan's tables (a team, an active plan, a goal, an
episode, four measures, two weeks of sessions and a few notes each), as the service itself would
have stored them, so loading 10,000 takes seconds instead of the minutes the API would need; the
timed part is GetPatientPlan over gRPC against careplan running as its own process.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc

from bench.common import summary
from iopcare.careplan import app, store
from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.demo import demo_care_plan, demo_care_team
from iopcare.devtools.kafka_broker import free_port
from iopcare.devtools.processes import ServiceProcess
from iopcare.kit import fhir
from iopcare.kit.db import Database, migrate
from iopcare.kit.teams import memberships
from tests.support.plans import phq9, phq9_goal


def load(database_url: str, patients: int, practitioner: str) -> list[str]:
    db = Database(database_url)
    migrate(db, app.MIGRATIONS)
    now = datetime.now(UTC)
    ids = [f"bench-view-{i}" for i in range(patients)]
    plan_template = demo_care_plan(now, "TEAM")
    team_template = demo_care_team("PATIENT", {practitioner: "psychiatrist"})
    rows: dict[str, list[dict[str, object]]] = {
        "plans": [],
        "plans_h": [],
        "teams": [],
        "teams_h": [],
        "members": [],
        "goals": [],
        "goals_h": [],
        "episodes": [],
        "episodes_h": [],
        "observations": [],
        "sessions": [],
        "notes": [],
    }

    def versioned(key: str, item_id: str, patient: str, status: str, resource: str) -> None:
        rows[key].append(
            {
                "id": item_id,
                "patient_id": patient,
                "status": status,
                "version": 1,
                "resource": resource,
                "created_at": now,
                "updated_at": now,
            }
        )
        rows[key + "_h"].append(
            {
                "id": item_id,
                "version": 1,
                "resource": resource,
                "changed_at": now,
                "changed_by": "Device/bench",
                "change": "create",
                "status": status,
                "reason": None,
            }
        )

    for patient in ids:
        team_id, plan_id, goal_id, episode_id = (str(uuid.uuid4()) for _ in range(4))
        team = fhir.parse_resource(
            json.dumps(team_template).replace("PATIENT", patient), "CareTeam"
        )
        versioned("teams", team_id, patient, "active", fhir.with_identity(team, team_id, 1, now))
        rows["members"] += [
            {
                "team_id": team_id,
                "patient_id": patient,
                "member": m.reference,
                "role": m.role,
                "period_start": None,
                "period_end": None,
                "updated_at": now,
            }
            for m in memberships(team)
        ]
        plan = json.loads(json.dumps(plan_template).replace("TEAM", team_id))
        plan["subject"] = {"reference": f"Patient/{patient}"}
        plan["goal"] = [{"reference": f"Goal/{goal_id}"}]
        versioned(
            "plans",
            plan_id,
            patient,
            "active",
            fhir.with_identity(fhir.parse_resource(plan), plan_id, 1, now),
        )
        versioned(
            "goals",
            goal_id,
            patient,
            "active",
            fhir.with_identity(fhir.parse_resource(phq9_goal(patient)), goal_id, 1, now),
        )
        episode = {
            "resourceType": "EpisodeOfCare",
            "status": "active",
            "patient": {"reference": f"Patient/{patient}"},
        }
        versioned(
            "episodes",
            episode_id,
            patient,
            "active",
            fhir.with_identity(fhir.parse_resource(episode), episode_id, 1, now),
        )
        for week, total in enumerate((18, 15, 12, 10)):
            observation_id = str(uuid.uuid4())
            when = now - timedelta(weeks=4 - week)
            body = fhir.parse_resource(phq9(patient, total, when=when.isoformat()))
            rows["observations"].append(
                {
                    "id": observation_id,
                    "patient_id": patient,
                    "code": "44261-6",
                    "status": "final",
                    "value": float(total),
                    "effective": when,
                    "resource": fhir.with_identity(body, observation_id, 1, now),
                    "recorded_at": now,
                }
            )
        for day in range(-7, 14):
            start = now + timedelta(days=day, hours=1)
            rows["sessions"].append(
                {
                    "appointment_id": str(uuid.uuid4()),
                    "patient_id": patient,
                    "care_plan_id": plan_id,
                    "start": start,
                    "end": start + timedelta(hours=3),
                    "status": "fulfilled" if day < 0 else "booked",
                    "description": "Group therapy (CBT skills)",
                    "version": 1,
                }
            )
        for n in range(5):
            rows["notes"].append(
                {
                    "communication_id": str(uuid.uuid4()),
                    "patient_id": patient,
                    "sender": f"Practitioner/{practitioner}",
                    "title": f"Progress note {n}",
                    "category": "update",
                    "priority": "routine",
                    "sent_at": now - timedelta(days=n),
                }
            )
    tables = {
        "plans": store.plans.current,
        "plans_h": store.plans.history,
        "teams": store.teams.current,
        "teams_h": store.teams.history,
        "members": store.care_team_member,
        "goals": store.goals.current,
        "goals_h": store.goals.history,
        "episodes": store.episodes.current,
        "episodes_h": store.episodes.history,
        "observations": store.observation,
        "sessions": store.session_view,
        "notes": store.note_view,
    }
    with db.write() as conn:
        for key, table in tables.items():
            for start in range(0, len(rows[key]), 5000):
                conn.execute(table.insert(), rows[key][start : start + 5000])
    db.dispose()
    return ids


def bench_patient_plan(
    env: dict[str, str],
    data_dir: Path,
    metadata: list[tuple[str, str]],
    patients: int,
    calls: int,
    threads: int,
) -> None:
    started = time.perf_counter()
    ids = load(f"sqlite:///{data_dir / 'careplan.db'}", patients, "bench")
    print(f"    loaded {patients} patients in {time.perf_counter() - started:.1f}s", flush=True)
    process = ServiceProcess("careplan", free_port(), env, data_dir / "careplan-view.log")
    process.start()
    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(calls))

    def worker() -> None:
        rng = random.Random()
        with grpc.insecure_channel(process.address) as channel:
            stub = pb_grpc.CarePlanServiceStub(channel)
            for _ in counter:
                request = pb.GetPatientPlanRequest(patient_id=rng.choice(ids))
                begin = time.perf_counter()
                view = stub.GetPatientPlan(request, metadata=metadata, timeout=30)
                elapsed = (time.perf_counter() - begin) * 1000
                assert view.care_plan.id and view.upcoming_sessions
                with lock:
                    latencies.append(elapsed)

    try:
        begin = time.perf_counter()
        pool = [threading.Thread(target=worker) for _ in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        wall = time.perf_counter() - begin
        print(
            f"    {len(latencies)} calls with {threads} client threads: "
            f"{len(latencies) / wall:.0f}/s; {summary(latencies)}",
            flush=True,
        )
    finally:
        process.stop()
