"""careplan's crisis event for a C-SSRS screen (issue 12, part 3): high risk is a crisis (the
urgent message and safety Flag to the psychiatrist and therapist, and the patient's safety plan
due for review); moderate risk is an alert to the same clinicians (message and Flag, acknowledged
and escalated like every alert) without a safety plan review."""

from __future__ import annotations

from collections.abc import Sequence

import iopcare.careplan.contract as careplan_contract
from iopcare.kit.db import UnitOfWork
from iopcare.kit.events import ReceivedEvent
from iopcare.notes import codes, store
from iopcare.notes.crisis import raise_crisis
from iopcare.notes.posting import members


def screening_text(alerts: Sequence[careplan_contract.Alert], measured: str) -> str:
    high = any(a.severity == "urgent" for a in alerts)
    reasons = "; ".join(a.reason for a in alerts)
    if high:
        return (
            f"SUICIDE RISK, HIGH: {reasons}, screened {measured}. Psychiatrist or therapist: "
            "assess the patient now (do not leave them alone if with you), and review the "
            "safety plan with them; acknowledge this alert when done."
        )
    return (
        f"SUICIDE RISK, MODERATE: {reasons}, screened {measured}. Psychiatrist or therapist: "
        "assess the patient today and consider safety precautions; acknowledge this alert when "
        "done."
    )


def on_screening_alert(
    uow: UnitOfWork, received: ReceivedEvent, alerts: Sequence[careplan_contract.Alert]
) -> None:
    if store.message_for_event(uow.conn, received.event.id) is not None:
        return  # alerted already (the inbox normally keeps this from happening)
    observation = received.resource
    patient_id = received.event.key
    measure = careplan_contract.measure_from_fhir(observation)
    measured = measure.effective.isoformat() if measure.effective else "just now"
    roles = tuple(dict.fromkeys(role for alert in alerts for role in alert.roles))
    raise_crisis(
        uow,
        patient_id,
        screening_text(alerts, measured),
        (f"Observation/{observation.id}",),
        sender=codes.SYSTEM_SENDER,
        source_event_id=received.event.id,
        traceparent=received.event.traceparent,
        extra_recipients=tuple(members(uow, patient_id, roles)),
        source=observation,
        safety_review=any(a.severity == "urgent" for a in alerts),
    )
