"""The one idempotency rule (kit.requests), on SQLite and PostgreSQL and under concurrency: a
repeat of a request returns the first result; the same request id with a different request is
INVALID_ARGUMENT (reason REQUEST_ID_REUSED), audited; N simultaneous copies make one effect and
get one answer. First the kit's contract on a bare database, then each service over gRPC."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, time, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy import Column, MetaData, String, Table, func, select

from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.kit import requests
from iopcare.kit.db import Database, UnitOfWork
from iopcare.kit.runtime import ServiceRuntime
from iopcare.kit.schema import add_kit_tables
from iopcare.kit.settings import Settings
from iopcare.notes.v1 import notes_service_pb2 as nt
from iopcare.notes.v1 import notes_service_pb2_grpc as nt_grpc
from iopcare.scheduling.v1 import scheduling_service_pb2 as sc
from iopcare.scheduling.v1 import scheduling_service_pb2_grpc as sc_grpc
from tests.support import harness
from tests.support.plans import iop_plan, new_patient_id, phq9_goal
from tests.support.scheduling import admin, future_monday, local, practitioner_schedule, ts

#: Simultaneous copies of one request in each concurrency test.
COPIES = 12


def reason_of(exc: grpc.RpcError) -> str:
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    assert status is not None, exc
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return str(info.reason)
    return ""


def all_at_once(call: Callable[[int], Any], copies: int = COPIES) -> list[Any]:
    """Runs `call(i)` on `copies` threads released together; each result or the exception."""
    barrier = threading.Barrier(copies)

    def run(i: int) -> Any:
        barrier.wait()
        try:
            return call(i)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(max_workers=copies) as pool:
        return list(pool.map(run, range(copies)))


# -- the kit's contract on a bare database ---------------------------------------------------------


@pytest.fixture
def kit_db(database_url: str) -> Iterator[tuple[Database, dict[str, Table], Table]]:
    metadata = MetaData()
    tables = add_kit_tables(metadata)
    effect = Table(
        "effect", metadata, Column("id", String(64), primary_key=True), Column("what", String(64))
    )
    db = Database(database_url)
    metadata.create_all(db.write_engine)
    yield db, tables, effect
    db.dispose()


def test_fingerprint_ignores_request_id_and_order_but_not_content() -> None:
    a = pb.CreateGoalRequest(request_id="one", fhir_json='{"a":1}')
    b = pb.CreateGoalRequest(request_id="two", fhir_json='{"a":1}')
    c = pb.CreateGoalRequest(request_id="one", fhir_json='{"a":2}')
    assert requests.fingerprint(a) == requests.fingerprint(b)
    assert requests.fingerprint(a) != requests.fingerprint(c)
    assert requests.fingerprint({"x": 1, "y": (1, 2)}) == requests.fingerprint(
        {"y": [1, 2], "x": 1}
    )
    assert requests.fingerprint({"at": datetime(2026, 1, 1, tzinfo=UTC)}) != requests.fingerprint(
        {"at": datetime(2026, 1, 2, tzinfo=UTC)}
    )


def test_kit_concurrent_copies_make_one_effect_and_a_different_request_is_refused(
    kit_db: tuple[Database, dict[str, Table], Table],
) -> None:
    db, tables, effect = kit_db
    principal = harness.principal()
    request_id = str(uuid.uuid4())

    def attempt(what: str) -> tuple[str, bool]:
        def create(uow: UnitOfWork, new_id: str) -> None:
            uow.conn.execute(effect.insert().values(id=new_id, what=what))

        return requests.create_once(
            db,
            tables["request_log"],
            principal,
            "MakeEffect",
            request_id,
            create,
            lambda: str(uuid.uuid4()),
            request={"what": what},
            audit_log=tables["audit_log"],
        )

    results = all_at_once(lambda _: attempt("a"))
    assert not [r for r in results if isinstance(r, Exception)], results
    assert len({r[0] for r in results}) == 1  # one answer
    assert sum(1 for r in results if r[1]) == 1  # one of them made it
    with db.read() as conn:
        assert conn.execute(select(func.count()).select_from(effect)).scalar() == 1

    with pytest.raises(requests.RequestIdReused):
        attempt("b")
    audit = tables["audit_log"]
    with db.read() as conn:
        refused = conn.execute(select(audit.c.detail).where(audit.c.outcome == "denied")).scalars()
        assert list(refused) == [requests.REQUEST_ID_REUSED]
        assert conn.execute(select(func.count()).select_from(effect)).scalar() == 1

    # Another caller's request under the same id is its own request.
    other = requests.create_once(
        db,
        tables["request_log"],
        harness.principal("therapist", "th-1"),
        "MakeEffect",
        request_id,
        lambda uow, new_id: uow.conn.execute(effect.insert().values(id=new_id, what="b")) and None,
        lambda: str(uuid.uuid4()),
        request={"what": "b"},
        audit_log=tables["audit_log"],
    )
    assert other[1] and other[0] != results[0][0]


def test_kit_racing_different_requests_under_one_id_make_one_effect(
    kit_db: tuple[Database, dict[str, Table], Table],
) -> None:
    """Copies of two different requests race for one id: one effect; the copies of the winner
    get its result, the others REQUEST_ID_REUSED; nobody gets an internal error."""
    db, tables, effect = kit_db
    principal = harness.principal()
    request_id = str(uuid.uuid4())

    def attempt(i: int) -> tuple[str, bool]:
        what = "ab"[i % 2]
        return requests.create_once(
            db,
            tables["request_log"],
            principal,
            "MakeEffect",
            request_id,
            lambda uow, new_id: (
                uow.conn.execute(effect.insert().values(id=new_id, what=what)) and None
            ),
            lambda: str(uuid.uuid4()),
            request={"what": what},
            audit_log=tables["audit_log"],
        )

    results = all_at_once(attempt)
    with db.read() as conn:
        (winner,) = conn.execute(select(effect.c.id, effect.c.what)).all()
    for i, result in enumerate(results):
        if "ab"[i % 2] == winner.what:
            assert result == (winner.id, result[1]), result
        else:
            assert isinstance(result, requests.RequestIdReused), result


# -- each service over gRPC --------------------------------------------------------------------


def test_careplan_create_goal_once_under_concurrency_and_refused_for_another_patient(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings
) -> None:
    a, b = new_patient_id(), new_patient_id()
    for patient_id in (a, b):
        harness.enrol_over_grpc(stub, settings, patient_id)
    metadata = harness.metadata(settings)
    request_id = str(uuid.uuid4())

    def create(patient_id: str) -> Any:
        return stub.CreateGoal(
            pb.CreateGoalRequest(
                request_id=request_id, fhir_json=json.dumps(phq9_goal(patient_id))
            ),
            metadata=metadata,
            timeout=30,
        ).goal

    goals = all_at_once(lambda _: create(a))
    assert not [g for g in goals if isinstance(g, Exception)], goals
    assert len({g.id for g in goals}) == 1
    assert len(stub.ListGoals(pb.ListGoalsRequest(patient_id=a), metadata=metadata).goals) == 1
    with pytest.raises(grpc.RpcError) as refused:
        create(b)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(refused.value) == "REQUEST_ID_REUSED"


def test_careplan_record_plan_review_once_under_concurrency_and_refused_for_another_review(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings
) -> None:
    """RecordPlanReview now takes a request_id like the creates: copies of one review make one
    revision and all get it (not STALE_VERSION); another review under the id is refused."""
    metadata = harness.metadata(settings)
    plan = stub.CreateCarePlan(
        pb.CreateCarePlanRequest(
            request_id=str(uuid.uuid4()), fhir_json=harness.enrolled_plan_json(stub, settings)
        ),
        metadata=metadata,
    ).care_plan
    request_id = str(uuid.uuid4())

    def review(summary: str) -> Any:
        return stub.RecordPlanReview(
            pb.RecordPlanReviewRequest(
                request_id=request_id,
                id=plan.id,
                expected_version=plan.version,
                outcome="continue",
                summary=summary,
                attestations=[pb.ReviewAttestation(practitioner_id="psy-1", role="psychiatrist")],
            ),
            metadata=metadata,
            timeout=30,
        ).care_plan

    reviewed = all_at_once(lambda _: review("Stable; continue as planned."))
    assert not [r for r in reviewed if isinstance(r, Exception)], reviewed
    assert {r.version for r in reviewed} == {plan.version + 1}
    versions = stub.ListResourceVersions(
        pb.ListResourceVersionsRequest(resource_type="CarePlan", id=plan.id), metadata=metadata
    ).versions
    assert len(versions) == plan.version + 1
    with pytest.raises(grpc.RpcError) as refused:
        review("Step down to outpatient.")
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(refused.value) == "REQUEST_ID_REUSED"


def test_careplan_updates_and_stay_transitions_once_under_concurrency(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings
) -> None:
    """UpdateCarePlan, UpdateCareTeam, AdmitPatient, ChangeLevelOfCare and DischargePatient take
    a request_id too: copies of one update make one version and all get it; another update under
    the id is refused."""
    metadata = harness.metadata(settings)
    patient_id = new_patient_id()
    team_id = harness.enrol_over_grpc(stub, settings, patient_id)
    plan = stub.CreateCarePlan(
        pb.CreateCarePlanRequest(
            request_id=str(uuid.uuid4()), fhir_json=json.dumps(iop_plan(patient_id, team_id))
        ),
        metadata=metadata,
    ).care_plan
    request_id = str(uuid.uuid4())

    def update(title: str) -> Any:
        body = json.loads(plan.fhir_json)
        body["title"] = title
        return stub.UpdateCarePlan(
            pb.UpdateCarePlanRequest(
                request_id=request_id,
                id=plan.id,
                expected_version=plan.version,
                fhir_json=json.dumps(body),
                reason="team meeting",
            ),
            metadata=metadata,
            timeout=30,
        ).care_plan

    updated = all_at_once(lambda _: update("IOP plan, week 2"))
    assert not [u for u in updated if isinstance(u, Exception)], updated
    assert {u.version for u in updated} == {plan.version + 1}
    with pytest.raises(grpc.RpcError) as refused:
        update("IOP plan, week 3")
    assert reason_of(refused.value) == "REQUEST_ID_REUSED"

    stay = stub.CreateEpisode(
        pb.CreateEpisodeRequest(
            request_id=str(uuid.uuid4()),
            fhir_json=json.dumps(
                {
                    "resourceType": "EpisodeOfCare",
                    "status": "planned",
                    "patient": {"reference": f"Patient/{patient_id}"},
                }
            ),
        ),
        metadata=metadata,
    ).episode
    admit_id = str(uuid.uuid4())

    def admit(reason: str) -> Any:
        return stub.AdmitPatient(
            pb.AdmitPatientRequest(
                request_id=admit_id, id=stay.id, expected_version=stay.version, reason=reason
            ),
            metadata=metadata,
            timeout=30,
        ).episode

    admitted = all_at_once(lambda _: admit("intake done"))
    assert not [a for a in admitted if isinstance(a, Exception)], admitted
    assert {a.version for a in admitted} == {stay.version + 1}
    with pytest.raises(grpc.RpcError) as refused:
        admit("another reason")
    assert reason_of(refused.value) == "REQUEST_ID_REUSED"


@pytest.fixture
def scheduling(settings: Settings, database_url: str) -> Iterator[ServiceRuntime]:
    runtime = harness.build("scheduling", settings, database_url)
    runtime.start()
    yield runtime
    runtime.stop(grace=0.5)


def test_scheduling_book_once_under_concurrency_and_refused_for_another_time(
    scheduling: ServiceRuntime, settings: Settings
) -> None:
    with harness.channel(scheduling) as channel:
        stub = sc_grpc.SchedulingServiceStub(channel)
        therapist, patient = f"th-{uuid.uuid4().hex[:8]}", new_patient_id()
        practitioner_schedule(stub, settings, therapist)
        start = local(future_monday(), time(13, 0))
        request_id = str(uuid.uuid4())

        def book(at: datetime) -> Any:
            return stub.BookAppointment(
                sc.BookAppointmentRequest(
                    request_id=request_id,
                    patient_id=patient,
                    practitioner_ids=[therapist],
                    start_time=ts(at),
                    end_time=ts(at + timedelta(hours=1)),
                    service_type="individual-therapy",
                ),
                metadata=admin(settings),
                timeout=30,
            ).appointment

        booked = all_at_once(lambda _: book(start))
        assert not [b for b in booked if isinstance(b, Exception)], booked
        assert len({b.id for b in booked}) == 1
        with pytest.raises(grpc.RpcError) as refused:
            book(start + timedelta(hours=2))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert reason_of(refused.value) == "REQUEST_ID_REUSED"


def _once_each(call: Callable[[str], Any], copies: int = 6) -> list[Any]:
    """Concurrent copies of `call(first)` (all must succeed and agree), then `call(other)` under
    the same request id, which must be refused as a reused id."""
    answers = all_at_once(lambda _: call("first"), copies)
    assert not [a for a in answers if isinstance(a, Exception)], answers
    with pytest.raises(grpc.RpcError) as refused:
        call("other")
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(refused.value) == "REQUEST_ID_REUSED"
    return answers


def test_scheduling_changes_once_under_concurrency_and_refused_for_another_change(
    scheduling: ServiceRuntime, settings: Settings
) -> None:
    """UpdateSchedule, RescheduleAppointment, RecordAttendance, CancelAppointment and
    RecordCheckIn take a request_id: copies of one change make one version and all get it (the
    same `late` for a cancellation, the same check-in); another change under the id is refused."""
    meta = admin(settings)
    with harness.channel(scheduling) as channel:
        stub = sc_grpc.SchedulingServiceStub(channel)
        therapist = f"th-{uuid.uuid4().hex[:8]}"
        schedule = practitioner_schedule(stub, settings, therapist)
        monday = future_monday()

        def book(patient: str, hour: int) -> Any:
            return stub.BookAppointment(
                sc.BookAppointmentRequest(
                    request_id=str(uuid.uuid4()),
                    patient_id=patient,
                    practitioner_ids=[therapist],
                    start_time=ts(local(monday, time(hour, 0))),
                    end_time=ts(local(monday, time(hour, 50))),
                    service_type="individual-therapy",
                ),
                metadata=meta,
                timeout=30,
            ).appointment

        update_id = str(uuid.uuid4())
        updated = _once_each(
            lambda what: (
                stub.UpdateSchedule(
                    sc.UpdateScheduleRequest(
                        request_id=update_id,
                        schedule=sc.Schedule(id=schedule.id, service_types=[f"{what}-therapy"]),
                        expected_version=1,
                        update_mask=FieldMask(paths=["service_types"]),
                    ),
                    metadata=meta,
                    timeout=30,
                ).schedule
            )
        )
        assert {(u.version, tuple(u.service_types)) for u in updated} == {(2, ("first-therapy",))}

        booked = book(new_patient_id(), 9)
        move_id = str(uuid.uuid4())
        hours = {"first": 11, "other": 12}
        moved = _once_each(
            lambda what: (
                stub.RescheduleAppointment(
                    sc.RescheduleAppointmentRequest(
                        request_id=move_id,
                        appointment_id=booked.id,
                        expected_version=1,
                        start_time=ts(local(monday, time(hours[what], 0))),
                        end_time=ts(local(monday, time(hours[what], 50))),
                        reason="room change",
                    ),
                    metadata=meta,
                    timeout=30,
                ).appointment
            )
        )
        assert {(m.version, m.start_time.seconds) for m in moved} == {
            (2, ts(local(monday, time(11, 0))).seconds)
        }

        attended = book(new_patient_id(), 14)
        attendance_id = str(uuid.uuid4())
        statuses = {"first": "arrived", "other": "noshow"}
        recorded = _once_each(
            lambda what: (
                stub.RecordAttendance(
                    sc.RecordAttendanceRequest(
                        request_id=attendance_id,
                        appointment_id=attended.id,
                        expected_version=1,
                        status=statuses[what],
                    ),
                    metadata=meta,
                    timeout=30,
                ).appointment
            )
        )
        assert {(r.version, r.status) for r in recorded} == {(2, "arrived")}

        cancel_id = str(uuid.uuid4())
        cancelled = _once_each(
            lambda what: stub.CancelAppointment(
                sc.CancelAppointmentRequest(
                    request_id=cancel_id,
                    appointment_id=booked.id,
                    expected_version=2,
                    reason=f"{what} reason",
                ),
                metadata=meta,
                timeout=30,
            )
        )
        assert {(c.appointment.version, c.appointment.status, c.late) for c in cancelled} == {
            (3, "cancelled", False)
        }

        check_in_id = str(uuid.uuid4())
        patients = {"first": new_patient_id(), "other": new_patient_id()}
        checked = _once_each(
            lambda what: stub.RecordCheckIn(
                sc.RecordCheckInRequest(request_id=check_in_id, patient_id=patients[what]),
                metadata=meta,
                timeout=30,
            )
        )
        assert (
            len({(c.day.year, c.day.month, c.day.day, c.check_in_time.seconds) for c in checked})
            == 1
        )
        assert sum(not c.already_recorded for c in checked) == 1


def test_notes_post_message_once_under_concurrency_and_refused_for_another_text(
    notes: nt_grpc.NotesServiceStub, patient: str, settings: Settings
) -> None:
    metadata = harness.metadata(settings)
    request_id = str(uuid.uuid4())

    def post(text: str) -> Any:
        return notes.PostMessage(
            nt.PostMessageRequest(request_id=request_id, patient_id=patient, text=text),
            metadata=metadata,
            timeout=30,
        ).message

    messages = all_at_once(lambda _: post("Group moved to room 2"))
    assert not [m for m in messages if isinstance(m, Exception)], messages
    assert len({m.id for m in messages}) == 1
    with pytest.raises(grpc.RpcError) as refused:
        post("Group cancelled")
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(refused.value) == "REQUEST_ID_REUSED"
