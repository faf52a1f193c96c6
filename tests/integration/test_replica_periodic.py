"""Periodic tasks run on every replica; each due item is announced once (issue 17, item 3).

Two "replicas" here are two `Database` objects (two connection pools, as two processes have) on
one PostgreSQL database, running the same periodic job at the same moment, several rounds, over
many due items: every item is announced once, and neither run fails on the other's claim.
tests/faults/test_replicas.py checks the same with real processes under SIGKILL.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from iopcare.careplan import app as careplan_app
from iopcare.careplan import codes as careplan_codes
from iopcare.careplan import store as careplan_store
from iopcare.careplan.service import CarePlans
from iopcare.kit.db import Database, migrate
from iopcare.scheduling import app as scheduling_app
from iopcare.scheduling import codes as scheduling_codes
from iopcare.scheduling import store as scheduling_store
from iopcare.scheduling.alerts import Alerts
from tests.support import harness
from tests.support.plans import enrol, iop_plan, new_patient_id

ROUNDS = 3


@pytest.fixture
def two_replicas(postgres_server: Any) -> Iterator[Callable[[Any], tuple[Database, Database]]]:
    if postgres_server is None:
        harness.missing("PostgreSQL is not available on this machine")
    opened: list[Database] = []

    def open_pair(migrations: Any) -> tuple[Database, Database]:
        url = postgres_server.create_database(f"periodic_{uuid.uuid4().hex[:8]}")
        first, second = Database(url), Database(url)
        migrate(first, migrations)
        opened.extend((first, second))
        return first, second

    yield open_pair
    for db in opened:
        db.dispose()


def _at_once(jobs: list[Callable[[], int]]) -> list[int]:
    """Runs the jobs in threads started together; returns their results (raises their error)."""
    barrier = threading.Barrier(len(jobs))
    results: list[int] = [0] * len(jobs)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = jobs[i]()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    return results


def test_replicas_starting_together_migrate_one_database_once(postgres_server: Any) -> None:
    if postgres_server is None:
        harness.missing("PostgreSQL is not available on this machine")
    url = postgres_server.create_database(f"migrate_{uuid.uuid4().hex[:8]}")
    replicas = [Database(url) for _ in range(3)]
    try:

        def migrate_one(db: Database) -> Callable[[], int]:
            def run() -> int:
                migrate(db, careplan_app.MIGRATIONS)
                return 1

            return run

        assert _at_once([migrate_one(db) for db in replicas]) == [1, 1, 1]
    finally:
        for db in replicas:
            db.dispose()


def test_two_replicas_announce_each_due_plan_review_once(
    two_replicas: Callable[[Any], tuple[Database, Database]],
) -> None:
    a, b = two_replicas(careplan_app.MIGRATIONS)
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date()
    plan_ids = []
    for _ in range(12):
        patient = new_patient_id()
        plan = iop_plan(patient, enrol(a, patient))
        plan["extension"] = [
            {"url": careplan_codes.NEXT_REVIEW_EXTENSION, "valueDate": yesterday.isoformat()}
        ]
        created = CarePlans(a).create(harness.principal(), str(uuid.uuid4()), json.dumps(plan))
        plan_ids.append(created.id)
    today = datetime.now(UTC).date()
    announced = 0
    for _ in range(ROUNDS):
        announced += sum(
            _at_once(
                [
                    lambda: CarePlans(a).announce_due_reviews(today),
                    lambda: CarePlans(b).announce_due_reviews(today),
                ]
            )
        )
    assert announced == len(plan_ids)
    o = careplan_store.outbox.c
    with a.read() as conn:
        subjects = conn.execute(
            select(o.subject).where(o.event_type == careplan_codes.EVENT_REVIEW_DUE_NOW)
        ).scalars()
        per_plan = Counter(s.split("/_history")[0] for s in subjects)
    assert per_plan == Counter({f"CarePlan/{p}": 1 for p in plan_ids})


def test_two_replicas_raise_each_scheduling_alert_once(
    two_replicas: Callable[[Any], tuple[Database, Database]],
) -> None:
    a, b = two_replicas(scheduling_app.MIGRATIONS)
    patients = [new_patient_id() for _ in range(20)]
    kind = scheduling_codes.ALERT_MISSED_CHECKIN
    now = datetime.now(UTC)

    def check(db: Database) -> Callable[[], int]:
        return lambda: Alerts(db, lambda: None).for_patients(
            patients, kind, lambda _uow, _p: ("2026-12-03", "no daily check-in"), now
        )

    raised = sum(sum(_at_once([check(a), check(b)])) for _ in range(ROUNDS))
    assert raised == len(patients)
    o = scheduling_store.outbox.c
    with a.read() as conn:
        keys = conn.execute(
            select(o.key).where(o.event_type == scheduling_codes.EVENT_FOR_ALERT[kind])
        ).scalars()
        per_patient = Counter(keys)
    assert per_patient == Counter(dict.fromkeys(patients, 1))
