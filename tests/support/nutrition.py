"""The dietitian's records as a program writes them (issue 13, part 2): a nutrition plan
(NutritionOrder) with its weight target, supported meals, behaviour counts and goals."""

from __future__ import annotations

from typing import Any

from iopcare.careplan import codes

CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
UCUM = "http://unitsofmeasure.org"


def _quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def weight_target(expected_kg: float, low: float, high: float) -> dict[str, Any]:
    return {
        "url": codes.WEIGHT_TARGET_EXTENSION,
        "extension": [
            {"url": "expected", "valueQuantity": _quantity(expected_kg, "kg")},
            {"url": "low", "valueDecimal": low},
            {"url": "high", "valueDecimal": high},
        ],
    }


def _meal(when: str | None, text: str, time_of_day: str | None = None) -> dict[str, Any]:
    repeat: dict[str, Any] = {"when": [when]} if when else {"timeOfDay": [time_of_day]}
    return {"code": {"text": text}, "repeat": repeat}


def nutrition_order(
    patient_id: str,
    *,
    target: tuple[float, float, float] | None = (58.0, 95.0, 105.0),
    status: str = "active",
) -> dict[str, Any]:
    """Three meals and three snacks with exchanges, an evening supplement, restrictions, and
    (by default) an expected body weight of 58 kg with a target range of 95-105 %."""
    order: dict[str, Any] = {
        "resourceType": "NutritionOrder",
        "status": status,
        "intent": "plan",
        "patient": {"reference": f"Patient/{patient_id}"},
        "dateTime": "2026-11-27T10:00:00Z",
        "foodPreferenceModifier": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/diet",
                        "code": "vegetarian",
                        "display": "Vegetarian",
                    }
                ]
            }
        ],
        "excludeFoodModifier": [
            {"text": "Diet and sugar-free substitutes (the meal plan uses regular foods)"}
        ],
        "oralDiet": {
            "type": [{"text": "Structured meal plan: three meals and three snacks"}],
            "schedule": [
                _meal("CM", "breakfast"),
                _meal(None, "morning snack", "10:30:00"),
                _meal("CD", "lunch"),
                _meal(None, "afternoon snack", "15:30:00"),
                _meal("CV", "dinner"),
                _meal(None, "evening snack", "20:30:00"),
            ],
            "nutrient": [
                {"modifier": {"text": "Starch exchanges"}, "amount": _quantity(8, "{exchange}")},
                {"modifier": {"text": "Protein exchanges"}, "amount": _quantity(7, "{exchange}")},
                {"modifier": {"text": "Fat exchanges"}, "amount": _quantity(6, "{exchange}")},
            ],
            "texture": [{"modifier": {"text": "Regular texture"}}],
            "instruction": "Supported meals at the program on group days; plate by the plan.",
        },
        "supplement": [
            {
                "type": {"text": "Oral nutrition supplement, 1.5 kcal/mL"},
                "schedule": [{"repeat": {"when": ["HS"]}}],
                "quantity": _quantity(237, "mL"),
            }
        ],
    }
    if target is not None:
        order["extension"] = [weight_target(*target)]
    return order


def _observation(
    patient_id: str, code: str, value: float, unit: str, when: str, category: str
) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY, "code": category}]}],
        "code": {"coding": [{"system": codes.MEASURE_SYSTEM, "code": code}], "text": code},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": when,
        "valueQuantity": _quantity(value, unit),
    }


def meal(patient_id: str, which: str, percent: float, when: str) -> dict[str, Any]:
    """A supported meal's completion (percent), naming the meal."""
    body = _observation(patient_id, codes.MEAL_COMPLETION, percent, "%", when, "survey")
    body["component"] = [
        {
            "code": {"coding": [{"system": codes.MEASURE_SYSTEM, "code": codes.MEAL_COMPONENT}]},
            "valueCodeableConcept": {"coding": [{"system": codes.MEAL_SYSTEM, "code": which}]},
        }
    ]
    return body


def behaviour(patient_id: str, code: str, count: int, when: str) -> dict[str, Any]:
    """The day's count of a behaviour (binges, purges, compensatory exercise)."""
    return _observation(patient_id, code, count, "/d", when, "survey")


def weight(patient_id: str, kg: float, when: str) -> dict[str, Any]:
    body = _observation(patient_id, "29463-7", kg, "kg", when, "vital-signs")
    body["code"] = {
        "coding": [{"system": codes.LOINC, "code": "29463-7", "display": "Body weight"}],
        "text": "Body weight",
    }
    return body


def goal(patient_id: str, measure: str, comparator: str, value: float | None) -> dict[str, Any]:
    """A dietitian's goal on a program measure; None: the number is the dietitian's weight
    target (set from the NutritionOrder)."""
    target: dict[str, Any] = {
        "measure": {"coding": [{"system": codes.MEASURE_SYSTEM, "code": measure}]},
        "dueDate": "2027-03-01",
    }
    if value is not None:
        target["detailQuantity"] = {**_quantity(value, "%"), "comparator": comparator}
    return {
        "resourceType": "Goal",
        "lifecycleStatus": "active",
        "description": {"text": f"{measure} {comparator} {value if value is not None else ''}"},
        "subject": {"reference": f"Patient/{patient_id}"},
        "target": [target],
    }
