"""The dietitian's rules (careplan/domain/nutrition.py, issue 13 part 2): what a nutrition plan
needs, the individual weight target and %EBW, the supported-meal and behaviour measures, and the
instability signs that alert the dietitian (careplan/domain/monitoring.py)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from iopcare.careplan import codes
from iopcare.careplan.domain import monitoring, nutrition
from iopcare.careplan.domain.measures import Target, achievement
from iopcare.careplan.domain.templates import check_template, draft_plan
from iopcare.careplan.template_files import SHIPPED, load_template
from iopcare.kit.errors import InvalidArgument
from tests.support.nutrition import nutrition_order, weight_target


def _fields(order: dict[str, Any], *, creating: bool = True) -> set[str]:
    with pytest.raises(InvalidArgument) as caught:
        nutrition.check_order(order, creating=creating)
    return {v.field for v in caught.value.violations}


def test_a_full_plan_passes_and_names_its_patient_and_target() -> None:
    order = nutrition_order("p1")
    assert nutrition.check_order(order) == "p1"
    target = nutrition.weight_target(order)
    assert target == nutrition.WeightTarget(58.0, 95.0, 105.0)
    assert target is not None and (target.low_kg, target.high_kg) == (55.1, 60.9)
    assert nutrition.weight_target(nutrition_order("p1", target=None)) is None


def test_a_plan_needs_a_patient_status_intent_date_and_a_meal_schedule() -> None:
    order = nutrition_order("p1")
    order["patient"] = {"reference": "Group/g1"}
    order["status"] = "completed"
    order["intent"] = "wish"
    del order["dateTime"]
    order["oralDiet"]["schedule"] = [{"code": {"text": "lunch"}, "repeat": {}}]
    p = "fhir_json.NutritionOrder."
    assert _fields(order) == {
        f"{p}patient",
        f"{p}status",
        f"{p}intent",
        f"{p}dateTime",
        f"{p}oralDiet.schedule[0].repeat",
    }
    # A revision may close the plan; a new one starts draft or active.
    order = nutrition_order("p1", status="completed")
    assert nutrition.check_order(order, creating=False) == "p1"
    del order["oralDiet"]
    assert _fields(order, creating=False) == {f"{p}oralDiet"}


def test_servings_supplements_textures_and_restrictions_are_checked() -> None:
    order = nutrition_order("p1")
    diet = order["oralDiet"]
    diet["nutrient"][0]["amount"]["value"] = 0
    diet["nutrient"][1]["modifier"] = {}
    del diet["nutrient"][2]["amount"]
    diet["texture"] = [{}]
    order["supplement"] = [{"quantity": {"value": -1, "unit": "mL"}}]
    order["excludeFoodModifier"] = [{"coding": []}]
    p = "fhir_json.NutritionOrder."
    assert _fields(order) == {
        f"{p}oralDiet.nutrient[0].amount.value",
        f"{p}oralDiet.nutrient[1].modifier",
        f"{p}oralDiet.nutrient[2].amount",
        f"{p}oralDiet.texture[0]",
        f"{p}supplement[0]",
        f"{p}supplement[0].quantity.value",
        f"{p}excludeFoodModifier[0]",
    }


@pytest.mark.parametrize(
    ("extension", "wrong"),
    [
        (weight_target(58, 105, 95), {"high"}),
        (weight_target(5, 95, 105), {"expected"}),
        (weight_target(58, 30, 105), {"low"}),
        ({"url": codes.WEIGHT_TARGET_EXTENSION, "extension": []}, {"expected", "low", "high"}),
    ],
)
def test_a_weight_target_needs_a_plausible_expected_weight_and_an_ordered_range(
    extension: dict[str, Any], wrong: set[str]
) -> None:
    order = nutrition_order("p1")
    order["extension"] = [extension]
    assert _fields(order) == {f"fhir_json.NutritionOrder.extension[0].{w}" for w in wrong}


def test_percent_of_expected_body_weight_and_the_goal_it_sets() -> None:
    target = nutrition.WeightTarget(58.0, 95.0, 105.0)
    assert nutrition.percent_ebw(49.3, target) == 85.0
    assert nutrition.percent_ebw(41.8, target) == 72.1
    assert nutrition.in_range(nutrition.percent_ebw(57.0, target), target)
    assert not nutrition.in_range(nutrition.percent_ebw(62.0, target), target)
    detail = nutrition.goal_detail(target)
    assert (detail["value"], detail["comparator"], detail["code"]) == (95.0, ">=", "%")
    # The %EBW goal moves like any measured goal: in progress, improving, achieved.
    goal = Target(codes.PERCENT_EBW, ">=", 95.0)
    assert achievement(goal, [85.0]) == "in-progress"
    assert achievement(goal, [85.0, 89.0]) == "improving"
    assert achievement(goal, [85.0, 89.0, 95.5]) == "achieved"
    # Without the dietitian's number, nothing moves it.
    assert achievement(Target(codes.PERCENT_EBW, None, None), [85.0]) is None


def _meal(which: str | None) -> dict[str, Any]:
    component = {"code": {"coding": [{"system": codes.MEASURE_SYSTEM, "code": "meal"}]}}
    if which is not None:
        component["valueCodeableConcept"] = {
            "coding": [{"system": codes.MEAL_SYSTEM, "code": which}]
        }
    return {"component": [component]}


def test_supported_meals_and_behaviour_counts() -> None:
    assert nutrition.meal_of(_meal("dinner")) == "dinner"
    assert nutrition.meal_of(_meal(None)) is None
    assert nutrition.meal_of({}) is None
    nutrition.check_measure(codes.MEAL_COMPLETION, 75, "%", "dinner")
    nutrition.check_measure(codes.PURGE_COUNT, 2, "/d", None)
    nutrition.check_measure(codes.PHQ9_TOTAL, 99, None, None)  # not the dietitian's
    for code, value, unit, meal in (
        (codes.MEAL_COMPLETION, 120, "%", "lunch"),
        (codes.MEAL_COMPLETION, 50, "{score}", "lunch"),
        (codes.MEAL_COMPLETION, 50, "%", "brunch"),
        (codes.BINGE_COUNT, 1.5, "/d", None),
        (codes.EXERCISE_COUNT, -1, "/d", None),
        (codes.EXERCISE_COUNT, 1, "/wk", None),
    ):
        with pytest.raises(InvalidArgument):
            nutrition.check_measure(code, value, unit, meal)
    assert nutrition.mean([50, 75, 100]) == 75.0 and nutrition.mean([]) is None


def _reading(code: str, value: float, unit: str) -> monitoring.Reading | None:
    return monitoring.read(code, ("exam",), monitoring.Part(code, value, unit), ())


@pytest.mark.parametrize(
    ("code", "value", "unit", "reason"),
    [
        (
            monitoring.BMI,
            14.2,
            "kg/m2",
            "Body mass index (BMI) 14.2 kg/m2 (< 15: severe underweight, medical instability)",
        ),
        (
            codes.PERCENT_EBW,
            72.1,
            "%",
            "Percent of expected body weight 72.1 % (< 75: severe malnutrition, medical "
            "instability)",
        ),
        (
            codes.ORTHOSTATIC_HR_CHANGE,
            28,
            "/min",
            "Orthostatic heart rate change (standing minus lying) 28 /min (> 20: orthostatic "
            "pulse rise, instability)",
        ),
        (
            codes.ORTHOSTATIC_SYSTOLIC_CHANGE,
            -24,
            "mm[Hg]",
            "Orthostatic systolic blood pressure change (standing minus lying) -24 mm[Hg] "
            "(< -20: orthostatic hypotension, instability)",
        ),
    ],
)
def test_instability_signs_alert_the_physician_and_the_dietitian(
    code: str, value: float, unit: str, reason: str
) -> None:
    # BMI is a vital sign: read it with its category.
    categories = ("vital-signs",) if code == monitoring.BMI else ("exam",)
    reading = monitoring.read(code, categories, monitoring.Part(code, value, unit), ())
    (alert,) = monitoring.alerts(reading, monitoring.Thresholds())
    assert alert.reason == reason
    assert alert.roles == ("physician", "psychiatrist", "dietitian")


@pytest.mark.parametrize(
    ("code", "value", "unit"),
    [
        (codes.PERCENT_EBW, 75, "%"),
        (codes.ORTHOSTATIC_HR_CHANGE, 20, "/min"),
        (codes.ORTHOSTATIC_SYSTOLIC_CHANGE, -20, "mm[Hg]"),
        (codes.ORTHOSTATIC_SYSTOLIC_CHANGE, 15, "mm[Hg]"),
    ],
)
def test_at_the_limit_is_no_alert(code: str, value: float, unit: str) -> None:
    assert monitoring.alerts(_reading(code, value, unit), monitoring.Thresholds()) == []


def test_the_program_sets_the_instability_limits() -> None:
    strict = monitoring.Thresholds().with_overrides({"bmi_below": 16, "ebw_percent_below": 80})
    reading = monitoring.read(
        monitoring.BMI, ("vital-signs",), monitoring.Part(monitoring.BMI, 15.5, "kg/m2"), ()
    )
    assert len(monitoring.alerts(reading, strict)) == 1
    assert len(monitoring.alerts(_reading(codes.PERCENT_EBW, 78, "%"), strict)) == 1


def _ed_template(goal: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "ed",
        "title": "ED",
        "diagnosis_prefixes": ["F50"],
        "weeks": 12,
        "activities": [
            {
                "code": "61310001",
                "display": "Nutrition education",
                "description": "Nutrition counselling",
                "performer_role": "dietitian",
                "repeat": {"frequency": 1, "period": 1, "periodUnit": "wk"},
            }
        ],
        "goals": [goal],
    }


def test_a_template_goal_may_leave_its_number_to_the_dietitian() -> None:
    individual = {
        "description": "Weight in the dietitian's range",
        "system": "program",
        "measure": codes.PERCENT_EBW,
        "comparator": ">=",
        "unit": "%",
        "set_by": "dietitian",
    }
    check_template(_ed_template(individual), "ed.json")
    for wrong, field in (
        ({**individual, "value": 52}, "value"),
        ({**individual, "set_by": "therapist"}, "set_by"),
        ({**individual, "measure": codes.MEAL_COMPLETION}, "measure"),
    ):
        with pytest.raises(InvalidArgument) as caught:
            check_template(_ed_template(wrong), "ed.json")
        assert {v.field for v in caught.value.violations} == {f"ed.json.goals[0].{field}"}


def test_the_eating_disorder_template_has_no_fixed_weight_target() -> None:
    template = load_template(SHIPPED / "eating-disorder-iop.json")
    plan = draft_plan(template, "p1", "F50.00", None, date(2026, 12, 1))
    targets = {
        g["target"][0]["measure"]["coding"][0]["code"]: g["target"][0] for g in plan["contained"]
    }
    assert "29463-7" not in targets  # no program-wide body weight (was 52 kg for everyone)
    assert "detailQuantity" not in targets[codes.PERCENT_EBW]  # the dietitian sets it
    assert targets[codes.MEAL_COMPLETION]["detailQuantity"]["value"] == 90
    roles = {
        a["detail"]["performer"][0]["display"]
        for a in plan["activity"]
        if a["detail"].get("performer")
    }
    assert {"Dietitian (general)", "General physician"} <= roles
