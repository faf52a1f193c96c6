"""Defects found in review of the scheduling service, each pinned by a test against the real
service layer on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from iopcare.kit import fhir
from iopcare.kit.auth import Principal
from iopcare.kit.db import Database, UnitOfWork, migrate
from iopcare.kit.events import Event, ReceivedEvent
from iopcare.scheduling import app, store
from iopcare.scheduling.service import Scheduling
from tests.support.scheduling import future_monday, local

ZONE = ZoneInfo("America/New_York")
ADMIN = Principal(subject="admin:review", role="admin")
ALL_DAY = tuple((d, "07:00", "20:00") for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"))


@pytest.fixture
def scheduling(database_url: str) -> Iterator[Scheduling]:
    db = Database(database_url)
    migrate(db, app.MIGRATIONS)
    yield Scheduling(db, zone=ZONE, horizon=timedelta(days=14))
    db.dispose()


def _plan(
    plan_id: str, patient: str, version: int, repeat: dict[str, Any], performer: str = ""
) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "status": "scheduled",
        "description": "Group therapy",
        "scheduledTiming": {"repeat": repeat},
    }
    if performer:
        detail["performer"] = [{"reference": performer}]
    return {
        "resourceType": "CarePlan",
        "id": plan_id,
        "meta": {"versionId": str(version)},
        "status": "active",
        "intent": "plan",
        "subject": {"reference": f"Patient/{patient}"},
        "activity": [{"detail": detail}],
    }


def _deliver(s: Scheduling, handler: str, plan: dict[str, Any], at: datetime) -> None:
    data = json.dumps(plan)
    event = Event(type="t", source="test", subject="CarePlan", key="k", data=data, time=at)
    received = ReceivedEvent(event, fhir.parse_resource(data, "CarePlan"), "topic", 0, 0)
    with UnitOfWork(s.db) as uow:
        getattr(s, handler)(uow, received)
        uow.commit()


def _starts(s: Scheduling, patient: str, *, open_only: bool = True) -> list[datetime]:
    with s.db.read() as conn:
        rows = store.patient_sessions(
            conn, patient, datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
        )
    return sorted(start for _, start, _, _, cancelled, _ in rows if not (open_only and cancelled))


def test_a_weekly_activity_without_days_stays_weekly_as_the_horizon_rolls_on(
    scheduling: Scheduling,
) -> None:
    # "Once a week at 10:00", no dayOfWeek and no bounds: the series repeats on the weekday it
    # began. Extending the horizon day by day must not turn it into a daily series.
    patient, plan_id = f"p{uuid.uuid4().hex[:8]}", f"plan-{uuid.uuid4().hex[:8]}"
    began = local(future_monday(), clock(8))
    repeat = {"frequency": 1, "period": 1, "periodUnit": "wk", "timeOfDay": ["10:00:00"]}
    _deliver(scheduling, "on_care_plan_created", _plan(plan_id, patient, 1, repeat), began)
    for day in range(1, 15):
        scheduling.extend_horizons(began + timedelta(days=day))
    starts = _starts(scheduling, patient)
    assert {s.astimezone(ZONE).weekday() for s in starts} == {0}
    assert len(starts) == 4  # weeks 0..3 within began + 28 days
