"""Clinical notes: writing (drafts, edits, signatures, addenda and amendments) and reading one
note under the privacy rules. Searching is `note_search`; consents and disclosure outside the
program are `consents` and `disclosure`."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from iopcare.kit import audit, labels, privacy
from iopcare.kit.auth import Principal
from iopcare.kit.copying import by_name
from iopcare.kit.db import UnitOfWork
from iopcare.kit.errors import (
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    StaleVersion,
)
from iopcare.kit.versioned import reread
from iopcare.notes import codes, fhir_map, once, store
from iopcare.notes.domain import documents
from iopcare.notes.domain.documents import NoteDraft
from iopcare.notes.usecase import UseCase, audited


@dataclass(frozen=True)
class Attendee:
    """One patient's individual part of a group note."""

    patient_id: str
    text: str


@dataclass(frozen=True)
class NoteChanges:
    """The fields an update of a draft sets (its update mask); None leaves a field as it is."""

    title: str | None = None
    text: str | None = None
    confidentiality: str | None = None
    sensitivity: frozenset[str] | None = None
    shared_with: frozenset[str] | None = None


@dataclass(frozen=True)
class NoteView:
    """A note as a caller may see it, with its addenda and signature Provenance."""

    note: store.StoredNote
    related: list[str]
    provenance: list[str]
    flagged: bool


#: What a new note takes from its draft as it is, and what its DocumentReference takes from it.
_FROM_DRAFT = "patient_id kind title text shared_text confidentiality"
_RELATIONS = "group_id relates_to relation relation_reason"


def facts(note: store.StoredNote) -> privacy.NoteFacts:
    return privacy.NoteFacts(
        **by_name(note, "author author_role kind status confidentiality sensitivity shared_with")
    )


def state(note: store.StoredNote) -> fhir_map.NoteState:
    return fhir_map.NoteState(
        **by_name(note, f"id version author status sensitivity created_at {_FROM_DRAFT}"),
        **by_name(note, f"{_RELATIONS} signed_at signed_by"),
        updated_at=note.signed_at or note.created_at,
    )


def drafts_of(draft: NoteDraft, attendees: list[Attendee]) -> list[NoteDraft]:
    """The drafts a CreateNote makes: one, or one per attendee of a group note (each with the
    shared part and that attendee's own part)."""
    if draft.kind != "group":
        if attendees:
            raise InvalidArgument(
                "only group notes have attendees",
                [FieldViolation("attendees", "only for kind group")],
            )
        return [draft]
    if not attendees:
        raise InvalidArgument(
            "a group note needs its attendees",
            [FieldViolation("attendees", "at least one attendee")],
        )
    if len(attendees) > documents.MAX_ATTENDEES:
        raise InvalidArgument(
            "too many attendees",
            [FieldViolation("attendees", f"at most {documents.MAX_ATTENDEES}")],
        )
    return [replace(draft, patient_id=a.patient_id, text=a.text) for a in attendees]


class ClinicalNotes(UseCase):
    # Access ------------------------------------------------------------------------------------
    def _writer_basis(self, principal: Principal, action: str, resource: str, patient: str) -> str:
        """Notes are written by clinicians of the patient's team, never by administrators,
        services or under break-glass (they document care the author gave)."""
        basis = self.basis(principal, action, resource, patient)
        if basis != "care-team" or principal.role not in privacy.DISCIPLINE:
            self.audit_access(
                principal,
                action,
                resource,
                patient,
                "NOT_A_CLINICIAN_ON_THE_TEAM",
                outcome=audit.DENIED,
            )
            raise PermissionDenied(
                "only clinicians of the patient's care team write notes",
                reason="NOT_A_CLINICIAN_ON_THE_TEAM",
            )
        return basis

    def _viewer(self, principal: Principal, basis: str) -> privacy.Viewer:
        return privacy.Viewer(principal.reference, principal.role, basis)

    def _load_readable(
        self, principal: Principal, note_id: str, action: str
    ) -> tuple[store.StoredNote, privacy.Decision, privacy.Viewer]:
        """The note if the caller may read it; a refusal is audited and raised."""
        name = f"DocumentReference/{note_id}"
        with self.db.read() as conn:
            note = store.load_note(conn, note_id)
        if note is None:
            with self.refusals(principal, action, name):
                raise NotFound(f"{name} not found", resource=name)
        basis = self.basis(principal, action, name, note.patient_id)
        viewer = self._viewer(principal, basis)
        decision = privacy.may_read(viewer, facts(note))
        if not decision.allowed:
            self.audit_access(
                principal, action, name, note.patient_id, decision.reason, outcome=audit.DENIED
            )
            raise PermissionDenied(
                "the note's privacy labels do not let the caller read it",
                reason=decision.reason,
            )
        return note, decision, viewer

    # Writing -----------------------------------------------------------------------------------
    def _insert_draft(
        self,
        uow: UnitOfWork,
        principal: Principal,
        draft: NoteDraft,
        now: datetime,
        detail: str,
        **extra: object,
    ) -> None:
        """Stores a new draft note (version 1) written from `draft`, with its audit row; `extra`
        gives its id and what it belongs to (a group session, the note it amends)."""
        note_id = str(extra.pop("id", None) or uuid.uuid4())
        new = fhir_map.NoteState(
            id=note_id,
            version=1,
            author=principal.reference,
            status="draft",
            **by_name(draft, _FROM_DRAFT),
            sensitivity=draft.sensitivity,
            created_at=now,
            updated_at=now,
            **{name: extra.get(name) for name in _RELATIONS.split()},  # type: ignore[arg-type]
        )
        row = {
            **by_name(new, f"id version author status created_at updated_at {_FROM_DRAFT}"),
            "type_code": documents.NOTE_KINDS[draft.kind][0],
            "author_role": principal.role,
            "sensitivity": " ".join(sorted(draft.sensitivity)),
            "shared_with": json.dumps(sorted(draft.shared_with)),
            **extra,
            "resource": fhir_map.document_reference(new),
        }
        store.insert_note(uow.conn, row)
        audited(
            uow, principal, audit.CREATE, f"DocumentReference/{note_id}", draft.patient_id, detail
        )

    def create(
        self,
        principal: Principal,
        request_id: str,
        draft: NoteDraft,
        attendees: list[Attendee] | None = None,
    ) -> list[store.StoredNote]:
        """Creates a draft note; a group note becomes one draft per attendee, each with the
        shared part and that attendee's individual part (no attendee's note names another)."""
        attendees = attendees or []
        drafts = drafts_of(draft, attendees)
        for i, item in enumerate(drafts):
            documents.check_draft(item, f"attendees[{i}]." if attendees else "")
        drafts = [documents.labelled(item) for item in drafts]
        bases = {
            d.patient_id: self._writer_basis(
                principal, audit.CREATE, "DocumentReference", d.patient_id
            )
            for d in drafts
        }

        def _create(uow: UnitOfWork, result_id: str) -> str:
            now = datetime.now(UTC)
            group_id = result_id if draft.kind == "group" else None
            for i, item in enumerate(drafts):
                self._insert_draft(
                    uow,
                    principal,
                    item,
                    now,
                    f"draft; {bases[item.patient_id]}",
                    id=result_id if group_id is None else f"{result_id[:56]}-{i}",
                    group_id=group_id,
                )
            return result_id

        asked = once.Asked(
            principal, "CreateNote", request_id, {"draft": draft, "attendees": attendees}
        )
        result_id, _ = once.create(self.db, asked, _create, draft.patient_id or None)
        with self.db.read() as conn:
            if draft.kind == "group":
                found = store.notes_of_group(conn, result_id)
            else:
                one = store.load_note(conn, result_id)
                found = [one] if one is not None else []
        return found

    def update_draft(
        self,
        principal: Principal,
        note_id: str,
        expected_version: int,
        changes: NoteChanges,
        request_id: str = "",
    ) -> store.StoredNote:
        """Edits a draft (only its author; only the fields in `changes`, an update mask). A
        repeat of a request (same `request_id`) returns the note without editing it again."""
        name = f"DocumentReference/{note_id}"
        asked = once.Asked(
            principal,
            "UpdateNote",
            request_id,
            {"id": note_id, "expected_version": expected_version, "changes": changes},
        )
        if once.earlier(self.db, asked) is not None:
            return self._reload(note_id)
        note, _, _ = self._load_readable(principal, note_id, audit.UPDATE)
        with self.refusals(principal, audit.UPDATE, name, note.patient_id):
            # With a request id, checked inside the edit's transaction instead (a racing copy of
            # this request may have committed since `earlier`: it then answers this one).
            if not request_id:
                self._check_own_draft(principal, note, expected_version, "edits a draft")
            revised = self._revised(principal, note, changes)
            now = datetime.now(UTC)
            values = {
                "version": revised.version,
                "title": revised.title,
                "text": revised.text,
                "confidentiality": revised.confidentiality,
                "sensitivity": " ".join(sorted(revised.sensitivity)),
                "shared_with": json.dumps(sorted(revised.shared_with)),
                "updated_at": now,
                "resource": fhir_map.document_reference(replace(state(revised), updated_at=now)),
            }

            def _edit(uow: UnitOfWork) -> None:
                current = self._current(uow, note)
                self._check_own_draft(principal, current, expected_version, "edits a draft")
                _update(uow, note, values, expected_version)
                audited(uow, principal, audit.UPDATE, name, note.patient_id, "draft edited")

            once.change(self.db, asked, note_id, _edit, note.patient_id)
        return self._reload(note_id)

    @staticmethod
    def _current(uow: UnitOfWork, note: store.StoredNote) -> store.StoredNote:
        """The note as this transaction sees it (it may have changed since it was loaded)."""
        return store.load_note(uow.conn, note.id) or note

    @staticmethod
    def _check_own_draft(
        principal: Principal, note: store.StoredNote, expected_version: int, what: str
    ) -> None:
        name = f"DocumentReference/{note.id}"
        if note.author != principal.reference:
            # A draft is its author's; the signature attests authorship.
            raise PermissionDenied(f"only the author {what}", reason="NOT_THE_AUTHOR")
        documents.require_draft(note.status, name)
        if note.version != expected_version:
            raise StaleVersion(name, expected_version, note.version)

    @staticmethod
    def _revised(
        principal: Principal, note: store.StoredNote, changes: NoteChanges
    ) -> store.StoredNote:
        """The draft with the changes applied, checked and labelled (its next version)."""
        if (
            note.relates_to
            and changes.shared_with is not None
            and changes.shared_with != note.shared_with
        ):
            # An addendum's readers are its original's (set by AmendNote): a reader the
            # author shared a psychotherapy note with must not open what they add to it
            # (and its title, which names the original's) to anyone else (45 CFR
            # 164.508(a)(2); test-matrix C7: derived data keeps its sources' restrictions).
            raise InvalidArgument(
                "an addendum is shared with the readers of its original",
                [FieldViolation("shared_with", "fixed for an addendum or amendment")],
            )
        draft = NoteDraft(
            patient_id=note.patient_id,
            kind=note.kind,
            title=note.title if changes.title is None else changes.title,
            text=note.text if changes.text is None else changes.text,
            shared_text=note.shared_text,
            confidentiality=changes.confidentiality or note.confidentiality,
            sensitivity=note.sensitivity if changes.sensitivity is None else changes.sensitivity,
            shared_with=note.shared_with if changes.shared_with is None else changes.shared_with,
        )
        documents.check_draft(draft)
        draft = documents.labelled(draft)
        if note.relates_to or not labels.may_lower_labels(principal.role):
            # Labels only go up (kit/labels.py; 42 CFR 2.12(d)): an edit keeps at least the
            # draft's stored labels (an addendum's are its original's, test-matrix C7); only
            # a privacy officer lowers them.
            level, sensitivity = documents.inherited_labels(
                draft.confidentiality, draft.sensitivity, facts(note)
            )
        else:
            level, sensitivity = draft.confidentiality, draft.sensitivity
        return replace(
            note,
            version=note.version + 1,
            title=draft.title,
            text=draft.text,
            confidentiality=level,
            sensitivity=sensitivity,
            shared_with=draft.shared_with,
        )

    def sign(
        self, principal: Principal, note_id: str, expected_version: int, request_id: str = ""
    ) -> NoteView:
        """Signs a draft: it becomes final and immutable; the signature is recorded as a
        Provenance (who, when) and `iopcare.notes.note.signed.v1` carries a reference to the
        note with its labels, never its text. A repeat of a request (same `request_id`) returns
        the signed note without signing again."""
        name = f"DocumentReference/{note_id}"
        asked = once.Asked(
            principal, "SignNote", request_id, {"id": note_id, "expected_version": expected_version}
        )
        if once.earlier(self.db, asked) is None:
            note, _, _ = self._load_readable(principal, note_id, audit.UPDATE)
            with self.refusals(principal, audit.UPDATE, name, note.patient_id):
                if not request_id:
                    self._check_own_draft(principal, note, expected_version, "signs a note")

                def _signed(uow: UnitOfWork) -> None:
                    # Checked inside the signature's transaction: a racing copy of this request
                    # that committed since `earlier` answers this one instead of refusing it.
                    current = self._current(uow, note)
                    self._check_own_draft(principal, current, expected_version, "signs a note")
                    self._sign(uow, principal, current)

                once.change(self.db, asked, note_id, _signed, note.patient_id)
            self.notify_outbox()
        # The answer is the note just signed: its update is the audit record of this call (C11:
        # one record per access), so no second record of a read.
        with self.db.read() as conn:
            stored = store.load_note(conn, note_id)
            provenance = store.provenance_for(conn, note_id)
        if stored is None:  # pragma: no cover - committed above
            raise NotFound(f"{name} not found", resource=name)
        return NoteView(stored, [], provenance, False)

    def _sign(self, uow: UnitOfWork, principal: Principal, note: store.StoredNote) -> None:
        now = datetime.now(UTC)
        signed = replace(
            note,
            status="signed",
            version=note.version + 1,
            signed_at=now,
            signed_by=principal.reference,
        )
        values = {
            "status": "signed",
            "version": signed.version,
            "signed_at": now,
            "signed_by": principal.reference,
            "updated_at": now,
            "resource": fhir_map.document_reference(state(signed)),
        }
        _update(uow, note, values, note.version)
        provenance_id = str(uuid.uuid4())
        store.insert_provenance(
            uow.conn,
            provenance_id,
            note.id,
            note.patient_id,
            now,
            fhir_map.signature_provenance(
                provenance_id, note.id, signed.version, principal.reference, now
            ),
        )
        store.JOURNAL.publish(
            uow,
            codes.EVENT_NOTE_SIGNED,
            f"DocumentReference/{note.id}/_history/{signed.version}",
            key=note.patient_id,
            # Reference and labels only (issue 4: labelled content never in events).
            data=fhir_map.document_reference(state(signed), content=False),
            at=now,
        )
        audited(
            uow, principal, audit.UPDATE, f"DocumentReference/{note.id}", note.patient_id, "signed"
        )

    def amend(
        self,
        principal: Principal,
        request_id: str,
        note_id: str,
        relation: str,
        reason: str,
        text: str,
        title: str = "",
    ) -> store.StoredNote:
        """Starts an addendum (`appends`) or an amendment (`replaces`) of a signed note, as a new
        draft that references it with the reason; the original stays exactly as signed."""
        documents.check_amendment(relation, reason, text, title)
        name = f"DocumentReference/{note_id}"
        original, _, _ = self._load_readable(principal, note_id, audit.CREATE)
        with self.refusals(principal, audit.CREATE, name, original.patient_id):
            documents.require_signed(original.status, name)
            if relation == "replaces" and original.author != principal.reference:
                # Documentation integrity: a note is corrected by its author; others append.
                raise PermissionDenied(
                    "only the author amends a note; others may add an addendum",
                    reason="NOT_THE_AUTHOR",
                )
        self._writer_basis(principal, audit.CREATE, "DocumentReference", original.patient_id)
        level, sensitivity = documents.inherited_labels("N", frozenset(), facts(original))
        relation_title = "Addendum" if relation == "appends" else "Amendment"
        draft = NoteDraft(
            patient_id=original.patient_id,
            kind=original.kind,
            title=(title or f"{relation_title}: {original.title}")[: documents.MAX_TITLE],
            text=text,
            confidentiality=level,
            sensitivity=sensitivity,
            # Whoever could read the original can read what is added to it: an addendum to a
            # psychotherapy note by a reader it was shared with stays readable by its author.
            shared_with=(original.shared_with | {original.author}) - {principal.reference},
        )

        def _create(uow: UnitOfWork, result_id: str) -> str:
            self._insert_draft(
                uow,
                principal,
                draft,
                datetime.now(UTC),
                f"{relation} {name}",
                id=result_id,
                relates_to=note_id,
                relation=relation,
                relation_reason=reason,
            )
            return result_id

        asked = once.Asked(
            principal,
            "AmendNote",
            request_id,
            {
                "note_id": note_id,
                "relation": relation,
                "reason": reason,
                "text": text,
                "title": title,
            },
        )
        result_id, _ = once.create(self.db, asked, _create, original.patient_id)
        return self._reload(result_id)

    def _reload(self, note_id: str) -> store.StoredNote:
        return reread(self.db, store.load_note, note_id, f"DocumentReference/{note_id}")

    # Reading -----------------------------------------------------------------------------------
    def get(self, principal: Principal, note_id: str) -> NoteView:
        note, decision, viewer = self._load_readable(principal, note_id, audit.READ)
        with self.db.read() as conn:
            # Only the addenda the caller may read: the id of another author's draft or of a
            # psychotherapy addendum is itself something the caller is refused (test-matrix C1).
            related = [
                n.id
                for n in store.related_notes(conn, note_id)
                if privacy.may_read(viewer, facts(n)).allowed
            ]
            provenance = store.provenance_for(conn, note_id)
        flag = "; FLAGGED for break-glass review" if decision.flagged else ""
        self.audit_access(
            principal,
            audit.READ,
            f"DocumentReference/{note_id}",
            note.patient_id,
            f"{decision.reason}{flag}",
        )
        return NoteView(note, related, provenance, decision.flagged)


def _update(
    uow: UnitOfWork, note: store.StoredNote, values: dict[str, object], expected: int
) -> None:
    """Stores a new state of a draft if it is still at its version, else STALE_VERSION."""
    if not store.update_note(uow.conn, note, values):
        latest = store.load_note(uow.conn, note.id)
        name = f"DocumentReference/{note.id}"
        raise StaleVersion(name, expected, latest.version if latest else 0)
