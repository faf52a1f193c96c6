"""The dietitian's work over gRPC (issue 13, part 2), on both databases with the real broker: the
individual nutrition plan (NutritionOrder) written by the dietitian, read by the team, versioned
and idempotent; the weight target on it sets the %EBW goal and turns each weight into a %EBW
measure; supported meals move the meal goal; a medical instability sign (bradycardia, %EBW below
75) reaches the dietitian and the physician in the team thread."""

from __future__ import annotations

import json
import uuid
from typing import Any

import grpc
import pytest

from iopcare.careplan import codes
from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.kit.settings import Settings
from iopcare.notes.v1 import notes_service_pb2 as nt
from iopcare.notes.v1 import notes_service_pb2_grpc as nt_grpc
from tests.support import harness
from tests.support.monitoring import quantity
from tests.support.nutrition import behaviour, goal, meal, nutrition_order, weight, weight_target
from tests.support.plans import new_patient_id

DIETITIAN = {"role": "dietitian", "practitioner": "diet-1"}
PHYSICIAN = {"role": "physician", "practitioner": "doc-1"}


def _as(settings: Settings, who: dict[str, str]) -> Any:
    return harness.metadata(settings, **who)


def _record(
    stub: pb_grpc.CarePlanServiceStub,
    settings: Settings,
    body: dict[str, Any],
    who: dict[str, str] = PHYSICIAN,
    request_id: str | None = None,
) -> Any:
    return stub.RecordMeasure(
        pb.RecordMeasureRequest(
            request_id=request_id or str(uuid.uuid4()), fhir_json=json.dumps(body)
        ),
        metadata=_as(settings, who),
    )


def _create_order(
    stub: pb_grpc.CarePlanServiceStub,
    settings: Settings,
    body: dict[str, Any],
    who: dict[str, str] = DIETITIAN,
    request_id: str | None = None,
) -> Any:
    return stub.CreateNutritionOrder(
        pb.CreateNutritionOrderRequest(
            request_id=request_id or str(uuid.uuid4()), fhir_json=json.dumps(body)
        ),
        metadata=_as(settings, who),
    ).nutrition_order


def _achievement(goal_message: Any) -> str:
    concept = json.loads(goal_message.fhir_json).get("achievementStatus", {})
    return str(concept.get("coding", [{}])[0].get("code", ""))


def _moved(recorded: Any, goal_id: str) -> str | None:
    """The achievement a recorded measure moved the goal to (None: it did not move it)."""
    return next((_achievement(g) for g in recorded.updated_goals if g.id == goal_id), None)


def _refused(call: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code()


@pytest.fixture
def enrolled(stub: pb_grpc.CarePlanServiceStub, settings: Settings) -> str:
    """A patient with the usual team (diet-1, doc-1, psy-1, th-1, cm-1), without notes running:
    these tests need no thread."""
    patient_id = new_patient_id()
    harness.enrol_over_grpc(stub, settings, patient_id)
    return patient_id


def test_meal_completion_and_ebw_move_the_dietitians_goals(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings, enrolled: str
) -> None:
    patient = enrolled
    dietitian = _as(settings, DIETITIAN)
    # An eating-disorder patient: the program's template drafts the %EBW goal without a number.
    draft = stub.DraftCarePlan(
        pb.DraftCarePlanRequest(
            request_id=str(uuid.uuid4()), patient_id=patient, diagnosis_code="F50.01"
        ),
        metadata=harness.metadata(settings),
    ).care_plan
    # The draft's goals are Goals of their own (ADR 0022), referenced by the plan.
    plan_goals = {g["reference"] for g in json.loads(draft.fhir_json)["goal"]}
    listed = stub.ListGoals(pb.ListGoalsRequest(patient_id=patient), metadata=dietitian).goals
    drafted = {
        g["target"][0]["measure"]["coding"][0]["code"]: g["target"][0]
        for g in (json.loads(item.fhir_json) for item in listed)
        if f"Goal/{g['id']}" in plan_goals
    }
    assert "detailQuantity" not in drafted[codes.PERCENT_EBW]
    # The template's goals, as the dietitian holds them: %EBW with no number yet (the target is
    # hers to set per patient), and at least 90 % of each supported meal.
    ebw_goal = stub.CreateGoal(
        pb.CreateGoalRequest(
            request_id=str(uuid.uuid4()),
            fhir_json=json.dumps(goal(patient, codes.PERCENT_EBW, ">=", None)),
        ),
        metadata=dietitian,
    ).goal
    meal_goal = stub.CreateGoal(
        pb.CreateGoalRequest(
            request_id=str(uuid.uuid4()),
            fhir_json=json.dumps(goal(patient, codes.MEAL_COMPLETION, ">=", 90)),
        ),
        metadata=dietitian,
    ).goal
    # Before the dietitian sets a target a weight is only a weight.
    before = _record(stub, settings, weight(patient, 48.0, "2026-11-02T08:00:00Z"))
    assert list(before.updated_goals) == []

    # The dietitian writes the nutrition plan: expected body weight 58 kg, range 95-105 %.
    request_id = str(uuid.uuid4())
    order = _create_order(stub, settings, nutrition_order(patient), request_id=request_id)
    assert (order.version, order.status, order.patient_id) == (1, "active", patient)
    again = _create_order(stub, settings, nutrition_order(patient), request_id=request_id)
    assert again.id == order.id  # a retry creates nothing
    targeted = stub.GetGoal(pb.GetGoalRequest(id=ebw_goal.id), metadata=dietitian).goal
    assert targeted.version == 2
    (target,) = json.loads(targeted.fhir_json)["target"]
    assert (target["detailQuantity"]["value"], target["detailQuantity"]["comparator"]) == (95, ">=")

    # Weights are %EBW against her target; the goal moves by the existing measure -> goal path.
    moves = []
    for kg, when in ((49.3, "2026-11-09"), (51.6, "2026-11-16"), (55.4, "2026-11-23")):
        recorded = _record(stub, settings, weight(patient, kg, f"{when}T08:00:00Z"))
        moves.append(_moved(recorded, ebw_goal.id))
    assert moves == ["in-progress", "improving", "achieved"]
    listed = stub.ListMeasures(
        pb.ListMeasuresRequest(patient_id=patient, code=codes.PERCENT_EBW), metadata=dietitian
    )
    percents = [json.loads(o)["valueQuantity"]["value"] for o in listed.fhir_json]
    assert percents == [85.0, 89.0, 95.5]
    derived = json.loads(listed.fhir_json[0])
    assert derived["basedOn"] == [{"reference": f"NutritionOrder/{order.id}"}]

    # Supported meals (one Observation per meal) move the meal goal on their trend.
    meal_moves = [
        _moved(
            _record(stub, settings, meal(patient, which, percent, when), DIETITIAN), meal_goal.id
        )
        for which, percent, when in (
            ("lunch", 50, "2026-11-23T12:30:00Z"),
            ("dinner", 75, "2026-11-23T18:30:00Z"),
            ("lunch", 100, "2026-11-24T12:30:00Z"),
        )
    ]
    assert meal_moves == ["in-progress", "improving", "achieved"]
    for code, count in ((codes.BINGE_COUNT, 1), (codes.PURGE_COUNT, 0)):
        _record(stub, settings, behaviour(patient, code, count, "2026-11-24T21:00:00Z"), DIETITIAN)
    counts = stub.ListMeasures(
        pb.ListMeasuresRequest(patient_id=patient, code=codes.BINGE_COUNT), metadata=dietitian
    )
    assert len(counts.fhir_json) == 1

    # She raises the range's low end to 98 %: the goal follows, read again from the history.
    revised = nutrition_order(patient, target=(58.0, 98.0, 108.0))
    updated = stub.UpdateNutritionOrder(
        pb.UpdateNutritionOrderRequest(
            id=order.id,
            expected_version=1,
            fhir_json=json.dumps({"resourceType": "NutritionOrder", **revised}),
            reason="weight restoration target raised at the week 4 review",
            request_id=str(uuid.uuid4()),
        ),
        metadata=dietitian,
    ).nutrition_order
    assert updated.version == 2
    latest = stub.GetGoal(pb.GetGoalRequest(id=ebw_goal.id), metadata=dietitian).goal
    assert json.loads(latest.fhir_json)["target"][0]["detailQuantity"]["value"] == 98
    assert _achievement(latest) == "improving"  # 95.5 % is below 98, up from 89
    versions = stub.ListResourceVersions(
        pb.ListResourceVersionsRequest(resource_type="NutritionOrder", id=order.id),
        metadata=dietitian,
    ).versions
    assert [v.version for v in versions] == [2, 1]
    listed_orders = stub.ListNutritionOrders(
        pb.ListNutritionOrdersRequest(patient_id=patient), metadata=_as(settings, PHYSICIAN)
    )
    assert [o.id for o in listed_orders.nutrition_orders] == [order.id]
    # The holistic view shows the dietitian's current plan.
    view = stub.GetPatientPlan(pb.GetPatientPlanRequest(patient_id=patient), metadata=dietitian)
    assert (view.nutrition_order.id, view.nutrition_order.version) == (order.id, 2)


def test_the_plan_is_the_dietitians_and_bad_ones_are_refused(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings, enrolled: str
) -> None:
    patient = enrolled
    order = _create_order(stub, settings, nutrition_order(patient, target=None))
    # The team reads it; only the dietitian (or the psychiatrist) writes; an outsider neither.
    for who in (PHYSICIAN, {"role": "therapist", "practitioner": "th-1"}):
        got = stub.GetNutritionOrder(
            pb.GetNutritionOrderRequest(id=order.id), metadata=_as(settings, who)
        )
        assert got.nutrition_order.id == order.id
    therapist = {"role": "therapist", "practitioner": "th-1"}
    assert (
        _refused(lambda: _create_order(stub, settings, nutrition_order(patient), therapist))
        == grpc.StatusCode.PERMISSION_DENIED
    )
    outsider = {"role": "dietitian", "practitioner": "diet-9"}
    assert (
        _refused(
            lambda: stub.GetNutritionOrder(
                pb.GetNutritionOrderRequest(id=order.id), metadata=_as(settings, outsider)
            )
        )
        == grpc.StatusCode.PERMISSION_DENIED
    )
    assert (
        _refused(lambda: _create_order(stub, settings, nutrition_order(patient), outsider))
        == grpc.StatusCode.PERMISSION_DENIED
    )
    # Incomplete plans and targets are refused, naming the element; nothing is written.
    no_schedule = nutrition_order(patient)
    no_schedule["oralDiet"]["schedule"] = []
    bad_range = nutrition_order(patient)
    bad_range["extension"] = [weight_target(58, 105, 95)]
    for body in (no_schedule, bad_range):
        with pytest.raises(grpc.RpcError) as caught:
            _create_order(stub, settings, body)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    listed = stub.ListNutritionOrders(
        pb.ListNutritionOrdersRequest(patient_id=patient), metadata=_as(settings, DIETITIAN)
    )
    assert [o.id for o in listed.nutrition_orders] == [order.id]
    # A masked update changes only the supplement; its retry changes nothing more; a therapist's
    # update is refused.
    fewer = {"resourceType": "NutritionOrder"}  # supplement masked and absent: removed

    def masked(who: dict[str, str], request_id: str) -> Any:
        return stub.UpdateNutritionOrder(
            pb.UpdateNutritionOrderRequest(
                id=order.id,
                expected_version=1,
                fhir_json=json.dumps(fewer),
                update_mask={"paths": ["supplement"]},
                reason="supplement stopped",
                request_id=request_id,
            ),
            metadata=_as(settings, who),
        ).nutrition_order

    assert _refused(lambda: masked(therapist, str(uuid.uuid4()))) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    request_id = str(uuid.uuid4())
    first, retried = masked(DIETITIAN, request_id), masked(DIETITIAN, request_id)
    assert (first.version, retried.version) == (2, 2)
    stored = json.loads(retried.fhir_json)
    assert "supplement" not in stored and stored["oralDiet"]["schedule"]
    assert (
        _refused(
            lambda: stub.UpdateNutritionOrder(
                pb.UpdateNutritionOrderRequest(
                    id=order.id,
                    expected_version=2,
                    fhir_json=json.dumps(fewer),
                    update_mask={"paths": ["patient"]},
                    request_id=str(uuid.uuid4()),
                ),
                metadata=_as(settings, DIETITIAN),
            )
        )
        == grpc.StatusCode.INVALID_ARGUMENT
    )
    # A meal without its meal, or above 100 %, and a fractional binge count are refused too.
    nameless = meal(patient, "lunch", 80, "2026-11-24T12:30:00Z")
    del nameless["component"]
    for body in (
        nameless,
        meal(patient, "lunch", 120, "2026-11-24T12:30:00Z"),
        behaviour(patient, codes.BINGE_COUNT, 1.5, "2026-11-24T21:00:00Z"),  # type: ignore[arg-type]
    ):
        assert (
            _refused(lambda b=body: _record(stub, settings, b)) == grpc.StatusCode.INVALID_ARGUMENT
        )


def _crisis(notes: nt_grpc.NotesServiceStub, settings: Settings, patient: str) -> list[Any]:
    thread = notes.ListThread(
        nt.ListThreadRequest(patient_id=patient), metadata=_as(settings, DIETITIAN)
    ).messages
    return [m for m in thread if m.category == "crisis"]


def _recipients(message: Any) -> set[str]:
    return {r["reference"] for r in json.loads(message.fhir_json)["recipient"]}


def test_an_instability_sign_reaches_the_dietitians_thread(
    stub: pb_grpc.CarePlanServiceStub,
    notes: nt_grpc.NotesServiceStub,
    settings: Settings,
    patient: str,
) -> None:
    # The physician's monitoring: a heart rate of 44 (bradycardia).
    recorded = _record(stub, settings, quantity(patient, "8867-4", 44, "/min"))
    assert list(recorded.crisis_reasons) == ["Heart rate 44 /min (< 50: bradycardia)"]
    (alert,) = harness.eventually(lambda: _crisis(notes, settings, patient) or None, timeout=20)
    assert "MEDICAL ALERT: Heart rate 44 /min" in alert.text
    assert "Dietitian: review the meal plan" in alert.text
    assert {"Practitioner/diet-1", "Practitioner/doc-1"} <= _recipients(alert)
    # A weight at 72 % of the expected body weight the dietitian set (58 kg): below 75 %.
    _create_order(stub, settings, nutrition_order(patient))
    request_id = str(uuid.uuid4())
    low = _record(
        stub, settings, weight(patient, 41.8, "2026-11-27T08:00:00Z"), PHYSICIAN, request_id
    )
    assert list(low.crisis_reasons) == [
        "Percent of expected body weight 72.1 % (< 75: severe malnutrition, medical instability)"
    ]
    # A retry answers with what the first attempt found, and writes nothing more.
    again = _record(
        stub, settings, weight(patient, 41.8, "2026-11-27T08:00:00Z"), PHYSICIAN, request_id
    )
    assert (again.observation_id, list(again.crisis_reasons)) == (
        low.observation_id,
        list(low.crisis_reasons),
    )
    derived = stub.ListMeasures(
        pb.ListMeasuresRequest(patient_id=patient, code=codes.PERCENT_EBW),
        metadata=_as(settings, DIETITIAN),
    )
    assert len(derived.fhir_json) == 1
    # Standing up raises the pulse by 28 /min: an orthostatic sign, to both of them too.
    standing = quantity(patient, codes.ORTHOSTATIC_HR_CHANGE, 28, "/min", program=True)
    assert "orthostatic pulse rise" in _record(stub, settings, standing).crisis_reasons[0]
    second = harness.eventually(
        lambda: (
            [m for m in _crisis(notes, settings, patient) if "expected body weight" in m.text]
            or None
        ),
        timeout=20,
    )
    assert {"Practitioner/diet-1", "Practitioner/doc-1"} <= _recipients(second[0])
