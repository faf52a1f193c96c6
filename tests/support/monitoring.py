"""Monitoring Observations as a clinic records them (issue 12): vital signs, labs, withdrawal
scales and urine drug screens."""

from __future__ import annotations

from typing import Any

from iopcare.careplan import codes
from iopcare.careplan.domain import monitoring

CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


def _base(
    patient_id: str, code: str, *, program: bool = False, when: str = "2026-11-27T09:00:00Z"
) -> dict[str, Any]:
    spec = monitoring.CATALOG[code]
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY, "code": spec.category}]}],
        "code": {
            "coding": [
                {
                    "system": codes.MEASURE_SYSTEM if program else codes.LOINC,
                    "code": code,
                    "display": spec.display,
                }
            ],
            "text": spec.display,
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": when,
    }


def _quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}


def quantity(
    patient_id: str, code: str, value: float, unit: str, *, program: bool = False
) -> dict[str, Any]:
    return {**_base(patient_id, code, program=program), "valueQuantity": _quantity(value, unit)}


def lithium(patient_id: str, value: float, unit: str = "mmol/L") -> dict[str, Any]:
    return quantity(patient_id, monitoring.LITHIUM, value, unit)


def cows(patient_id: str, total: float) -> dict[str, Any]:
    return quantity(patient_id, codes.COWS_TOTAL, total, "{score}", program=True)


def blood_pressure(patient_id: str, systolic: float, diastolic: float | None) -> dict[str, Any]:
    components = [(monitoring.SYSTOLIC, systolic), (monitoring.DIASTOLIC, diastolic)]
    return {
        **_base(patient_id, monitoring.BP_PANEL),
        "component": [
            {
                "code": {
                    "coding": [
                        {
                            "system": codes.LOINC,
                            "code": code,
                            "display": monitoring.CATALOG[code].display,
                        }
                    ]
                },
                "valueQuantity": _quantity(value, "mm[Hg]"),
            }
            for code, value in components
            if value is not None
        ],
    }


def urine_screen(patient_id: str, code: str, *, positive: bool) -> dict[str, Any]:
    result = monitoring.POSITIVE if positive else monitoring.NEGATIVE
    return {
        **_base(patient_id, code),
        "valueCodeableConcept": {
            "coding": [
                {
                    "system": codes.SNOMED,
                    "code": result,
                    "display": "Positive" if positive else "Negative",
                }
            ]
        },
    }
