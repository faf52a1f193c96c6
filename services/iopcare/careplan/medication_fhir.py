"""MedicationStatement and MedicationRequest as the medication rules read them, and the statements
reconciliation writes (issue 12, part 1). Pure: JSON in, JSON or domain values out."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from iopcare.careplan.domain.medications import PART2_LABEL, RXNORM, Medication, is_part2
from iopcare.kit import fhir, labels, privacy

TYPES = ("MedicationStatement", "MedicationRequest")
#: MedicationRequest statuses as the list reads them (MedicationStatement's own codes).
REQUEST_STATUS = {
    "active": "active",
    "on-hold": "on-hold",
    "cancelled": "stopped",
    "completed": "completed",
    "entered-in-error": "entered-in-error",
    "stopped": "stopped",
    "draft": "intended",
    "unknown": "unknown",
}


def _day(value: Any) -> date | None:
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _text(concept: Any) -> str | None:
    if not isinstance(concept, dict):
        return None
    codings = [c for c in concept.get("coding", []) if isinstance(c, dict)]
    for coding in codings:
        if coding.get("display") or coding.get("code"):
            return str(coding.get("display") or coding.get("code"))
    text = concept.get("text")
    return str(text) if text else None


def dosages(resource: dict[str, Any]) -> list[dict[str, Any]]:
    key = "dosage" if resource.get("resourceType") == "MedicationStatement" else "dosageInstruction"
    return [d for d in resource.get(key, []) if isinstance(d, dict)]


def _dose(dosage: dict[str, Any]) -> str | None:
    for rate in dosage.get("doseAndRate", []):
        quantity = rate.get("doseQuantity") if isinstance(rate, dict) else None
        if isinstance(quantity, dict) and quantity.get("value") is not None:
            unit = str(quantity.get("code") or quantity.get("unit") or "").strip()
            value = quantity["value"]
            amount = f"{value:g}" if isinstance(value, (int, float)) else str(value)
            return f"{amount} {unit}".strip()
    return None


def _frequency(dosage: dict[str, Any]) -> str | None:
    timing = dosage.get("timing")
    if isinstance(timing, dict):
        named = _text(timing.get("code"))
        if named:
            return named
        repeat = timing.get("repeat")
        if isinstance(repeat, dict) and repeat.get("frequency") and repeat.get("periodUnit"):
            return f"{repeat['frequency']} per {repeat.get('period', 1)} {repeat['periodUnit']}"
    text = dosage.get("text")
    return str(text) if text else None


def medication_of(resource: dict[str, Any]) -> Medication:
    """A MedicationStatement or MedicationRequest as the rules read it."""
    concept = resource.get("medicationCodeableConcept") or {}
    codings = [c for c in concept.get("coding", []) if isinstance(c, dict)]
    rxnorm = next(
        (str(c["code"]) for c in codings if c.get("system") == RXNORM and c.get("code")), None
    )
    display = next((str(c["display"]) for c in codings if c.get("display")), None)
    display = display or (str(concept["text"]) if concept.get("text") else None)
    dosage = (dosages(resource) or [{}])[0]
    status: Any
    if resource.get("resourceType") == "MedicationRequest":
        status = REQUEST_STATUS.get(str(resource.get("status")), str(resource.get("status")))
        bounds = dosage.get("timing", {}).get("repeat", {}).get("boundsPeriod", {})
        start = _day(bounds.get("start")) or _day(resource.get("authoredOn"))
        stop = _day(bounds.get("end"))
    else:
        status = resource.get("status")
        period = resource.get("effectivePeriod") or {}
        start = _day(period.get("start")) or _day(resource.get("effectiveDateTime"))
        stop = _day(period.get("end"))
    return Medication(
        rxnorm=rxnorm,
        display=display,
        dose=_dose(dosage),
        route=_text(dosage.get("route")),
        frequency=_frequency(dosage),
        start=start,
        stop=stop,
        status=str(status) if status is not None else None,
    )


def patient_of(resource: dict[str, Any]) -> str | None:
    subject = resource.get("subject")
    return fhir.reference_id(
        subject.get("reference") if isinstance(subject, dict) else None, "Patient"
    )


def with_part2_label(resource: dict[str, Any], medication: Medication) -> dict[str, Any]:
    """The resource carrying the program's Part 2 label if the medication is for opioid or
    alcohol use disorder and no SUD label is on it yet (labels only go up)."""
    present = labels.security_of(resource)
    codes = [str(label.get("code")) for label in present if label.get("code")]
    if not is_part2(medication) or privacy.is_part2(codes):
        return resource
    labelled: dict[str, Any] = json.loads(labels.with_labels(json.dumps(resource), [PART2_LABEL]))
    return labelled


def _medication_element(inbound: dict[str, Any]) -> dict[str, Any]:
    """The inbound medication's drug as the sender gave it: its coded concept, else its
    reference (a `medicationReference` item keeps naming its drug, never an empty concept)."""
    if inbound.get("medicationCodeableConcept"):
        return {"medicationCodeableConcept": inbound["medicationCodeableConcept"]}
    if inbound.get("medicationReference"):
        return {"medicationReference": inbound["medicationReference"]}
    return {"medicationCodeableConcept": {"text": "unknown medication"}}


def statement_from(
    inbound: dict[str, Any],
    patient_id: str,
    *,
    status: str,
    on: date,
    reason: str | None,
    by: str,
    plan_id: str,
) -> dict[str, Any]:
    """The MedicationStatement the list holds after a reconciliation decision on an inbound
    medication (a statement or a request of the sender): continued as it was (`active`, starting
    when it started, else `on`), or stopped `on` that day, with the reason and who decided."""
    statement: dict[str, Any] = {
        "resourceType": "MedicationStatement",
        "status": status,
        **_medication_element(inbound),
        "subject": {"reference": f"Patient/{patient_id}"},
        "dateAsserted": on.isoformat(),
        "note": [
            {
                "text": f"reconciled at intake (CarePlan/{plan_id}) by {by}: {status}"
                + (f"; {reason}" if reason else "")
            }
        ],
    }
    if by.startswith("Practitioner/"):
        # informationSource and authorReference name people, not devices.
        statement["informationSource"] = {"reference": by}
        statement["note"][0]["authorReference"] = {"reference": by}
    if inbound.get("meta", {}).get("security"):
        statement["meta"] = {"security": inbound["meta"]["security"]}
    taken = dosages(inbound)
    if taken:
        statement["dosage"] = taken
    medication = medication_of(inbound)
    start = medication.start or on
    period: dict[str, str] = {"start": start.isoformat()}
    if status == "stopped":
        period["end"] = max(on, start).isoformat()
    statement["effectivePeriod"] = period
    if reason:
        statement["statusReason"] = [{"text": reason[:1000]}]
    return statement
