"""The events notes consumes, and what each writes to the patient's team thread.

`HANDLERS` maps an event type to its handler; every handler runs in the consumer's unit of work
(the inbox row of the event commits with what it writes, so an event is handled once). To consume
another event, write a function `(uow, received) -> None` and add its event type to the table.
The care-team projection's handlers are the kit's (`kit.composition.team_projection_handlers`),
added by `app`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import iopcare.careplan.contract as careplan_contract
import iopcare.scheduling.contract as scheduling_contract
from iopcare.kit import fhir
from iopcare.kit.db import UnitOfWork
from iopcare.kit.events import ReceivedEvent
from iopcare.notes import codes, store
from iopcare.notes.crisis import raise_crisis
from iopcare.notes.domain.messages import (
    NewMessage,
    attendance_alert_text,
    checkin_crisis_text,
    crisis_text,
    no_show_text,
    plan_changed_text,
    plan_created_text,
    review_due_text,
    sessions_proposed_text,
)
from iopcare.notes.oncall import Coverage
from iopcare.notes.posting import append_message, derived_labels, members
from iopcare.notes.screening import on_screening_alert

Handler = Callable[[UnitOfWork, ReceivedEvent], None]


def system_message(
    uow: UnitOfWork,
    received: ReceivedEvent,
    patient_id: str,
    text: str,
    about: tuple[str, ...],
    recipients: tuple[str, ...] = (),
) -> None:
    """A system message written for an event, at most once per event."""
    if store.message_for_event(uow.conn, received.event.id) is not None:
        return
    append_message(
        uow,
        NewMessage(
            patient_id=patient_id,
            text=text,
            priority="routine",
            category="system",
            sender=codes.SYSTEM_SENDER,
            about=about,
            # Every system message is derived from the event's resource (a plan's title, a
            # session's name): it carries that resource's labels, all of them.
            security=derived_labels(received.resource),
            recipients=recipients,
        ),
        source_event_id=received.event.id,
        traceparent=received.event.traceparent,
    )


def on_care_plan_created(uow: UnitOfWork, received: ReceivedEvent) -> None:
    plan = received.resource
    patient_id = fhir.reference_id(plan.subject.reference, "Patient")
    if not patient_id:
        return
    text = plan_created_text(plan.title, len(plan.activity or []))
    system_message(uow, received, patient_id, text, (f"CarePlan/{plan.id}",))


def on_appointments_proposed(uow: UnitOfWork, received: ReceivedEvent) -> None:
    bundle = received.resource
    count = len(bundle.entry or [])
    if count == 0:
        return
    about = tuple(
        dict.fromkeys(
            ref.reference
            for entry in bundle.entry or []
            for ref in (entry.resource.supportingInformation or [])
            if ref.reference
        )
    )
    system_message(uow, received, received.event.key, sessions_proposed_text(count), about)


def on_review_due(uow: UnitOfWork, received: ReceivedEvent) -> None:
    plan = received.resource
    patient_id = fhir.reference_id(plan.subject.reference, "Patient")
    if not patient_id:
        return
    system_message(uow, received, patient_id, review_due_text(plan.title), (f"CarePlan/{plan.id}",))


def on_reconciliation_overdue(uow: UnitOfWork, received: ReceivedEvent) -> None:
    """careplan's team Task for inbound medications unreconciled past the deadline: its
    description (counts only) to the thread, about the plan (issue 12, part 1)."""
    task = received.resource
    patient_id = fhir.reference_id(task.for_fhir.reference if task.for_fhir else None, "Patient")
    if not patient_id:
        return
    about = (task.focus.reference,) if task.focus and task.focus.reference else ()
    text = f"Task: {task.description}" if task.description else "Task: reconcile medications."
    system_message(uow, received, patient_id, text, about)


def on_plan_changed(uow: UnitOfWork, received: ReceivedEvent) -> None:
    """A plan's revision (edited, activated, suspended, completed, ...) noted in the thread."""
    plan = received.resource
    patient_id = fhir.reference_id(plan.subject.reference, "Patient")
    if not patient_id:
        return
    change = received.event.type.removeprefix("iopcare.careplan.").removesuffix(".v1")
    version = plan.meta.versionId if plan.meta else None
    system_message(
        uow,
        received,
        patient_id,
        plan_changed_text(plan.title, change, version),
        (f"CarePlan/{plan.id}",),
    )


def on_appointment_updated(uow: UnitOfWork, received: ReceivedEvent) -> None:
    """A no-show noted in the thread. Other attendance changes are not the team's news.
    Tolerant of what scheduling sends: only `status` and the start are read."""
    appointment = received.resource
    if getattr(appointment, "status", None) != "noshow":
        return
    kinds = getattr(appointment, "serviceType", None) or []
    session = appointment.description or next(
        (k.text or (k.coding[0].display if k.coding else None) for k in kinds), None
    )
    start = appointment.start.isoformat() if appointment.start else None
    system_message(
        uow,
        received,
        received.event.key,
        no_show_text(session, start),
        (f"Appointment/{appointment.id}",),
    )


def on_attendance_alert(uow: UnitOfWork, received: ReceivedEvent) -> None:
    """scheduling's attendance alerts (intensity below minimum, dropout risk) in the thread.
    The payload is a Flag; only its `code.text` is read, so a richer payload still works."""
    resource = received.resource
    code = getattr(resource, "code", None)
    detail = getattr(code, "text", None) if code is not None else None
    kind = "intensity" if "intensity" in received.event.type else "dropout-risk"
    about = (f"{resource.get_resource_type()}/{resource.id}",) if resource.id else ()
    system_message(uow, received, received.event.key, attendance_alert_text(kind, detail), about)


def on_crisis(uow: UnitOfWork, received: ReceivedEvent, coverage: Coverage | None = None) -> None:
    """An urgent alert in the team thread to the patient's psychiatrist and therapist."""
    if store.message_for_event(uow.conn, received.event.id) is not None:
        return  # alerted already (the inbox normally keeps this from happening)
    observation = received.resource
    # careplan's own reading of its event (what the measure and its items scored).
    measure = careplan_contract.measure_from_fhir(observation)
    measured = measure.effective.isoformat() if measure.effective else "just now"
    text = crisis_text(observation.code.text or "PHQ-9", measure.value, measure.item9, measured)
    raise_crisis(
        uow,
        received.event.key,
        text,
        (f"Observation/{observation.id}",),
        sender=codes.SYSTEM_SENDER,
        source_event_id=received.event.id,
        traceparent=received.event.traceparent,
        source=observation,
        coverage=coverage,
    )


def on_careplan_alert(
    uow: UnitOfWork, received: ReceivedEvent, coverage: Coverage | None = None
) -> None:
    """careplan's crisis event. A `medical` alert (a vital sign, lab or withdrawal scale past a
    program threshold, docs/clinical-thresholds.md) is the urgent crisis message and Flag naming,
    besides the usual crisis recipients, the team members in the roles the alert names (the
    physician and the psychiatrist; the dietitian too for signs of medical instability in an
    eating disorder); any other is the PHQ-9 crisis it always was (`on_crisis`)."""
    observation = received.resource
    alerts = careplan_contract.alerts_from_fhir(observation)
    screens = [a for a in alerts if a.measure == careplan_contract.CSSRS_SCREEN_RISK]
    if screens:
        on_screening_alert(uow, received, screens)
        return
    medical = [a for a in alerts if a.kind == "medical"]
    if not medical:
        on_crisis(uow, received, coverage)
        return
    if store.message_for_event(uow.conn, received.event.id) is not None:
        return  # alerted already (the inbox normally keeps this from happening)
    patient_id = received.event.key
    roles = tuple(dict.fromkeys(role for alert in medical for role in alert.roles))
    measure = careplan_contract.measure_from_fhir(observation)
    measured = measure.effective.isoformat() if measure.effective else "just now"
    text = (
        f"MEDICAL ALERT: {'; '.join(a.reason for a in medical)}, measured {measured}. "
        "Physician: assess the patient today and decide on the level of care; acknowledge "
        "this alert when done."
    )
    if "dietitian" in roles:
        # A sign of medical instability in an eating disorder (docs/nutrition.md).
        text += " Dietitian: review the meal plan and refeeding with the physician."
    raise_crisis(
        uow,
        patient_id,
        text,
        (f"Observation/{observation.id}",),
        sender=codes.SYSTEM_SENDER,
        source_event_id=received.event.id,
        traceparent=received.event.traceparent,
        extra_recipients=tuple(members(uow, patient_id, roles)),
        source=observation,
        coverage=coverage,
        safety_review=False,
    )


def on_checkin_recorded(uow: UnitOfWork, received: ReceivedEvent, coverage: Coverage) -> None:
    """A patient's daily check-in (scheduling's QuestionnaireResponse): a yes to the safety item
    is a crisis (the urgent message and Flag, to the clinician on call out of hours). Other
    answers stay in the patient's record in scheduling; the thread is not told of each one."""
    response = received.resource
    if not scheduling_contract.checkin_self_harm(response):
        return
    if store.message_for_event(uow.conn, received.event.id) is not None:
        return  # alerted already (the inbox normally keeps this from happening)
    authored = getattr(response, "authored", None)
    raise_crisis(
        uow,
        received.event.key,
        checkin_crisis_text(authored.isoformat() if authored else "just now"),
        (f"QuestionnaireResponse/{response.id}",),
        sender=codes.SYSTEM_SENDER,
        source_event_id=received.event.id,
        traceparent=received.event.traceparent,
        source=response,
        coverage=coverage,
    )


def on_missed_checkin(uow: UnitOfWork, received: ReceivedEvent, coverage: Coverage) -> None:
    """scheduling's missed check-in (a Flag) in the team thread, addressed to the clinician on
    call when the program's rule says so (IOPCARE_ONCALL_MISSED_CHECKIN)."""
    resource = received.resource
    code = getattr(resource, "code", None)
    detail = getattr(code, "text", None) if code is not None else None
    on_call = coverage.for_missed_checkin(uow)
    system_message(
        uow,
        received,
        received.event.key,
        attendance_alert_text("missed-checkin", detail),
        (f"Flag/{resource.id}",) if resource.id else (),
        recipients=(on_call,) if on_call else (),
    )


def coverage_handlers(coverage: Coverage) -> dict[str, Handler]:
    """The handlers that route to the clinician on call, bound to the program's coverage (they
    replace the plain ones of `HANDLERS`)."""
    return {
        careplan_contract.EVENT_CRISIS: partial(on_careplan_alert, coverage=coverage),
        scheduling_contract.EVENT_CHECKIN_RECORDED: partial(on_checkin_recorded, coverage=coverage),
        scheduling_contract.EVENT_CHECKIN_MISSED: partial(on_missed_checkin, coverage=coverage),
    }


def on_authorization_alert(uow: UnitOfWork, received: ReceivedEvent) -> None:
    """careplan's utilization review task (an authorization running low, ending soon, used up
    or expired) in the team thread. The payload is a Task; only `description` and `focus` are
    read."""
    task = received.resource
    description = getattr(task, "description", None) or "an authorization needs review"
    focus = getattr(task, "focus", None)
    about = (focus.reference,) if focus is not None and focus.reference else ()
    system_message(
        uow, received, received.event.key, f"Utilization review task: {description}.", about
    )


#: scheduling's attendance alerts notes posts to the team thread.
ATTENDANCE_ALERTS = (
    scheduling_contract.EVENT_INTENSITY_BELOW_MINIMUM,
    scheduling_contract.EVENT_DROPOUT_RISK,
)

#: Event type -> handler, for every event notes consumes but the care-team projection's.
HANDLERS: dict[str, Handler] = {
    careplan_contract.EVENT_CREATED: on_care_plan_created,
    careplan_contract.EVENT_CRISIS: on_careplan_alert,
    careplan_contract.EVENT_REVIEW_DUE_NOW: on_review_due,
    careplan_contract.EVENT_RECONCILIATION_OVERDUE: on_reconciliation_overdue,
    careplan_contract.EVENT_AUTHORIZATION_ALERT: on_authorization_alert,
    scheduling_contract.EVENT_APPOINTMENTS_PROPOSED: on_appointments_proposed,
    scheduling_contract.EVENT_APPOINTMENT_UPDATED: on_appointment_updated,
    **{event: on_plan_changed for event in careplan_contract.EVENT_FOR_CHANGE.values()},
    **{event: on_attendance_alert for event in ATTENDANCE_ALERTS},
}
