"""Crisis alerts: raising one (an urgent message to the psychiatrist and therapist and a safety
Flag, from a clinician's crisis message or from careplan's crisis event), acknowledging it, and
re-escalating the ones nobody acknowledged; and a patient's flags."""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from iopcare.kit import audit
from iopcare.kit.auth import Principal
from iopcare.kit.db import UnitOfWork
from iopcare.kit.errors import FieldViolation, InvalidArgument, NotFound, must_exist
from iopcare.kit.versioned import Stored, revise
from iopcare.notes import codes, fhir_map, once, store
from iopcare.notes.domain.messages import (
    CRISIS_RECIPIENT_ROLES,
    ESCALATION_ROLES,
    NewMessage,
    acknowledged_text,
    escalation_text,
)
from iopcare.notes.domain.text import has_forbidden_characters
from iopcare.notes.oncall import Coverage, on_call_basis
from iopcare.notes.posting import append_message, derived_labels, members
from iopcare.notes.safety_plans import mark_review_due
from iopcare.notes.store import flags as flag_store
from iopcare.notes.usecase import UseCase, audited

log = logging.getLogger(__name__)

MAX_NOTE = 2000


def raise_crisis(
    uow: UnitOfWork,
    patient_id: str,
    text: str,
    about: tuple[str, ...],
    *,
    sender: str,
    message_id: str | None = None,
    source_event_id: str | None = None,
    traceparent: str | None = None,
    extra_recipients: tuple[str, ...] = (),
    message: NewMessage | None = None,
    source: Any = None,
    coverage: Coverage | None = None,
    safety_review: bool = True,
) -> str:
    """The urgent crisis message to the psychiatrist and therapist of the patient's team and
    a safety Flag tracked until acknowledged, in the caller's unit of work. `message`: the
    clinician's own crisis message (else a system message with `text`); `source`: the event
    resource it derives from (its labels carry over). `coverage`: outside program hours the
    clinician on call is sent it too (`oncall`). `safety_review`: the crisis makes the
    patient's safety plan due for review (not a medical alert or a moderate-risk screen)."""
    on_call = coverage.route(uow) if coverage is not None else None
    recipients = tuple(
        dict.fromkeys(
            [
                *members(uow, patient_id, CRISIS_RECIPIENT_ROLES),
                *extra_recipients,
                *([on_call] if on_call else []),
            ]
        )
    )
    if not recipients:
        # Still posted to the thread (everyone on the team sees it), but nobody is named:
        # operators must know the team projection is missing.
        log.error("crisis for a patient without a known psychiatrist or therapist")
    message = message or NewMessage(
        patient_id=patient_id,
        text=text,
        priority="urgent",
        category="crisis",
        sender=sender,
        about=about,
        security=derived_labels(source) if source is not None else (),
    )
    message_id = append_message(
        uow,
        replace(message, recipients=recipients),
        message_id=message_id,
        source_event_id=source_event_id,
        traceparent=traceparent,
    )
    now = datetime.now(UTC)
    flag_id = str(uuid.uuid4())
    target = about[0] if about else f"Communication/{message_id}"
    flag = Stored(
        flag_id,
        1,
        patient_id,
        "active",
        now,
        fhir_map.crisis_flag(flag_id, patient_id, text, target, now),
    )
    flag_store.flags.insert(uow.conn, flag, sender)
    flag_store.insert_alert(uow.conn, flag_id, patient_id, message_id, recipients, now)
    if coverage is not None and on_call:
        coverage.record(uow, flag_id, patient_id, on_call)
    if safety_review:
        mark_review_due(uow, patient_id, message.text, flag_id, now)
    store.JOURNAL.publish_version(
        uow, "Flag", flag, codes.EVENT_CRISIS_RAISED, parent_trace=traceparent
    )
    return message_id


class Crisis(UseCase):
    """The crisis use cases of the API and of the escalation task."""

    def acknowledge(
        self, principal: Principal, flag_id: str, note: str, request_id: str = ""
    ) -> Stored:
        """A clinician of the team acknowledges a crisis alert: recorded on the Flag and in the
        thread; acknowledging twice keeps the first acknowledgement. A repeat of a request
        (same `request_id`) returns the Flag without acknowledging again."""
        name = f"Flag/{flag_id}"
        asked = once.Asked(
            principal, "AcknowledgeCrisis", request_id, {"flag_id": flag_id, "note": note}
        )
        if once.earlier(self.db, asked) is None:
            with self.refusals(principal, audit.UPDATE, name):
                if len(note) > MAX_NOTE or has_forbidden_characters(note):
                    raise InvalidArgument(
                        "the acknowledgement note is invalid",
                        [FieldViolation("note", "at most 2,000 characters, no control characters")],
                    )
                once.change(
                    self.db,
                    asked,
                    flag_id,
                    lambda uow: self._acknowledge(uow, principal, flag_id, note),
                )
            self.notify_outbox()
        with self.db.read() as conn:
            # Never NotFound in fact: a crisis flag is never deleted.
            return must_exist(flag_store.flags.load(conn, flag_id), name)

    def _acknowledge(self, uow: UnitOfWork, principal: Principal, flag_id: str, note: str) -> None:
        name = f"Flag/{flag_id}"
        alert = flag_store.load_alert(uow.conn, flag_id)
        if alert is None:
            raise NotFound(f"{name} is not a crisis alert", resource=name)
        # The clinician on call the alert was routed to acknowledges it off the team too.
        basis = on_call_basis(uow, flag_id, alert.patient_id, principal) or self.access.basis(
            uow.conn, principal, alert.patient_id
        )
        if alert.acknowledged_at is None:

            def reviser(item: Stored, version: int, now: datetime) -> tuple[str, str, str]:
                data = json.loads(item.resource)
                resource = fhir_map.acknowledged_flag(data, principal.reference, now, version)
                return resource, item.status, "acknowledge"

            current = flag_store.flags.load(uow.conn, flag_id)
            assert current is not None
            _, flag, _ = revise(
                uow.conn,
                flag_store.flags,
                "Flag",
                flag_id,
                current.version,
                reviser,
                principal.reference,
                note or "acknowledged",
            )
            flag_store.mark_acknowledged(uow.conn, flag_id, principal.reference, flag.updated_at)
            append_message(
                uow,
                NewMessage(
                    patient_id=alert.patient_id,
                    text=acknowledged_text(principal.reference, note),
                    priority="urgent",
                    category="crisis",
                    sender=principal.reference,
                    about=(name,),
                ),
            )
            store.JOURNAL.publish_version(uow, "Flag", flag, codes.EVENT_CRISIS_ACKNOWLEDGED)
        audited(uow, principal, audit.UPDATE, name, alert.patient_id, f"acknowledge; {basis}")

    def escalate_overdue(self, now: datetime, after: timedelta) -> int:
        """Re-escalates crisis alerts nobody acknowledged within `after`: a stat message to the
        whole team. Each alert is re-escalated once; returns how many were."""
        escalated = 0
        with UnitOfWork(self.db) as uow:
            overdue = flag_store.overdue_alerts(uow.conn, now - after)
            # Claim every overdue alert first (oldest flag id first), each only if still
            # unacknowledged, and post afterwards. Why: an acknowledgement committing between the
            # read above and the claim would otherwise be escalated anyway (PostgreSQL re-checks
            # the WHERE clause of an UPDATE that waited for the row); and taking alert rows
            # before the thread lock is the order acknowledge takes them in, so the two
            # cannot deadlock.
            claimed = [
                alert
                for alert in overdue
                if flag_store.claim_for_escalation(uow.conn, alert.flag_id, now)
            ]
            for alert in claimed:
                team = sorted(members(uow, alert.patient_id, ESCALATION_ROLES, now.date()))
                append_message(
                    uow,
                    NewMessage(
                        patient_id=alert.patient_id,
                        text=escalation_text(int(after.total_seconds() // 60)),
                        priority="stat",
                        category="crisis",
                        sender=codes.SYSTEM_SENDER,
                        about=(f"Flag/{alert.flag_id}",),
                        recipients=tuple(team),
                    ),
                )
                escalated += 1
            uow.commit()
        if escalated:
            log.warning("re-escalated %d unacknowledged crisis alerts", escalated)
            self.notify_outbox()
        return escalated

    def flags_for_patient(
        self, principal: Principal, patient_id: str, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[Stored], str]:
        """A page of the patient's flags, oldest first, and the next page's token."""
        found, token = self.listed(
            principal,
            "Flag",
            patient_id,
            page_size,
            page_token,
            lambda conn, limit, after: flag_store.flags_page(conn, patient_id, limit, after),
            lambda row: (row[1], row[0].id),
        )
        return [flag for flag, _ in found], token
