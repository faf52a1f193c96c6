"""The dietitian's part of the plan (issue 13, part 2): the individual nutrition plan (a FHIR R4
NutritionOrder), the weight target the dietitian sets per patient, percent of expected body
weight, and the supported-meal and behaviour measures. Pure rules, no I/O (docs/nutrition.md).

- A nutrition plan is an oralDiet with its meal and snack schedule (each a Timing naming when:
  `repeat.when` such as CM breakfast, CD lunch, CV dinner, or `repeat.timeOfDay`), servings or
  exchanges per food group (`oralDiet.nutrient`: a modifier and an amount) or a texture,
  supplements (a type or product name and a quantity), and restrictions (`excludeFoodModifier`,
  `foodPreferenceModifier`, `allergyIntolerance`).
- The weight target is the dietitian's, per patient, never a program-wide number: the expected
  body weight (kg, the 100 % reference, e.g. from the patient's growth history or BMI-for-age) and
  the target range in percent of it (`WEIGHT_TARGET_EXTENSION` on the NutritionOrder).
- Percent of expected body weight (%EBW) is a weight divided by the expected body weight.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from iopcare.careplan import codes
from iopcare.kit.errors import FieldViolations

#: http://hl7.org/fhir/request-intent as NutritionOrder.intent takes it.
INTENTS = frozenset(
    {
        "proposal",
        "plan",
        "directive",
        "order",
        "original-order",
        "reflex-order",
        "filler-order",
        "instance-order",
        "option",
    }
)
#: The meals a supported-meal Observation names (`codes.MEAL_SYSTEM`).
MEALS = ("breakfast", "morning-snack", "lunch", "afternoon-snack", "dinner", "evening-snack")
#: Plausible bounds of the dietitian's target.
EXPECTED_KG = (10.0, 250.0)
TARGET_PERCENT = (50.0, 150.0)
#: The day's count of one behaviour: more than this is a typing error.
MAX_DAILY_COUNT = 50
#: Units of the dietitian's measures (UCUM).
PERCENT, PER_DAY = "%", "/d"
COUNTS = frozenset({codes.BINGE_COUNT, codes.PURGE_COUNT, codes.EXERCISE_COUNT})

Json = Mapping[str, Any]


@dataclass(frozen=True)
class WeightTarget:
    """The dietitian's individual target: the expected body weight (kg) and the target range in
    percent of it."""

    expected_kg: float
    low_percent: float
    high_percent: float

    @property
    def low_kg(self) -> float:
        return round(self.expected_kg * self.low_percent / 100, 1)

    @property
    def high_kg(self) -> float:
        return round(self.expected_kg * self.high_percent / 100, 1)


def percent_ebw(weight_kg: float, target: WeightTarget) -> float:
    """The weight as percent of the expected body weight, to one decimal."""
    return round(100.0 * weight_kg / target.expected_kg, 1)


def in_range(percent: float, target: WeightTarget) -> bool:
    return target.low_percent <= percent <= target.high_percent


def goal_detail(target: WeightTarget) -> dict[str, Any]:
    """What a goal on %EBW aims at once the dietitian sets the target: at or above the low end
    of the range (weight restoration; the range's top is the dietitian's to watch)."""
    return {
        "value": target.low_percent,
        "comparator": ">=",
        "unit": PERCENT,
        "system": "http://unitsofmeasure.org",
        "code": PERCENT,
    }


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _concept_given(concept: object) -> bool:
    c = _dict(concept)
    return bool(c.get("text")) or any(
        _dict(coding).get("code") for coding in _list(c.get("coding"))
    )


def _positive_quantity(
    quantity: object, at: str, what: str, problems: FieldViolations, *, required: bool
) -> None:
    q = _dict(quantity)
    if not q:
        if required:
            problems.add(at, f"{what}: a quantity (value and unit) is required")
        return
    value = q.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        problems.add(f"{at}.value", f"{what}: a number above 0")
    if not (q.get("code") or q.get("unit")):
        problems.add(f"{at}.unit", f"{what}: a unit (UCUM code, e.g. g, kcal, {{serving}})")


def weight_target(order: Json) -> WeightTarget | None:
    """The dietitian's target on a NutritionOrder (None when it has none); call `check_order`
    first, which refuses an incomplete one."""
    for extension in _list(order.get("extension")):
        if _dict(extension).get("url") != codes.WEIGHT_TARGET_EXTENSION:
            continue
        parts = {_dict(p).get("url"): _dict(p) for p in _list(_dict(extension).get("extension"))}
        expected = _dict(parts.get("expected", {}).get("valueQuantity")).get("value")
        low = parts.get("low", {}).get("valueDecimal")
        high = parts.get("high", {}).get("valueDecimal")
        if all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in (expected, low, high)
        ):
            return WeightTarget(float(expected), float(low), float(high))  # type: ignore[arg-type]
        return None
    return None


def _check_target(order: Json, prefix: str, problems: FieldViolations) -> None:
    for index, extension in enumerate(_list(order.get("extension"))):
        if _dict(extension).get("url") != codes.WEIGHT_TARGET_EXTENSION:
            continue
        at = f"{prefix}extension[{index}]"
        parts = {_dict(p).get("url"): _dict(p) for p in _list(_dict(extension).get("extension"))}
        expected = _dict(parts.get("expected", {}).get("valueQuantity"))
        value = expected.get("value")
        if expected.get("code", expected.get("unit")) != "kg":
            problems.add(f"{at}.expected", "the expected body weight as valueQuantity in kg")
        elif isinstance(value, bool) or not isinstance(value, int | float):
            problems.add(f"{at}.expected", "the expected body weight needs a value")
        elif not EXPECTED_KG[0] <= value <= EXPECTED_KG[1]:
            problems.add(
                f"{at}.expected",
                f"an expected body weight between {EXPECTED_KG[0]:g} and {EXPECTED_KG[1]:g} kg",
            )
        bounds: list[float] = []
        for name in ("low", "high"):
            number = parts.get(name, {}).get("valueDecimal")
            if isinstance(number, bool) or not isinstance(number, int | float):
                problems.add(f"{at}.{name}", "valueDecimal, percent of expected body weight")
            elif not TARGET_PERCENT[0] <= number <= TARGET_PERCENT[1]:
                problems.add(
                    f"{at}.{name}",
                    f"between {TARGET_PERCENT[0]:g} and {TARGET_PERCENT[1]:g} percent",
                )
            else:
                bounds.append(float(number))
        if len(bounds) == 2 and bounds[0] >= bounds[1]:
            problems.add(f"{at}.high", "the range's high end must be above its low end")


def check_order(
    order: Json,
    prefix: str = "fhir_json.NutritionOrder.",
    *,
    creating: bool = True,
) -> str | None:
    """The patient a NutritionOrder is for, or InvalidArgument naming every problem."""
    problems = FieldViolations()
    reference = _dict(order.get("patient")).get("reference")
    patient_id = (
        reference.removeprefix("Patient/")
        if isinstance(reference, str) and reference.startswith("Patient/")
        else None
    )
    if not patient_id or "/" in patient_id:
        problems.add(f"{prefix}patient", "must reference a Patient (Patient/{id})")
    statuses = codes.NUTRITION_ORDER_CREATABLE if creating else codes.NUTRITION_ORDER_STATUSES
    if order.get("status") not in statuses:
        problems.add(f"{prefix}status", f"one of {', '.join(sorted(statuses))}")
    if order.get("intent") not in INTENTS:
        problems.add(f"{prefix}intent", "a request intent, e.g. plan or order")
    if not order.get("dateTime"):
        problems.add(f"{prefix}dateTime", "when the plan was written (dateTime) is required")
    diet = _dict(order.get("oralDiet"))
    if not diet:
        problems.add(f"{prefix}oralDiet", "a meal plan (oralDiet) with its schedule is required")
    else:
        schedules = _list(diet.get("schedule"))
        if not schedules:
            problems.add(f"{prefix}oralDiet.schedule", "the meals and snacks (at least one Timing)")
        for index, timing in enumerate(schedules):
            repeat = _dict(_dict(timing).get("repeat"))
            if not (repeat.get("when") or repeat.get("timeOfDay")):
                problems.add(
                    f"{prefix}oralDiet.schedule[{index}].repeat",
                    "when the meal or snack is (when: CM, CD, CV ... or timeOfDay)",
                )
        for index, nutrient in enumerate(_list(diet.get("nutrient"))):
            at = f"{prefix}oralDiet.nutrient[{index}]"
            if not _concept_given(_dict(nutrient).get("modifier")):
                problems.add(f"{at}.modifier", "the food group or nutrient (coding or text)")
            _positive_quantity(
                _dict(nutrient).get("amount"), f"{at}.amount", "servings", problems, required=True
            )
        for index, texture in enumerate(_list(diet.get("texture"))):
            t = _dict(texture)
            if not (_concept_given(t.get("modifier")) or _concept_given(t.get("foodType"))):
                problems.add(
                    f"{prefix}oralDiet.texture[{index}]", "a texture modifier or food type"
                )
    for index, supplement in enumerate(_list(order.get("supplement"))):
        at = f"{prefix}supplement[{index}]"
        s = _dict(supplement)
        if not (_concept_given(s.get("type")) or s.get("productName")):
            problems.add(at, "a supplement names its type or product")
        _positive_quantity(s.get("quantity"), f"{at}.quantity", "amount", problems, required=False)
    for name in ("excludeFoodModifier", "foodPreferenceModifier"):
        for index, concept in enumerate(_list(order.get(name))):
            if not _concept_given(concept):
                problems.add(f"{prefix}{name}[{index}]", "a coding or text")
    _check_target(order, prefix, problems)
    problems.raise_if_any("the NutritionOrder cannot be stored")
    return patient_id


def meal_of(observation: Json) -> str | None:
    """The meal a supported-meal Observation is about (its `meal` component's code)."""
    for component in _list(observation.get("component")):
        codings = _list(_dict(_dict(component).get("code")).get("coding"))
        if not any(_dict(c).get("code") == codes.MEAL_COMPONENT for c in codings):
            continue
        for coding in _list(_dict(_dict(component).get("valueCodeableConcept")).get("coding")):
            if _dict(coding).get("system") == codes.MEAL_SYSTEM:
                return str(_dict(coding).get("code"))
    return None


def check_measure(
    code: str | None,
    value: float | None,
    unit: str | None,
    meal: str | None,
    prefix: str = "fhir_json.Observation.",
) -> None:
    """The dietitian's measures: a meal's completion is 0-100 % and names its meal; a behaviour
    count is a whole number of episodes in the day (/d); %EBW is in percent. Other codes pass."""
    if code not in codes.NUTRITION_MEASURES:
        return
    problems = FieldViolations()
    at = f"{prefix}valueQuantity"
    if code == codes.MEAL_COMPLETION:
        if unit != PERCENT:
            problems.add(f"{at}.code", "a meal's completion is in percent (%)")
        elif value is None or not 0 <= value <= 100:
            problems.add(f"{at}.value", "a meal's completion is between 0 and 100 %")
        if meal not in MEALS:
            problems.add(
                f"{prefix}component",
                f"the meal: a component `meal` with a {codes.MEAL_SYSTEM} code, one of "
                f"{', '.join(MEALS)}",
            )
    elif code in COUNTS:
        if unit != PER_DAY:
            problems.add(f"{at}.code", "episodes in the day measured (/d)")
        elif value is None or value != int(value) or not 0 <= value <= MAX_DAILY_COUNT:
            problems.add(f"{at}.value", f"a whole number of episodes, 0 to {MAX_DAILY_COUNT}")
    problems.raise_if_any("the measure cannot be recorded")


def mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 1) if values else None
