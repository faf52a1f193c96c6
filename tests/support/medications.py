"""Medication resources as a prescriber records them (issue 12, part 1)."""

from __future__ import annotations

from typing import Any

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def dosage(dose: float, text: str) -> dict[str, Any]:
    """Once daily by mouth, the dose in mg (UCUM)."""
    return {
        "text": text,
        "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
        "route": {"text": "oral"},
        "doseAndRate": [
            {
                "doseQuantity": {
                    "value": dose,
                    "unit": "mg",
                    "system": "http://unitsofmeasure.org",
                    "code": "mg",
                }
            }
        ],
    }


def medication_statement(
    patient_id: str, rxcui: str = "312940", display: str = "sertraline 50 MG Oral Tablet"
) -> dict[str, Any]:
    return {
        "resourceType": "MedicationStatement",
        "status": "active",
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": rxcui, "display": display}]
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectivePeriod": {"start": "2026-11-20"},
        "dosage": [dosage(50, "50 mg by mouth once daily")],
    }


def medication_request(
    patient_id: str, rxcui: str = "312940", display: str = "sertraline 50 MG Oral Tablet"
) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": rxcui, "display": display}]
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "authoredOn": "2026-11-27",
        "dosageInstruction": [dosage(50, "50 mg by mouth once daily")],
    }
