"""Message drafts: saved without sending (only their sender sees them), sent like a posted
message, or discarded."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime

from iopcare.kit import audit
from iopcare.kit.auth import Principal
from iopcare.kit.db import Database, UnitOfWork
from iopcare.kit.errors import FieldViolation, InvalidArgument, NotFound, StaleVersion
from iopcare.notes import once, store
from iopcare.notes.domain.messages import NewMessage, check_message
from iopcare.notes.thread import Posting, Thread
from iopcare.notes.usecase import UseCase, audited


def _body(message: NewMessage) -> dict[str, object]:
    return {
        "text": message.text,
        "priority": message.priority,
        "category": message.category,
        "recipients": list(message.recipients),
        "in_response_to": message.in_response_to or "",
        "part_of": list(message.part_of),
        "about": list(message.about),
        "attachments": list(message.attachments),
    }


class Drafts(UseCase):
    def __init__(self, db: Database, thread: Thread) -> None:
        super().__init__(db)
        self.thread = thread

    def save(
        self,
        principal: Principal,
        patient_id: str,
        draft_id: str,
        expected_version: int,
        message: NewMessage,
        request_id: str = "",
    ) -> store.StoredDraft:
        """Saves a message without sending it (a new draft without `draft_id`, else a new
        version of the caller's draft if `expected_version` is still current). Only its sender
        sees a draft; nothing is published until it is sent. A repeat of a request (same
        `request_id`) returns the draft it saved."""
        body = _body(message)
        asked = once.Asked(
            principal,
            "SaveMessageDraft",
            request_id,
            {
                "patient_id": patient_id,
                "draft_id": draft_id,
                "expected_version": expected_version,
                "body": body,
            },
        )
        done = once.earlier(self.db, asked, patient_id)
        if done is not None:
            return self._reload(principal, done)
        # Everything but the text is checked now (a draft may be half written).
        check_message(replace(message, text=message.text or "draft"))
        basis = self.basis(
            principal,
            audit.CREATE,
            "Communication",
            patient_id,
        )
        name = f"MessageDraft/{draft_id}"

        def _save(uow: UnitOfWork, new_id: str) -> str:
            saved_id = draft_id or new_id
            now = datetime.now(UTC)
            if draft_id:
                self._check_current(uow, principal, patient_id, draft_id, expected_version)
                if not store.drafts.update_draft(
                    uow.conn, draft_id, expected_version, json.dumps(body), now
                ):
                    raise StaleVersion(name, expected_version, expected_version + 1)
            else:
                store.drafts.insert_draft(
                    uow.conn, saved_id, patient_id, principal.reference, json.dumps(body), now
                )
            audited(
                uow,
                principal,
                audit.UPDATE,
                f"MessageDraft/{saved_id}",
                patient_id,
                f"draft saved; {basis}",
            )
            return saved_id

        with self.refusals(principal, audit.UPDATE, name, patient_id):
            if request_id:
                saved_id, _ = once.create(self.db, asked, _save, patient_id)
            else:
                with UnitOfWork(self.db) as uow:
                    saved_id = _save(uow, str(uuid.uuid4()))
                    uow.commit()
        return self._reload(principal, saved_id)

    @staticmethod
    def _check_current(
        uow: UnitOfWork, principal: Principal, patient_id: str, draft_id: str, version: int
    ) -> None:
        name = f"MessageDraft/{draft_id}"
        current = store.load_draft(uow.conn, draft_id)
        if current is None or current.sender != principal.reference:
            raise NotFound(f"{name} not found", resource=name)
        if current.patient_id != patient_id:
            raise InvalidArgument(
                "the draft is about another patient",
                [FieldViolation("patient_id", "the draft's patient")],
            )
        if current.version != version:
            raise StaleVersion(name, version, current.version)

    def _reload(self, principal: Principal, draft_id: str) -> store.StoredDraft:
        with self.db.read() as conn:
            saved = store.load_draft(conn, draft_id)
        if saved is None or saved.sender != principal.reference:
            # Sent or discarded since the request that saved it.
            name = f"MessageDraft/{draft_id}"
            raise NotFound(f"{name} not found", resource=name)
        return saved

    def page(
        self, principal: Principal, patient_id: str, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[store.StoredDraft], str]:
        """A page of the caller's own drafts about a patient, oldest first (by when each was last
        saved), and the next page's token."""
        return self.listed(
            principal,
            "MessageDraft",
            patient_id,
            page_size,
            page_token,
            lambda conn, limit, after: store.drafts.drafts_page(
                conn, principal.reference, patient_id, limit, after
            ),
            lambda d: (d.updated_at, d.id),
        )

    def _own(self, principal: Principal, draft_id: str, action: str) -> store.StoredDraft:
        name = f"MessageDraft/{draft_id}"
        with self.refusals(principal, action, name):
            with self.db.read() as conn:
                draft = store.load_draft(conn, draft_id)
            # Another sender's draft does not exist for the caller.
            if draft is None or draft.sender != principal.reference:
                raise NotFound(f"{name} not found", resource=name)
        return draft

    def send(self, principal: Principal, request_id: str, draft_id: str) -> store.StoredMessage:
        """Sends a draft: posted exactly like PostMessage, the draft deleted with it."""
        # A retry of a send that committed finds the draft gone: the message is the answer. The
        # request is the draft id (its content is gone after the send), and SendMessageDraft has
        # its own operation, so a PostMessage under the same id is another request.
        asked = {"draft_id": draft_id}
        done = once.earlier(self.db, once.Asked(principal, "SendMessageDraft", request_id, asked))
        if done is not None:
            with self.db.read() as conn:
                sent = store.load_message(conn, done)
            if sent is not None:
                return sent
        draft = self._own(principal, draft_id, audit.CREATE)
        b = draft.body
        message = NewMessage(
            patient_id=draft.patient_id,
            text=b["text"],
            priority=b["priority"] or ("urgent" if b["category"] == "crisis" else "routine"),
            category=b["category"] or "update",
            sender=principal.reference,
            about=tuple(b["about"]),
            recipients=tuple(b["recipients"]),
            in_response_to=b["in_response_to"] or None,
            part_of=tuple(b["part_of"]),
            attachments=tuple(b["attachments"]),
        )
        posting = Posting(message, "SendMessageDraft", asked, from_draft=draft)
        return self.thread.post_message(principal, request_id, posting)

    def discard(self, principal: Principal, draft_id: str, request_id: str = "") -> None:
        """Discards one of the caller's drafts; a repeat of a request (same `request_id`) finds
        it discarded and answers as the first did."""
        asked = once.Asked(principal, "DiscardMessageDraft", request_id, {"draft_id": draft_id})
        if once.earlier(self.db, asked) is not None:
            return
        draft = self._own(principal, draft_id, audit.UPDATE)

        def _discard(uow: UnitOfWork) -> None:
            store.drafts.delete_draft(uow.conn, draft_id)
            audited(
                uow,
                principal,
                audit.UPDATE,
                f"MessageDraft/{draft_id}",
                draft.patient_id,
                "draft discarded",
            )

        once.change(
            self.db, asked, draft_id, _discard, draft.patient_id, caller_audits_refusals=False
        )
