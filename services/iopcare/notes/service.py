"""The notes service layer: posting to and reading a patient's team thread."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from iopcare.careplan.fhir_map import measure_from_fhir
from iopcare.kit import audit, fhir, paging, teams, topics
from iopcare.kit.auth import Principal
from iopcare.kit.db import Database, UnitOfWork
from iopcare.kit.errors import FieldViolation, InvalidArgument, NotFound
from iopcare.kit.events import Event, ReceivedEvent, append_to_outbox, child_traceparent
from iopcare.kit.requests import create_once
from iopcare.kit.versioned import Stored, revise
from iopcare.notes import codes, fhir_map, store
from iopcare.notes.domain.messages import (
    CRISIS_RECIPIENT_ROLES,
    NewMessage,
    check_message,
    crisis_text,
    plan_created_text,
    review_due_text,
    sessions_proposed_text,
)

log = logging.getLogger(__name__)


class Notes:
    def __init__(self, db: Database, *, notify_outbox: Callable[[], None] = lambda: None) -> None:
        self.db = db
        self.notify_outbox = notify_outbox
        self.access = teams.TeamAccess(store.care_team_member)

    def _store(
        self,
        uow: UnitOfWork,
        message: NewMessage,
        *,
        message_id: str | None = None,
        source_event_id: str | None = None,
        traceparent: str | None = None,
    ) -> str:
        """Stores a message with its event in the caller's unit of work; returns its id."""
        message_id = message_id or str(uuid.uuid4())
        sent_at = datetime.now(UTC)
        resource = fhir_map.communication(message_id, message, sent_at)
        store.insert_message(
            uow.conn,
            message_id=message_id,
            patient_id=message.patient_id,
            sender=message.sender,
            priority=message.priority,
            category=message.category,
            text=message.text,
            sent_at=sent_at,
            resource=resource,
            source_event_id=source_event_id,
        )
        append_to_outbox(
            uow.conn,
            store.outbox,
            topics.NOTES,
            Event(
                type=codes.EVENT_MESSAGE_POSTED,
                source=codes.SOURCE,
                subject=f"Communication/{message_id}/_history/1",
                key=message.patient_id,
                data=resource,
                time=sent_at,
                traceparent=child_traceparent(traceparent),
            ),
        )
        return message_id

    # Use cases ---------------------------------------------------------------------------------
    def post(
        self, principal: Principal, request_id: str, patient_id: str, text: str, priority: str
    ) -> store.StoredMessage:
        message = NewMessage(
            patient_id=patient_id,
            text=text,
            priority=priority or "routine",
            category="update",
            sender=principal.reference,
        )
        check_message(message)
        basis = teams.require_access(
            self.db,
            store.audit_log,
            self.access,
            principal,
            audit.CREATE,
            "Communication",
            patient_id,
        )

        def _create(uow: UnitOfWork, message_id: str) -> None:
            self._store(uow, message, message_id=message_id)
            audit.record(
                uow.conn,
                store.audit_log,
                principal,
                audit.CREATE,
                resource=f"Communication/{message_id}",
                patient_id=patient_id,
                detail=basis,
            )

        message_id, created = create_once(
            self.db,
            store.request_log,
            principal,
            "PostMessage",
            request_id,
            _create,
            lambda: str(uuid.uuid4()),
        )
        if created:
            self.notify_outbox()
        with self.db.read() as conn:
            stored = store.load_message(conn, message_id)
        if stored is None:  # pragma: no cover - committed above
            raise NotFound(f"Communication/{message_id} not found")
        return stored

    def thread(
        self, principal: Principal, patient_id: str, page_size: int, page_token: str
    ) -> tuple[list[store.StoredMessage], str]:
        basis = teams.require_access(
            self.db,
            store.audit_log,
            self.access,
            principal,
            audit.SEARCH,
            "Communication",
            patient_id,
        )
        size = paging.page_size(page_size)
        position = paging.decode(page_token, {"seq": int})
        after = int(position["seq"]) if position is not None else None
        with self.db.read() as conn:
            items = store.thread(conn, patient_id, size + 1, after)
        audit.record_separately(
            self.db,
            store.audit_log,
            principal,
            audit.SEARCH,
            resource="Communication",
            patient_id=patient_id,
            detail=f"{min(len(items), size)} hits; {basis}",
        )
        token = ""
        if len(items) > size:
            items = items[:size]
            token = paging.encode({"seq": items[-1].seq})
        return items, token

    # Events consumed ---------------------------------------------------------------------------
    def _system_message(
        self,
        uow: UnitOfWork,
        received: ReceivedEvent,
        patient_id: str,
        text: str,
        about: tuple[str, ...],
    ) -> None:
        if store.message_for_event(uow.conn, received.event.id) is not None:
            return
        self._store(
            uow,
            NewMessage(
                patient_id=patient_id,
                text=text,
                priority="routine",
                category="system",
                sender=codes.SYSTEM_SENDER,
                about=about,
            ),
            source_event_id=received.event.id,
            traceparent=received.event.traceparent,
        )

    def on_care_plan_created(self, uow: UnitOfWork, received: ReceivedEvent) -> None:
        plan = received.resource
        patient_id = fhir.reference_id(plan.subject.reference, "Patient")
        if not patient_id:
            return
        text = plan_created_text(plan.title, len(plan.activity or []))
        self._system_message(uow, received, patient_id, text, (f"CarePlan/{plan.id}",))

    def on_appointments_proposed(self, uow: UnitOfWork, received: ReceivedEvent) -> None:
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
        self._system_message(
            uow, received, received.event.key, sessions_proposed_text(count), about
        )

    def on_review_due(self, uow: UnitOfWork, received: ReceivedEvent) -> None:
        plan = received.resource
        patient_id = fhir.reference_id(plan.subject.reference, "Patient")
        if not patient_id:
            return
        self._system_message(
            uow, received, patient_id, review_due_text(plan.title), (f"CarePlan/{plan.id}",)
        )

    def on_crisis(self, uow: UnitOfWork, received: ReceivedEvent) -> None:
        """An urgent alert in the team thread to the patient's psychiatrist and therapist."""
        if store.message_for_event(uow.conn, received.event.id) is not None:
            return  # alerted already (the inbox normally keeps this from happening)
        observation = received.resource
        patient_id = received.event.key
        recipients = tuple(
            member
            for role in CRISIS_RECIPIENT_ROLES
            for member in teams.members_with_role(
                uow.conn, store.care_team_member, patient_id, role, teams.today()
            )
        )
        if not recipients:
            # Still posted to the thread (everyone on the team sees it), but nobody is named:
            # operators must know the team projection is missing.
            log.error("crisis for a patient without a known psychiatrist or therapist")
        # careplan's own reading of its event (what the measure and its items scored).
        measure = measure_from_fhir(observation)
        measured = measure.effective.isoformat() if measure.effective else "just now"
        text = crisis_text(observation.code.text or "PHQ-9", measure.value, measure.item9, measured)
        message_id = self._store(
            uow,
            NewMessage(
                patient_id=patient_id,
                text=text,
                priority="urgent",
                category="crisis",
                sender=codes.SYSTEM_SENDER,
                about=(f"Observation/{observation.id}",),
                recipients=recipients,
            ),
            source_event_id=received.event.id,
            traceparent=received.event.traceparent,
        )
        # And a safety Flag on the patient, tracked until a clinician acknowledges it.
        now = datetime.now(UTC)
        flag_id = str(uuid.uuid4())
        flag = Stored(
            flag_id,
            1,
            patient_id,
            "active",
            now,
            fhir_map.crisis_flag(flag_id, patient_id, text, f"Observation/{observation.id}", now),
        )
        store.flags.insert(uow.conn, flag, codes.SYSTEM_SENDER)
        uow.conn.execute(
            store.crisis_alert.insert().values(
                flag_id=flag_id,
                patient_id=patient_id,
                message_id=message_id,
                recipients=json.dumps(list(recipients)),
                raised_at=now,
            )
        )
        self._publish_flag(uow, flag, codes.EVENT_CRISIS_RAISED, received.event.traceparent)

    def _publish_flag(
        self, uow: UnitOfWork, flag: Stored, event_type: str, traceparent: str | None = None
    ) -> None:
        append_to_outbox(
            uow.conn,
            store.outbox,
            topics.NOTES,
            Event(
                type=event_type,
                source=codes.SOURCE,
                subject=f"Flag/{flag.id}/_history/{flag.version}",
                key=flag.patient_id,
                data=flag.resource,
                time=flag.updated_at,
                traceparent=child_traceparent(traceparent),
            ),
        )

    def acknowledge_crisis(self, principal: Principal, flag_id: str, note: str) -> Stored:
        """A clinician of the team acknowledges a crisis alert: recorded on the Flag and in the
        thread; acknowledging twice keeps the first acknowledgement."""
        name = f"Flag/{flag_id}"
        with audit.refusals(self.db, store.audit_log, principal, audit.UPDATE, name):
            if len(note) > 2000:
                raise InvalidArgument("note too long", [FieldViolation("note", "at most 2,000")])
            with UnitOfWork(self.db) as uow:
                alert = uow.conn.execute(
                    select(store.crisis_alert).where(store.crisis_alert.c.flag_id == flag_id)
                ).first()
                if alert is None:
                    raise NotFound(f"{name} is not a crisis alert", resource=name)
                basis = self.access.basis(uow.conn, principal, alert.patient_id)
                if alert.acknowledged_at is None:

                    def reviser(item: Stored, version: int, now: datetime) -> tuple[str, str, str]:
                        data = json.loads(item.resource)
                        resource = fhir_map.acknowledged_flag(
                            data, principal.reference, now, version
                        )
                        return resource, item.status, "acknowledge"

                    current = store.flags.load(uow.conn, flag_id)
                    assert current is not None
                    _, flag, _ = revise(
                        uow.conn,
                        store.flags,
                        "Flag",
                        flag_id,
                        current.version,
                        reviser,
                        principal.reference,
                        note or "acknowledged",
                    )
                    uow.conn.execute(
                        store.crisis_alert.update()
                        .where(store.crisis_alert.c.flag_id == flag_id)
                        .values(
                            acknowledged_by=principal.reference, acknowledged_at=flag.updated_at
                        )
                    )
                    text = f"Crisis alert acknowledged by {principal.reference}."
                    self._store(
                        uow,
                        NewMessage(
                            patient_id=alert.patient_id,
                            text=f"{text} {note}".strip(),
                            priority="urgent",
                            category="crisis",
                            sender=principal.reference,
                            about=(name,),
                        ),
                    )
                    self._publish_flag(uow, flag, codes.EVENT_CRISIS_ACKNOWLEDGED)
                audit.record(
                    uow.conn,
                    store.audit_log,
                    principal,
                    audit.UPDATE,
                    resource=name,
                    patient_id=alert.patient_id,
                    detail=f"acknowledge; {basis}",
                )
                uow.commit()
        self.notify_outbox()
        with self.db.read() as conn:
            stored = store.flags.load(conn, flag_id)
        assert stored is not None
        return stored

    def escalate_overdue(self, now: datetime, after: timedelta) -> int:
        """Re-escalates crisis alerts nobody acknowledged within `after`: a stat message to the
        whole team. Each alert is re-escalated once; returns how many were."""
        a = store.crisis_alert.c
        escalated = 0
        with UnitOfWork(self.db) as uow:
            overdue = uow.conn.execute(
                select(store.crisis_alert).where(
                    a.acknowledged_at.is_(None)
                    & a.escalated_at.is_(None)
                    & (a.raised_at <= now - after)
                )
            ).all()
            for alert in overdue:
                team = sorted(
                    {
                        member
                        for role in (
                            "psychiatrist",
                            "therapist",
                            "physician",
                            "nurse",
                            "case-manager",
                        )
                        for member in teams.members_with_role(
                            uow.conn, store.care_team_member, alert.patient_id, role, now.date()
                        )
                    }
                )
                minutes = int(after.total_seconds() // 60)
                self._store(
                    uow,
                    NewMessage(
                        patient_id=alert.patient_id,
                        text=f"CRISIS NOT ACKNOWLEDGED after {minutes} minutes: contact the "
                        "patient now and acknowledge the alert.",
                        priority="stat",
                        category="crisis",
                        sender=codes.SYSTEM_SENDER,
                        about=(f"Flag/{alert.flag_id}",),
                        recipients=tuple(team),
                    ),
                )
                uow.conn.execute(
                    store.crisis_alert.update()
                    .where(a.flag_id == alert.flag_id)
                    .values(escalated_at=now)
                )
                escalated += 1
            uow.commit()
        if escalated:
            log.warning("re-escalated %d unacknowledged crisis alerts", escalated)
            self.notify_outbox()
        return escalated

    def flags_for_patient(self, principal: Principal, patient_id: str) -> list[Stored]:
        return teams.audited_search(
            self.db,
            store.audit_log,
            self.access,
            principal,
            "Flag",
            patient_id,
            lambda conn: store.flags.for_patient(conn, patient_id),
        )
