"""A plan's series (issue 3, item 3): group activities join the facilitator's group session,
holidays are skipped, an edited activity moves future sessions, and the horizon rolls on."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import grpc
import pytest

from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.kit.runtime import ServiceRuntime
from iopcare.kit.settings import Settings
from iopcare.scheduling.service import Scheduling
from iopcare.scheduling.v1 import scheduling_service_pb2 as sc
from iopcare.scheduling.v1 import scheduling_service_pb2_grpc as sc_grpc
from tests.support import harness
from tests.support.plans import iop_plan, new_patient_id
from tests.support.scheduling import admin, local, new_id, practitioner_schedule, room_schedule, ts


def _next_monday(zone: ZoneInfo) -> date:
    today = datetime.now(zone).date()
    return today + timedelta(days=7 - today.weekday())


@pytest.fixture
def holiday(settings: Settings) -> date:
    # The Wednesday of next week: no group therapy that day.
    return _next_monday(ZoneInfo(settings.program_timezone)) + timedelta(days=2)


@pytest.fixture
def scheduling(
    settings: Settings,
    database_url: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    holiday: date,
) -> Iterator[ServiceRuntime]:
    if database_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'scheduling.db'}"
    else:
        url = request.getfixturevalue("postgres_server").create_database(
            f"scheduling_{uuid.uuid4().hex[:8]}"
        )
    with_holiday = settings.model_copy(update={"scheduling_program_holidays": [holiday]})
    runtime = harness.build("scheduling", with_holiday, url)
    runtime.start()
    yield runtime
    runtime.stop(grace=0.2)


def _sessions(sched: Any, me: Any, patient: str, **kwargs: Any) -> list[sc.Appointment] | None:
    try:
        found = sched.ListAppointments(
            sc.ListAppointmentsRequest(patient_id=patient, page_size=1000, **kwargs),
            metadata=me,
            timeout=10,
        ).appointments
    except grpc.RpcError:
        return None
    return list(found) or None


def _monday_group(sched: Any, settings: Settings, monday: date, capacity: int) -> sc.Appointment:
    """A group session in a new room, Monday 09:00-12:00, led by the demo plan's therapist."""
    room = new_id("room")
    room_schedule(sched, settings, room, capacity=capacity)
    practitioner_schedule(sched, settings, "demo-therapist", role="group-facilitator")
    return sched.CreateGroupSession(
        sc.CreateGroupSessionRequest(
            request_id=str(uuid.uuid4()),
            location_id=room,
            facilitator_ids=["demo-therapist"],
            start_time=ts(local(monday, time(9), settings.program_timezone)),
            end_time=ts(local(monday, time(12), settings.program_timezone)),
            service_type="group-therapy",
        ),
        metadata=admin(settings),
        timeout=10,
    ).appointment


def _plan_for(stub: pb_grpc.CarePlanServiceStub, settings: Settings, patient: str) -> Any:
    """The demo IOP plan for a newly enrolled patient, created over gRPC."""
    team_id = harness.enrol_over_grpc(stub, settings, patient)
    return stub.CreateCarePlan(
        pb.CreateCarePlanRequest(
            request_id=str(uuid.uuid4()), fhir_json=json.dumps(iop_plan(patient, team_id))
        ),
        metadata=harness.metadata(settings),
        timeout=10,
    ).care_plan


def test_the_series_joins_the_group_skips_holidays_follows_edits_and_rolls_on(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings, scheduling: ServiceRuntime, holiday: date
) -> None:
    zone = ZoneInfo(settings.program_timezone)
    monday = _next_monday(zone)
    patient = new_patient_id()
    me = harness.metadata(settings)
    with harness.channel(scheduling) as channel:
        sched = sc_grpc.SchedulingServiceStub(channel)
        # The plan's group therapist leads a group on Monday 09:00-12:00: the patient joins it.
        group = _monday_group(sched, settings, monday, capacity=10)
        created = _plan_for(stub, settings, patient)
        sessions = harness.eventually(lambda: _sessions(sched, me, patient))
        by_id = {s.id: s for s in sessions}
        assert group.id in by_id and by_id[group.id].kind == "group"
        days = {s.start_time.ToDatetime(tzinfo=UTC).astimezone(zone).date() for s in sessions}
        assert holiday not in days
        group_therapy = [s for s in sessions if "Group therapy" in s.fhir_json]
        assert group.id not in {s.id for s in group_therapy}  # no separate proposal beside it

        # The team moves individual therapy from Tuesday 13:00 to Thursday 15:00.
        plan = json.loads(created.fhir_json)
        individual = plan["activity"][1]["detail"]["scheduledTiming"]["repeat"]
        individual["dayOfWeek"], individual["timeOfDay"] = ["thu"], ["15:00:00"]
        stub.UpdateCarePlan(
            pb.UpdateCarePlanRequest(
                id=created.id, expected_version=1, fhir_json=json.dumps(plan), reason="moved"
            ),
            metadata=me,
            timeout=10,
        )

        def moved() -> list[sc.Appointment] | None:
            current = _sessions(sched, me, patient) or []
            therapy = [s for s in current if "Individual therapy" in s.fhir_json]
            open_ = [s for s in therapy if s.status == "proposed"]
            cancelled = [s for s in therapy if s.status == "cancelled"]
            if not cancelled or not open_:
                return None
            return open_ if all(_local(s, zone).weekday() == 3 for s in open_) else None

        for s in harness.eventually(moved):
            assert _local(s, zone).time() == time(15, 0)

        # The rolling horizon: a week later, the series reaches a week further.
        before = max(
            s.start_time.ToDatetime(tzinfo=UTC) for s in _sessions(sched, me, patient) or []
        )
        runner = Scheduling(
            scheduling.db,
            zone=zone,
            horizon=timedelta(days=settings.scheduling_horizon_days),
        )
        a_week_later = datetime.now(UTC) + timedelta(days=7)
        assert runner.extend_horizons(a_week_later) == 1
        assert runner.extend_horizons(a_week_later) == 0  # already there
        after = max(
            s.start_time.ToDatetime(tzinfo=UTC) for s in _sessions(sched, me, patient) or []
        )
        assert after - before >= timedelta(days=5)


def _local(s: sc.Appointment, zone: ZoneInfo) -> datetime:
    return s.start_time.ToDatetime(tzinfo=UTC).astimezone(zone)


def test_a_full_group_is_reported_as_a_conflict_and_the_rest_of_the_series_goes_on(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings, scheduling: ServiceRuntime
) -> None:
    from iopcare.kit import topics
    from iopcare.scheduling import codes

    zone = ZoneInfo(settings.program_timezone)
    monday = _next_monday(zone)
    patient = new_patient_id()
    me = harness.metadata(settings)
    with harness.channel(scheduling) as channel:
        sched = sc_grpc.SchedulingServiceStub(channel)
        group = _monday_group(sched, settings, monday, capacity=1)
        sched.JoinGroupSession(
            sc.JoinGroupSessionRequest(
                request_id=str(uuid.uuid4()), appointment_id=group.id, patient_id=new_id("pat")
            ),
            metadata=admin(settings),
            timeout=10,
        )
        _plan_for(stub, settings, patient)
        sessions = harness.eventually(lambda: _sessions(sched, me, patient))
    assert group.id not in {s.id for s in sessions}
    assert len(sessions) >= 8  # the other occurrences of two weeks were proposed
    conflicts = harness.read_topic(
        settings.kafka_bootstrap_servers,
        harness.topic(settings, topics.SCHEDULING),
        lambda r: (
            harness.header(r, "ce_type") == codes.EVENT_SERIES_CONFLICT
            and r.key.decode() == patient
        ),
        settle=1.0,
    )
    assert len(conflicts) == 1
    wanted = json.loads(conflicts[0].value)
    assert "no seat" in wanted["comment"] and "SESSION_FULL" not in wanted["comment"]
    assert not [p for p in wanted["participant"] if p["actor"]["reference"].startswith("Patient/")]
