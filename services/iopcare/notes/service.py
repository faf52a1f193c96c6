"""The notes service layer: posting to and reading a patient's team thread."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from iopcare.careplan.contract import measure_from_fhir
from iopcare.kit import audit, fhir, labels, paging, teams
from iopcare.kit.auth import Principal
from iopcare.kit.db import Database, UnitOfWork
from iopcare.kit.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    StaleVersion,
)
from iopcare.kit.events import ReceivedEvent
from iopcare.kit.requests import create_once, replayed
from iopcare.kit.versioned import Stored, revise
from iopcare.notes import codes, fhir_map, store, watch
from iopcare.notes.cursor import seq_after
from iopcare.notes.domain.messages import (
    CRISIS_RECIPIENT_ROLES,
    NewMessage,
    attendance_alert_text,
    check_message,
    crisis_text,
    no_show_text,
    plan_changed_text,
    plan_created_text,
    review_due_text,
    sessions_proposed_text,
)
from iopcare.notes.domain.text import has_forbidden_characters

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MessageView:
    message: store.StoredMessage
    #: (reader, when) for each reader who marked the message read.
    receipts: list[tuple[str, datetime]]


class Notes:
    def __init__(
        self,
        db: Database,
        *,
        notify_outbox: Callable[[], None] = lambda: None,
        watch_poll_seconds: float = 1.0,
        max_watchers: int = 8,
        max_watchers_per_client: int = 2,
        retry_after_seconds: float = 1.0,
    ) -> None:
        self.db = db
        self.notify_outbox = notify_outbox
        self.access = teams.TeamAccess(store.care_team_member)
        self.watchers = watch.ThreadWatch()
        self.watchers.install(db.write_engine)
        self.watch_poll_seconds = watch_poll_seconds
        self._watch_places = watch.WatchPlaces(
            max_watchers, max_watchers_per_client, retry_after_seconds
        )

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
            in_response_to=message.in_response_to,
        )
        watch.posted(uow.conn, message.patient_id)
        store.JOURNAL.publish(
            uow,
            codes.EVENT_MESSAGE_POSTED,
            f"Communication/{message_id}/_history/1",
            key=message.patient_id,
            data=resource,
            at=sent_at,
            parent_trace=traceparent,
        )
        return message_id

    # Use cases ---------------------------------------------------------------------------------
    def post(
        self,
        principal: Principal,
        request_id: str,
        patient_id: str,
        text: str,
        priority: str,
        *,
        category: str = "",
        recipients: tuple[str, ...] = (),
        in_response_to: str = "",
        part_of: tuple[str, ...] = (),
        about: tuple[str, ...] = (),
        attachments: tuple[str, ...] = (),
        from_draft: store.StoredDraft | None = None,
        sent_as: tuple[str, object] | None = None,
    ) -> store.StoredMessage:
        """Posts a clinician's message. Recipients are practitioners or a team role
        (`role:dietitian`), expanded to the role's current members. A message of category
        `crisis` raises the same alert as a crisis event: urgent, addressed to the psychiatrist
        and therapist too, with a safety Flag that must be acknowledged.
        `sent_as`: the operation and request a draft's send is idempotent by (see send_draft)."""
        operation, asked = sent_as or (
            "PostMessage",
            {
                "patient_id": patient_id,
                "text": text,
                "priority": priority,
                "category": category,
                "recipients": recipients,
                "in_response_to": in_response_to,
                "part_of": part_of,
                "about": about,
                "attachments": attachments,
            },
        )
        category = category or "update"
        message = NewMessage(
            patient_id=patient_id,
            text=text,
            priority=priority or ("urgent" if category == "crisis" else "routine"),
            category=category,
            sender=principal.reference,
            about=about,
            recipients=recipients,
            in_response_to=in_response_to or None,
            part_of=part_of,
            attachments=attachments,
        )
        check_message(message)
        if category == "system":
            raise InvalidArgument(
                "system messages come from the services",
                [FieldViolation("category", "update, question, handoff or crisis")],
            )
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
            if from_draft is not None:
                # The draft goes in the transaction that posts it: sent once, or not at all.
                gone = uow.conn.execute(
                    store.message_draft.delete().where(
                        (store.message_draft.c.id == from_draft.id)
                        & (store.message_draft.c.version == from_draft.version)
                    )
                )
                if gone.rowcount != 1:
                    raise NotFound(
                        "the draft was sent, changed or discarded meanwhile",
                        resource=f"MessageDraft/{from_draft.id}",
                    )
            if in_response_to:
                answered = store.load_message(uow.conn, in_response_to)
                if answered is None or answered.patient_id != patient_id:
                    raise InvalidArgument(
                        "in_response_to is not a message of this patient's thread",
                        [FieldViolation("in_response_to", "a message in the same thread")],
                    )
            expanded = self._expand_recipients(uow, patient_id, recipients)
            if category == "crisis":
                self._raise_crisis(
                    uow,
                    patient_id,
                    text,
                    about,
                    sender=principal.reference,
                    message_id=message_id,
                    extra_recipients=expanded,
                    # At least urgent: a clinician may raise it to asap or stat, never lower it.
                    message=replace(
                        message,
                        recipients=expanded,
                        priority=message.priority
                        if message.priority in ("asap", "stat")
                        else "urgent",
                    ),
                )
            else:
                self._store(uow, replace(message, recipients=expanded), message_id=message_id)
            store.JOURNAL.audit(
                uow,
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
            operation,
            request_id,
            _create,
            lambda: str(uuid.uuid4()),
            request=asked,
            audit_log=store.audit_log,
            patient_id=patient_id,
        )
        if created:
            self.notify_outbox()
        with self.db.read() as conn:
            stored = store.load_message(conn, message_id)
        if stored is None:  # pragma: no cover - committed above
            raise NotFound(f"Communication/{message_id} not found")
        return stored

    # Drafts ------------------------------------------------------------------------------------
    def save_draft(
        self,
        principal: Principal,
        patient_id: str,
        draft_id: str,
        expected_version: int,
        message: NewMessage,
    ) -> store.StoredDraft:
        """Saves a message without sending it (a new draft without `draft_id`, else a new
        version of the caller's draft if `expected_version` is still current). Only its sender
        sees a draft; nothing is published until it is sent."""
        # Everything but the text is checked now (a draft may be half written).
        check_message(replace(message, text=message.text or "draft"))
        basis = teams.require_access(
            self.db,
            store.audit_log,
            self.access,
            principal,
            audit.CREATE,
            "Communication",
            patient_id,
        )
        body = {
            "text": message.text,
            "priority": message.priority,
            "category": message.category,
            "recipients": list(message.recipients),
            "in_response_to": message.in_response_to or "",
            "part_of": list(message.part_of),
            "about": list(message.about),
            "attachments": list(message.attachments),
        }
        now = datetime.now(UTC)
        name = f"MessageDraft/{draft_id}"
        with (
            store.JOURNAL.refusals(self.db, principal, audit.UPDATE, name, patient_id),
            UnitOfWork(self.db) as uow,
        ):
            if draft_id:
                current = store.load_draft(uow.conn, draft_id)
                if current is None or current.sender != principal.reference:
                    raise NotFound(f"{name} not found", resource=name)
                if current.patient_id != patient_id:
                    raise InvalidArgument(
                        "the draft is about another patient",
                        [FieldViolation("patient_id", "the draft's patient")],
                    )
                if current.version != expected_version:
                    raise StaleVersion(name, expected_version, current.version)
                uow.conn.execute(
                    store.message_draft.update()
                    .where(store.message_draft.c.id == draft_id)
                    .values(version=current.version + 1, body=json.dumps(body), updated_at=now)
                )
            else:
                draft_id = str(uuid.uuid4())
                uow.conn.execute(
                    store.message_draft.insert().values(
                        id=draft_id,
                        patient_id=patient_id,
                        sender=principal.reference,
                        version=1,
                        body=json.dumps(body),
                        updated_at=now,
                    )
                )
            store.JOURNAL.audit(
                uow,
                principal,
                audit.UPDATE,
                resource=f"MessageDraft/{draft_id}",
                patient_id=patient_id,
                detail=f"draft saved; {basis}",
            )
            uow.commit()
        with self.db.read() as conn:
            saved = store.load_draft(conn, draft_id)
        assert saved is not None
        return saved

    def drafts(self, principal: Principal, patient_id: str) -> list[store.StoredDraft]:
        """The caller's own drafts about a patient."""
        return teams.audited_search(
            self.db,
            store.audit_log,
            self.access,
            principal,
            "MessageDraft",
            patient_id,
            lambda conn: store.drafts_of(conn, principal.reference, patient_id),
        )

    def _own_draft(self, principal: Principal, draft_id: str, action: str) -> store.StoredDraft:
        name = f"MessageDraft/{draft_id}"
        with store.JOURNAL.refusals(self.db, principal, action, name):
            with self.db.read() as conn:
                draft = store.load_draft(conn, draft_id)
            # Another sender's draft does not exist for the caller.
            if draft is None or draft.sender != principal.reference:
                raise NotFound(f"{name} not found", resource=name)
        return draft

    def send_draft(
        self, principal: Principal, request_id: str, draft_id: str
    ) -> store.StoredMessage:
        """Sends a draft: posted exactly like PostMessage, the draft deleted with it."""
        # A retry of a send that committed finds the draft gone: the message is the answer. The
        # request is the draft id (its content is gone after the send), and SendMessageDraft has
        # its own operation, so a PostMessage under the same id is another request.
        asked = {"draft_id": draft_id}
        done = replayed(
            self.db,
            store.request_log,
            principal,
            "SendMessageDraft",
            request_id,
            request=asked,
            audit_log=store.audit_log,
        )
        if done is not None:
            with self.db.read() as conn:
                sent = store.load_message(conn, done)
            if sent is not None:
                return sent
        draft = self._own_draft(principal, draft_id, audit.CREATE)
        b = draft.body
        return self.post(
            principal,
            request_id,
            draft.patient_id,
            b["text"],
            b["priority"],
            category=b["category"],
            recipients=tuple(b["recipients"]),
            in_response_to=b["in_response_to"],
            part_of=tuple(b["part_of"]),
            about=tuple(b["about"]),
            attachments=tuple(b["attachments"]),
            from_draft=draft,
            sent_as=("SendMessageDraft", asked),
        )

    def discard_draft(self, principal: Principal, draft_id: str) -> None:
        draft = self._own_draft(principal, draft_id, audit.UPDATE)
        with UnitOfWork(self.db) as uow:
            uow.conn.execute(
                store.message_draft.delete().where(store.message_draft.c.id == draft_id)
            )
            store.JOURNAL.audit(
                uow,
                principal,
                audit.UPDATE,
                resource=f"MessageDraft/{draft_id}",
                patient_id=draft.patient_id,
                detail="draft discarded",
            )
            uow.commit()

    def _expand_recipients(
        self, uow: UnitOfWork, patient_id: str, recipients: tuple[str, ...]
    ) -> tuple[str, ...]:
        expanded: list[str] = []
        for ref in recipients:
            if ref.startswith("role:"):
                expanded += teams.members_with_role(
                    uow.conn, store.care_team_member, patient_id, ref[5:], teams.today()
                )
            else:
                expanded.append(ref)
        return tuple(dict.fromkeys(expanded))

    def get_message(self, principal: Principal, message_id: str) -> MessageView:
        """One message with its read receipts (audited read)."""
        name = f"Communication/{message_id}"
        with self.db.read() as conn:
            stored = store.load_message(conn, message_id)
        if stored is None:
            with store.JOURNAL.refusals(self.db, principal, audit.READ, name):
                raise NotFound(f"{name} not found", resource=name)
        basis = teams.require_access(
            self.db, store.audit_log, self.access, principal, audit.READ, name, stored.patient_id
        )
        with self.db.read() as conn:
            receipts = store.receipts(conn, message_id)
        store.JOURNAL.audit_separately(
            self.db,
            principal,
            audit.READ,
            resource=name,
            patient_id=stored.patient_id,
            detail=basis,
        )
        return MessageView(stored, receipts)

    def mark_read(self, principal: Principal, message_ids: list[str]) -> int:
        """Records that the caller read these messages (a read receipt per reader and message;
        marking again keeps the first time). Returns how many receipts were new."""
        if not message_ids or len(message_ids) > 100:
            raise InvalidArgument(
                "1 to 100 message ids", [FieldViolation("message_ids", "1 to 100 ids")]
            )
        with self.db.read() as conn:
            found = {m: store.load_message(conn, m) for m in message_ids}
        missing = [m for m, v in found.items() if v is None]
        if missing:
            with store.JOURNAL.refusals(self.db, principal, audit.UPDATE, "Communication"):
                raise NotFound("no such message", resource=f"Communication/{missing[0]}")
        patients = {v.patient_id for v in found.values() if v is not None}
        for patient in patients:
            teams.require_access(
                self.db,
                store.audit_log,
                self.access,
                principal,
                audit.UPDATE,
                "Communication",
                patient,
            )
        new = 0
        now = datetime.now(UTC)
        with UnitOfWork(self.db) as uow:
            for message_id, stored in found.items():
                assert stored is not None
                new += store.add_receipt(uow.conn, message_id, principal.reference, now)
                store.JOURNAL.audit(
                    uow,
                    principal,
                    audit.UPDATE,
                    resource=f"Communication/{message_id}",
                    patient_id=stored.patient_id,
                    detail="read receipt",
                )
            uow.commit()
        return new

    def retract(
        self, principal: Principal, message_id: str, expected_version: int
    ) -> store.StoredMessage:
        """The sender retracts a message posted in error: status entered-in-error, kept in the
        thread for the record (a medical record is corrected, never erased)."""
        name = f"Communication/{message_id}"
        with store.JOURNAL.refusals(self.db, principal, audit.UPDATE, name):
            with self.db.read() as conn:
                stored = store.load_message(conn, message_id)
            if stored is None:
                raise NotFound(f"{name} not found", resource=name)
        with store.JOURNAL.refusals(self.db, principal, audit.UPDATE, name, stored.patient_id):
            with self.db.read() as conn:
                self.access.basis(conn, principal, stored.patient_id)
            if stored.sender != principal.reference:
                raise PermissionDenied(
                    "only the sender retracts a message", reason="NOT_THE_SENDER"
                )
            if stored.status != "completed":
                raise FailedPrecondition(f"{name} is already retracted", reason="ALREADY_RETRACTED")
            if expected_version and expected_version != stored.version:
                raise StaleVersion(name, expected_version, stored.version)
            now = datetime.now(UTC)
            data = json.loads(stored.resource)
            data["status"] = "entered-in-error"
            resource = fhir.with_identity(
                fhir.parse_resource(data, "Communication"), message_id, stored.version + 1, now
            )
            with UnitOfWork(self.db) as uow:
                done = uow.conn.execute(
                    store.communication.update()
                    .where(
                        (store.communication.c.id == message_id)
                        & (store.communication.c.version == stored.version)
                    )
                    .values(
                        status="entered-in-error", version=stored.version + 1, resource=resource
                    )
                )
                if done.rowcount != 1:
                    raise StaleVersion(name, stored.version, stored.version + 1)
                store.JOURNAL.publish(
                    uow,
                    codes.EVENT_MESSAGE_RETRACTED,
                    f"Communication/{message_id}/_history/{stored.version + 1}",
                    key=stored.patient_id,
                    data=resource,
                    at=now,
                )
                store.JOURNAL.audit(
                    uow,
                    principal,
                    audit.UPDATE,
                    resource=name,
                    patient_id=stored.patient_id,
                    detail="retracted",
                )
                uow.commit()
        self.notify_outbox()
        with self.db.read() as conn:
            result = store.load_message(conn, message_id)
        assert result is not None
        return result

    @contextmanager
    def watching(self, principal: Principal, patient_id: str, after_token: str) -> Iterator[int]:
        """Opens a WatchThread stream for as long as the block runs: checks access (a refusal is
        audited), takes one of the places kept for streams, and yields the position the stream
        starts after: the resume token's, or the end of the thread without one.

        Why a bounded number of places: a stream holds a server thread while it waits, and the
        server has a fixed pool of them. Without a bound, as many watchers as threads (16 by
        default) left none for PostMessage, reads or crisis acknowledgements: every other call
        queued behind them. Streams beyond the bound are refused with RESOURCE_EXHAUSTED
        (audited) and may retry; a stream that ends gives its place back.
        """
        resume = seq_after(after_token, "resume_token")
        basis = self._require_thread_access(principal, patient_id)
        try:
            self._watch_places.acquire(principal.subject)
        except ResourceExhausted:
            with store.JOURNAL.refusals(
                self.db, principal, audit.SEARCH, "Communication", patient_id
            ):
                raise
        try:
            with self.db.read() as conn:
                start = resume if resume is not None else store.last_seq(conn, patient_id)
            store.JOURNAL.audit_separately(
                self.db,
                principal,
                audit.SEARCH,
                resource="Communication",
                patient_id=patient_id,
                detail=f"watch opened; {basis}",
            )
            yield start
        finally:
            self._watch_places.release(principal.subject)

    def _require_thread_access(self, principal: Principal, patient_id: str) -> str:
        return teams.require_access(
            self.db,
            store.audit_log,
            self.access,
            principal,
            audit.SEARCH,
            "Communication",
            patient_id,
        )

    def follow(
        self,
        principal: Principal,
        patient_id: str,
        cursor: int,
        alive: Callable[[], bool],
    ) -> Iterator[tuple[store.StoredMessage, str]]:
        """The thread's messages after `cursor` as they are committed, each with the token to
        resume after it. Access is checked again on every re-read (a clinician removed from
        the team stops receiving: PERMISSION_DENIED, audited); each delivered batch is audited.
        Ends when `alive()` turns false (the client went away) or the service shuts down."""
        while alive() and not self.watchers.closed:
            seen = self.watchers.counter(patient_id)
            # Access is checked on every pass, idle ones included: a clinician taken off the team
            # is cut off within one re-read interval, not only when the next message arrives
            # (a quiet thread would otherwise keep their stream, and a server thread, open).
            basis = self._require_thread_access(principal, patient_id)
            with self.db.read() as conn:
                batch = store.thread(conn, patient_id, 100, cursor)
            if not batch:
                # Woken by a commit for this patient, by shutdown, or after the re-read interval
                # (the hint is in-process; another replica's commits are found by re-reading).
                self.watchers.wait(patient_id, seen, self.watch_poll_seconds)
                continue
            store.JOURNAL.audit_separately(
                self.db,
                principal,
                audit.SEARCH,
                resource="Communication",
                patient_id=patient_id,
                detail=f"watch delivered {len(batch)}; {basis}",
            )
            for message in batch:
                cursor = message.seq
                yield message, paging.encode({"seq": cursor})

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
        after = seq_after(page_token)
        with self.db.read() as conn:
            items = store.thread(conn, patient_id, size + 1, after)
        store.JOURNAL.audit_separately(
            self.db,
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
                # Every system message is derived from the event's resource (a plan's title, a
                # session's name): it carries that resource's labels, all of them.
                security=derived_labels(received.resource),
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

    def on_plan_changed(self, uow: UnitOfWork, received: ReceivedEvent) -> None:
        """A plan's revision (edited, activated, suspended, completed, ...) noted in the thread."""
        plan = received.resource
        patient_id = fhir.reference_id(plan.subject.reference, "Patient")
        if not patient_id:
            return
        change = received.event.type.removeprefix("iopcare.careplan.").removesuffix(".v1")
        version = plan.meta.versionId if plan.meta else None
        self._system_message(
            uow,
            received,
            patient_id,
            plan_changed_text(plan.title, change, version),
            (f"CarePlan/{plan.id}",),
        )

    def on_appointment_updated(self, uow: UnitOfWork, received: ReceivedEvent) -> None:
        """A no-show noted in the thread. Other attendance changes are not the team's news.
        Tolerant of what scheduling sends: only `status` and the start are read."""
        appointment = received.resource
        if getattr(appointment, "status", None) != "noshow":
            return
        patient_id = received.event.key
        kinds = getattr(appointment, "serviceType", None) or []
        session = appointment.description or next(
            (k.text or (k.coding[0].display if k.coding else None) for k in kinds), None
        )
        start = appointment.start.isoformat() if appointment.start else None
        self._system_message(
            uow,
            received,
            patient_id,
            no_show_text(session, start),
            (f"Appointment/{appointment.id}",),
        )

    def on_attendance_alert(self, uow: UnitOfWork, received: ReceivedEvent) -> None:
        """scheduling's attendance alerts (intensity below minimum, dropout risk) in the thread.
        The payload is a Flag; only its `code.text` is read, so a richer payload still works."""
        resource = received.resource
        code = getattr(resource, "code", None)
        detail = getattr(code, "text", None) if code is not None else None
        kind = "intensity" if "intensity" in received.event.type else "dropout-risk"
        about = (f"{resource.get_resource_type()}/{resource.id}",) if resource.id else ()
        self._system_message(
            uow, received, received.event.key, attendance_alert_text(kind, detail), about
        )

    def on_crisis(self, uow: UnitOfWork, received: ReceivedEvent) -> None:
        """An urgent alert in the team thread to the patient's psychiatrist and therapist."""
        if store.message_for_event(uow.conn, received.event.id) is not None:
            return  # alerted already (the inbox normally keeps this from happening)
        observation = received.resource
        # careplan's own reading of its event (what the measure and its items scored).
        measure = measure_from_fhir(observation)
        measured = measure.effective.isoformat() if measure.effective else "just now"
        text = crisis_text(observation.code.text or "PHQ-9", measure.value, measure.item9, measured)
        self._raise_crisis(
            uow,
            received.event.key,
            text,
            (f"Observation/{observation.id}",),
            sender=codes.SYSTEM_SENDER,
            source_event_id=received.event.id,
            traceparent=received.event.traceparent,
            source=observation,
        )

    def _raise_crisis(
        self,
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
    ) -> str:
        """The urgent crisis message to the psychiatrist and therapist of the patient's team and
        a safety Flag tracked until acknowledged, in the caller's unit of work."""
        recipients = tuple(
            dict.fromkeys(
                [
                    *(
                        member
                        for role in CRISIS_RECIPIENT_ROLES
                        for member in teams.members_with_role(
                            uow.conn, store.care_team_member, patient_id, role, teams.today()
                        )
                    ),
                    *extra_recipients,
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
        message_id = self._store(
            uow,
            replace(message, recipients=recipients),
            message_id=message_id,
            source_event_id=source_event_id,
            traceparent=traceparent,
        )
        now = datetime.now(UTC)
        flag_id = str(uuid.uuid4())
        flag = Stored(
            flag_id,
            1,
            patient_id,
            "active",
            now,
            fhir_map.crisis_flag(
                flag_id, patient_id, text, about[0] if about else f"Communication/{message_id}", now
            ),
        )
        store.flags.insert(uow.conn, flag, sender)
        uow.conn.execute(
            store.crisis_alert.insert().values(
                flag_id=flag_id,
                patient_id=patient_id,
                message_id=message_id,
                recipients=json.dumps(list(recipients)),
                raised_at=now,
            )
        )
        store.JOURNAL.publish_version(
            uow, "Flag", flag, codes.EVENT_CRISIS_RAISED, parent_trace=traceparent
        )
        return message_id

    def acknowledge_crisis(self, principal: Principal, flag_id: str, note: str) -> Stored:
        """A clinician of the team acknowledges a crisis alert: recorded on the Flag and in the
        thread; acknowledging twice keeps the first acknowledgement."""
        name = f"Flag/{flag_id}"
        with store.JOURNAL.refusals(self.db, principal, audit.UPDATE, name):
            if len(note) > 2000 or has_forbidden_characters(note):
                raise InvalidArgument(
                    "the acknowledgement note is invalid",
                    [FieldViolation("note", "at most 2,000 characters, no control characters")],
                )
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
                    store.JOURNAL.publish_version(
                        uow, "Flag", flag, codes.EVENT_CRISIS_ACKNOWLEDGED
                    )
                store.JOURNAL.audit(
                    uow,
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
            # Claim every overdue alert first (oldest flag id first), each only if still
            # unacknowledged, and post afterwards. Why: an acknowledgement committing between the
            # read above and the claim would otherwise be escalated anyway (PostgreSQL re-checks
            # the WHERE clause of an UPDATE that waited for the row); and taking alert rows
            # before the thread lock is the order acknowledge_crisis takes them in, so the two
            # cannot deadlock.
            claimed = []
            for alert in sorted(overdue, key=lambda row: row.flag_id):
                done = uow.conn.execute(
                    store.crisis_alert.update()
                    .where(
                        (a.flag_id == alert.flag_id)
                        & a.acknowledged_at.is_(None)
                        & a.escalated_at.is_(None)
                    )
                    .values(escalated_at=now)
                )
                if done.rowcount == 1:
                    claimed.append(alert)
            for alert in claimed:
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

    # -- medical alerts (issue 12): careplan's crisis event, routed by the alert it carries -----
    def on_careplan_alert(self, uow: UnitOfWork, received: ReceivedEvent) -> None:
        """careplan's crisis event. A `medical` alert (a vital sign, lab or withdrawal scale past
        a program threshold) is the urgent crisis message and Flag naming, besides the usual
        crisis recipients, the team members in the roles the alert names (the physician and the
        psychiatrist); any other is the PHQ-9 crisis it always was (`on_crisis`)."""
        import iopcare.careplan.contract as careplan_contract

        observation = received.resource
        medical = [
            a for a in careplan_contract.alerts_from_fhir(observation) if a.kind == "medical"
        ]
        if not medical:
            self.on_crisis(uow, received)
            return
        if store.message_for_event(uow.conn, received.event.id) is not None:
            return  # alerted already (the inbox normally keeps this from happening)
        patient_id = received.event.key
        targets = tuple(
            member
            for role in dict.fromkeys(r for a in medical for r in a.roles)
            for member in teams.members_with_role(
                uow.conn, store.care_team_member, patient_id, role, teams.today()
            )
        )
        measure = careplan_contract.measure_from_fhir(observation)
        measured = measure.effective.isoformat() if measure.effective else "just now"
        text = (
            f"MEDICAL ALERT: {'; '.join(a.reason for a in medical)}, measured {measured}. "
            "Physician: assess the patient today and decide on the level of care; acknowledge "
            "this alert when done."
        )
        self._raise_crisis(
            uow,
            patient_id,
            text,
            (f"Observation/{observation.id}",),
            sender=codes.SYSTEM_SENDER,
            source_event_id=received.event.id,
            traceparent=received.event.traceparent,
            extra_recipients=targets,
            source=observation,
        )


def derived_labels(source: Any) -> tuple[tuple[str, str], ...]:
    """The security labels (system, code) of an event's resource, and of the entries of a
    Bundle of them (scheduling's proposed sessions): what a message derived from it inherits."""
    found = labels.security_of(source)
    for entry in getattr(source, "entry", None) or []:
        resource = getattr(entry, "resource", None)
        if resource is not None:
            found = labels.union(found, labels.security_of(resource))
    return tuple((str(s.get("system") or ""), str(s["code"])) for s in found if s.get("code"))
