"""A patient's team thread: posting (a crisis message raises the alert), reading a message and
the thread, read receipts, retraction, and watching the thread live (WatchThread)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from iopcare.kit import audit, fhir, paging
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
    must_exist,
)
from iopcare.kit.versioned import Stored, reread
from iopcare.notes import codes, once, store, watch
from iopcare.notes.crisis import raise_crisis
from iopcare.notes.cursor import seq_after
from iopcare.notes.domain.messages import NewMessage, check_message, crisis_priority
from iopcare.notes.oncall import Coverage
from iopcare.notes.posting import append_message, expand_recipients
from iopcare.notes.usecase import UseCase, audited

MAX_MARKED = 100


@dataclass(frozen=True)
class MessageView:
    message: store.StoredMessage
    #: (reader, when) for each reader who marked the message read.
    receipts: list[tuple[str, datetime]]


@dataclass(frozen=True)
class Posting:
    """A message to post, as asked: the message, and the operation and request its request id
    is idempotent by (PostMessage, or SendMessageDraft for a draft's send)."""

    message: NewMessage
    operation: str
    request: object
    #: The draft this post sends (deleted in the same transaction), if any.
    from_draft: store.StoredDraft | None = None


class Thread(UseCase):
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
        super().__init__(db, notify_outbox=notify_outbox)
        #: After-hours routing of the crisis messages clinicians post (set by `app`).
        self.coverage: Coverage | None = None
        self.watchers = watch.ThreadWatch()
        self.watchers.install(db.write_engine)
        self.watch_poll_seconds = watch_poll_seconds
        self._watch_places = watch.WatchPlaces(
            max_watchers, max_watchers_per_client, retry_after_seconds
        )

    # Posting -----------------------------------------------------------------------------------
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
    ) -> store.StoredMessage:
        """Posts a clinician's message. Recipients are practitioners or a team role
        (`role:dietitian`), expanded to the role's current members. A message of category
        `crisis` raises the same alert as a crisis event: urgent, addressed to the psychiatrist
        and therapist too, with a safety Flag that must be acknowledged."""
        asked = {
            "patient_id": patient_id,
            "text": text,
            "priority": priority,
            "category": category,
            "recipients": recipients,
            "in_response_to": in_response_to,
            "part_of": part_of,
            "about": about,
            "attachments": attachments,
        }
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
        return self.post_message(principal, request_id, Posting(message, "PostMessage", asked))

    def post_message(
        self, principal: Principal, request_id: str, posting: Posting
    ) -> store.StoredMessage:
        """Posts a checked message once per request id (see `post`)."""
        message = posting.message
        check_message(message)
        if message.category == "system":
            raise InvalidArgument(
                "system messages come from the services",
                [FieldViolation("category", "update, question, handoff or crisis")],
            )
        basis = self.basis(
            principal,
            audit.CREATE,
            "Communication",
            message.patient_id,
        )

        def _create(uow: UnitOfWork, message_id: str) -> None:
            if posting.from_draft is not None:
                _take_draft(uow, posting.from_draft)
            self._store_post(uow, message_id, message)
            audited(
                uow,
                principal,
                audit.CREATE,
                f"Communication/{message_id}",
                message.patient_id,
                basis,
            )

        message_id, created = once.create(
            self.db,
            once.Asked(principal, posting.operation, request_id, posting.request),
            _create,
            patient_id=message.patient_id,
        )
        if created:
            self.notify_outbox()
        return self._reload(message_id)

    def _store_post(self, uow: UnitOfWork, message_id: str, message: NewMessage) -> None:
        """A clinician's message in the thread, a crisis raising its alert."""
        if message.in_response_to:
            answered = store.load_message(uow.conn, message.in_response_to)
            if answered is None or answered.patient_id != message.patient_id:
                raise InvalidArgument(
                    "in_response_to is not a message of this patient's thread",
                    [FieldViolation("in_response_to", "a message in the same thread")],
                )
        expanded = expand_recipients(uow, message.patient_id, message.recipients)
        message = replace(message, recipients=expanded)
        if message.category != "crisis":
            append_message(uow, message, message_id=message_id)
            return
        raise_crisis(
            uow,
            message.patient_id,
            message.text,
            message.about,
            sender=message.sender,
            message_id=message_id,
            extra_recipients=expanded,
            message=replace(message, priority=crisis_priority(message.priority)),
            coverage=self.coverage,
        )

    def _reload(self, message_id: str) -> store.StoredMessage:
        return reread(self.db, store.load_message, message_id, f"Communication/{message_id}")

    # Reading -----------------------------------------------------------------------------------
    def get_message(self, principal: Principal, message_id: str) -> MessageView:
        """One message with its read receipts (audited read)."""
        name = f"Communication/{message_id}"
        with self.db.read() as conn:
            stored = store.load_message(conn, message_id)
        if stored is None:
            with self.refusals(principal, audit.READ, name):
                raise NotFound(f"{name} not found", resource=name)
        basis = self.basis(principal, audit.READ, name, stored.patient_id)
        with self.db.read() as conn:
            receipts = store.receipts(conn, message_id)
        self.audit_access(principal, audit.READ, name, stored.patient_id, basis)
        return MessageView(stored, receipts)

    def page(
        self, principal: Principal, patient_id: str, page_size: int, page_token: str
    ) -> tuple[list[store.StoredMessage], str]:
        """A page of the thread, oldest first, and the next page's token."""
        basis = self._require_thread_access(principal, patient_id)
        size = paging.page_size(page_size)
        after = seq_after(page_token)
        with self.db.read() as conn:
            items = store.thread(conn, patient_id, size + 1, after)
        self.audit_access(
            principal,
            audit.SEARCH,
            "Communication",
            patient_id,
            f"{min(len(items), size)} hits; {basis}",
        )
        token = ""
        if len(items) > size:
            items = items[:size]
            token = paging.encode({"seq": items[-1].seq})
        return items, token

    # Receipts and retraction -------------------------------------------------------------------
    def mark_read(self, principal: Principal, message_ids: list[str], request_id: str = "") -> int:
        """Records that the caller read these messages (a read receipt per reader and message;
        marking again keeps the first time). Returns how many receipts were new; a repeat of a
        request (same `request_id`) returns the first answer."""
        if not message_ids or len(message_ids) > MAX_MARKED:
            raise InvalidArgument(
                "1 to 100 message ids", [FieldViolation("message_ids", "1 to 100 ids")]
            )
        asked = once.Asked(principal, "MarkRead", request_id, {"message_ids": message_ids})
        done = once.earlier(self.db, asked)
        if done is not None:
            return int(done)
        with self.db.read() as conn:
            found = {m: store.load_message(conn, m) for m in message_ids}
        missing = [m for m, v in found.items() if v is None]
        if missing:
            with self.refusals(principal, audit.UPDATE, "Communication"):
                raise NotFound("no such message", resource=f"Communication/{missing[0]}")
        messages = [v for v in found.values() if v is not None]
        for patient in dict.fromkeys(m.patient_id for m in messages):
            self._require_access(principal, audit.UPDATE, patient)
        if not request_id:
            with UnitOfWork(self.db) as uow:
                new = self._add_receipts(uow, principal, messages)
                uow.commit()
            return new

        def _mark(uow: UnitOfWork, _placeholder: str) -> str:
            # The request log keeps the answer (how many receipts were new) as its result.
            return str(self._add_receipts(uow, principal, messages))

        count, _ = once.create(self.db, asked, _mark)
        return int(count)

    def _add_receipts(
        self, uow: UnitOfWork, principal: Principal, messages: list[store.StoredMessage]
    ) -> int:
        new = 0
        now = datetime.now(UTC)
        for message in messages:
            new += store.add_receipt(uow.conn, message.id, principal.reference, now)
            audited(
                uow,
                principal,
                audit.UPDATE,
                f"Communication/{message.id}",
                message.patient_id,
                "read receipt",
            )
        return new

    def retract(
        self, principal: Principal, message_id: str, expected_version: int, request_id: str = ""
    ) -> store.StoredMessage:
        """The sender retracts a message posted in error: status entered-in-error, kept in the
        thread for the record (a medical record is corrected, never erased). A repeat of a
        request (same `request_id`) returns the retracted message."""
        name = f"Communication/{message_id}"
        asked = once.Asked(
            principal,
            "RetractMessage",
            request_id,
            {"id": message_id, "expected_version": expected_version},
        )
        if once.earlier(self.db, asked) is not None:
            return self._reload(message_id)
        with self.refusals(principal, audit.UPDATE, name), self.db.read() as conn:
            stored = must_exist(store.load_message(conn, message_id), name)
        with self.refusals(principal, audit.UPDATE, name, stored.patient_id):
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
            once.change(
                self.db,
                asked,
                message_id,
                lambda uow: self._retract(uow, principal, stored),
                stored.patient_id,
            )
        self.notify_outbox()
        return self._reload(message_id)

    def _retract(self, uow: UnitOfWork, principal: Principal, stored: store.StoredMessage) -> None:
        name = f"Communication/{stored.id}"
        now = datetime.now(UTC)
        version = stored.version + 1
        data = json.loads(stored.resource)
        data["status"] = "entered-in-error"
        resource = fhir.with_identity(
            fhir.parse_resource(data, "Communication"), stored.id, version, now
        )
        if not store.messages.mark_retracted(uow.conn, stored.id, stored.version, resource):
            raise StaleVersion(name, stored.version, version)
        retracted = Stored(stored.id, version, stored.patient_id, "entered-in-error", now, resource)
        store.JOURNAL.publish_version(
            uow, "Communication", retracted, codes.EVENT_MESSAGE_RETRACTED
        )
        audited(uow, principal, audit.UPDATE, name, stored.patient_id, "retracted")

    # Watching ----------------------------------------------------------------------------------
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
            with self.refusals(principal, audit.SEARCH, "Communication", patient_id):
                raise
        try:
            with self.db.read() as conn:
                start = resume if resume is not None else store.last_seq(conn, patient_id)
            self.audit_access(
                principal, audit.SEARCH, "Communication", patient_id, f"watch opened; {basis}"
            )
            yield start
        finally:
            self._watch_places.release(principal.subject)

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
            self.audit_access(
                principal,
                audit.SEARCH,
                "Communication",
                patient_id,
                f"watch delivered {len(batch)}; {basis}",
            )
            for message in batch:
                cursor = message.seq
                yield message, paging.encode({"seq": cursor})

    def _require_thread_access(self, principal: Principal, patient_id: str) -> str:
        return self._require_access(principal, audit.SEARCH, patient_id)

    def _require_access(self, principal: Principal, action: str, patient_id: str) -> str:
        return self.basis(principal, action, "Communication", patient_id)


def _take_draft(uow: UnitOfWork, draft: store.StoredDraft) -> None:
    """Deletes the draft being sent, in the transaction that posts it: sent once, or not at
    all (NotFound if it was sent, changed or discarded meanwhile)."""
    if not store.drafts.delete_draft(uow.conn, draft.id, draft.version):
        raise NotFound(
            "the draft was sent, changed or discarded meanwhile",
            resource=f"MessageDraft/{draft.id}",
        )
