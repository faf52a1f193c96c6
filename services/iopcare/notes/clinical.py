"""The clinical notes service layer: writing, signing and amending notes, reading and searching
them under the privacy rules, and disclosing them outside the program under a Consent."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from iopcare.kit import audit, labels, paging, privacy, teams
from iopcare.kit.auth import Principal
from iopcare.kit.db import Database, UnitOfWork
from iopcare.kit.errors import (
    FieldViolation,
    FieldViolations,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    StaleVersion,
)
from iopcare.kit.requests import create_once
from iopcare.notes import codes, fhir_map, store
from iopcare.notes.cursor import seq_after
from iopcare.notes.domain import documents
from iopcare.notes.domain.documents import NoteDraft
from iopcare.notes.domain.text import FORBIDDEN_CHARACTERS, has_forbidden_characters

#: A search page reads at least this many rows per query, and at most MAX_SCANNED rows in all.
SEARCH_BATCH = 200
MAX_SCANNED = 2_000

#: Identities that may ask for a note "for disclosure": the FHIR gateway's service identity (and
#: administrators acting for it). Clinicians read notes; services disclose them.
DISCLOSING_ROLES = frozenset({"service", "system", "admin"})
CONSENT_SCOPES = ("all", "sud")
#: How far a signature time may lie ahead of this server's clock (the signer's clock may be ahead).
SIGNATURE_CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class ConsentInput:
    """What a consent says, as asked for (validated by `record_consent`)."""

    recipient: str
    scope: str
    period_start: datetime | None = None
    period_end: datetime | None = None
    recipient_type: str = "Organization"
    recipient_display: str = ""
    signed_at: datetime | None = None
    signed_document: str = ""


def _shown_to(principal: Principal, consent: store.StoredConsent) -> bool:
    """An outside system sees the consents naming it, and no other (a consent to another
    recipient is "not found")."""
    return principal.role not in privacy.OUTSIDE_ROLES or consent.recipient == principal.subject


def _signed_document(value: str) -> bool:
    """Where the signed form is: a DocumentReference of ours or an https URL."""
    if len(value) > 500 or has_forbidden_characters(value) or any(c.isspace() for c in value):
        return False
    if value.startswith("DocumentReference/"):
        ident = value.removeprefix("DocumentReference/")
        return 0 < len(ident) <= 64 and all(c.isalnum() or c in "-." for c in ident)
    return value.startswith("https://") and len(value) > len("https://")


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


def _facts(note: store.StoredNote) -> privacy.NoteFacts:
    return privacy.NoteFacts(
        author=note.author,
        author_role=note.author_role,
        kind=note.kind,
        status=note.status,
        confidentiality=note.confidentiality,
        sensitivity=note.sensitivity,
        shared_with=note.shared_with,
    )


def _state(note: store.StoredNote) -> fhir_map.NoteState:
    return fhir_map.NoteState(
        id=note.id,
        version=note.version,
        patient_id=note.patient_id,
        kind=note.kind,
        author=note.author,
        status=note.status,
        title=note.title,
        text=note.text,
        shared_text=note.shared_text,
        confidentiality=note.confidentiality,
        sensitivity=note.sensitivity,
        created_at=note.created_at,
        updated_at=note.signed_at or note.created_at,
        group_id=note.group_id,
        relates_to=note.relates_to,
        relation=note.relation,
        relation_reason=note.relation_reason,
        signed_at=note.signed_at,
        signed_by=note.signed_by,
    )


def _or(value: frozenset[str] | None, default: frozenset[str]) -> frozenset[str]:
    return default if value is None else value


class ClinicalNotes:
    def __init__(self, db: Database, *, notify_outbox: Callable[[], None] = lambda: None) -> None:
        self.db = db
        self.notify_outbox = notify_outbox
        self.access = teams.TeamAccess(store.care_team_member)

    # Access ------------------------------------------------------------------------------------
    def _writer_basis(self, principal: Principal, action: str, resource: str, patient: str) -> str:
        """Notes are written by clinicians of the patient's team, never by administrators,
        services or under break-glass (they document care the author gave)."""
        basis = teams.require_access(
            self.db, store.audit_log, self.access, principal, action, resource, patient
        )
        if basis != "care-team" or principal.role not in privacy.DISCIPLINE:
            store.JOURNAL.audit_separately(
                self.db,
                principal,
                action,
                resource=resource,
                patient_id=patient,
                outcome=audit.DENIED,
                detail="NOT_A_CLINICIAN_ON_THE_TEAM",
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
            with store.JOURNAL.refusals(self.db, principal, action, name):
                raise NotFound(f"{name} not found", resource=name)
        basis = teams.require_access(
            self.db, store.audit_log, self.access, principal, action, name, note.patient_id
        )
        viewer = self._viewer(principal, basis)
        decision = privacy.may_read(viewer, _facts(note))
        if not decision.allowed:
            store.JOURNAL.audit_separately(
                self.db,
                principal,
                action,
                resource=name,
                patient_id=note.patient_id,
                outcome=audit.DENIED,
                detail=decision.reason,
            )
            raise PermissionDenied(
                "the note's privacy labels do not let the caller read it",
                reason=decision.reason,
            )
        return note, decision, viewer

    # Writing -----------------------------------------------------------------------------------
    def _new_row(
        self, principal: Principal, draft: NoteDraft, now: datetime, **extra: object
    ) -> dict[str, object]:
        note_id = str(extra.pop("id", None) or uuid.uuid4())
        row: dict[str, object] = {
            "id": note_id,
            "patient_id": draft.patient_id,
            "kind": draft.kind,
            "type_code": documents.NOTE_KINDS[draft.kind][0],
            "author": principal.reference,
            "author_role": principal.role,
            "status": "draft",
            "version": 1,
            "title": draft.title,
            "text": draft.text,
            "shared_text": draft.shared_text,
            "confidentiality": draft.confidentiality,
            "sensitivity": " ".join(sorted(draft.sensitivity)),
            "shared_with": json.dumps(sorted(draft.shared_with)),
            "created_at": now,
            "updated_at": now,
            **extra,
        }
        row["resource"] = fhir_map.document_reference(
            fhir_map.NoteState(
                id=note_id,
                version=1,
                patient_id=draft.patient_id,
                kind=draft.kind,
                author=principal.reference,
                status="draft",
                title=draft.title,
                text=draft.text,
                shared_text=draft.shared_text,
                confidentiality=draft.confidentiality,
                sensitivity=draft.sensitivity,
                created_at=now,
                updated_at=now,
                group_id=extra.get("group_id"),  # type: ignore[arg-type]
                relates_to=extra.get("relates_to"),  # type: ignore[arg-type]
                relation=extra.get("relation"),  # type: ignore[arg-type]
                relation_reason=extra.get("relation_reason"),  # type: ignore[arg-type]
            )
        )
        return row

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
        if draft.kind == "group":
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
            drafts = [replace(draft, patient_id=a.patient_id, text=a.text) for a in attendees]
        else:
            if attendees:
                raise InvalidArgument(
                    "only group notes have attendees",
                    [FieldViolation("attendees", "only for kind group")],
                )
            drafts = [draft]
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
                row = self._new_row(
                    principal,
                    item,
                    now,
                    id=result_id if group_id is None else f"{result_id[:56]}-{i}",
                    group_id=group_id,
                )
                store.insert_note(uow.conn, row)
                store.JOURNAL.audit(
                    uow,
                    principal,
                    audit.CREATE,
                    resource=f"DocumentReference/{row['id']}",
                    patient_id=item.patient_id,
                    detail=f"draft; {bases[item.patient_id]}",
                )
            return result_id

        result_id, _ = create_once(
            self.db,
            store.request_log,
            principal,
            "CreateNote",
            request_id,
            _create,
            lambda: str(uuid.uuid4()),
            request={"draft": draft, "attendees": attendees},
            audit_log=store.audit_log,
            patient_id=draft.patient_id or None,
        )
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
    ) -> store.StoredNote:
        """Edits a draft (only its author; only the fields in `changes`, an update mask)."""
        name = f"DocumentReference/{note_id}"
        note, _, _ = self._load_readable(principal, note_id, audit.UPDATE)
        with store.JOURNAL.refusals(self.db, principal, audit.UPDATE, name, note.patient_id):
            if note.author != principal.reference:
                raise PermissionDenied("only the author edits a draft", reason="NOT_THE_AUTHOR")
            documents.require_draft(note.status, name)
            if note.version != expected_version:
                raise StaleVersion(name, expected_version, note.version)
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
                sensitivity=note.sensitivity
                if changes.sensitivity is None
                else changes.sensitivity,
                shared_with=note.shared_with
                if changes.shared_with is None
                else changes.shared_with,
            )
            documents.check_draft(draft)
            draft = documents.labelled(draft)
            if note.relates_to or not labels.may_lower_labels(principal.role):
                # Labels only go up (kit/labels.py; 42 CFR 2.12(d)): an edit keeps at least the
                # draft's stored labels (an addendum's are its original's, test-matrix C7); only
                # a privacy officer lowers them.
                level, sensitivity = documents.inherited_labels(
                    draft.confidentiality, draft.sensitivity, _facts(note)
                )
            else:
                level, sensitivity = draft.confidentiality, draft.sensitivity
            now = datetime.now(UTC)
            revised = replace(
                note,
                version=note.version + 1,
                title=draft.title,
                text=draft.text,
                confidentiality=level,
                sensitivity=sensitivity,
                shared_with=draft.shared_with,
            )
            state = replace(_state(revised), updated_at=now)
            with UnitOfWork(self.db) as uow:
                updated = store.update_note(
                    uow.conn,
                    note,
                    {
                        "version": revised.version,
                        "title": revised.title,
                        "text": revised.text,
                        "confidentiality": revised.confidentiality,
                        "sensitivity": " ".join(sorted(revised.sensitivity)),
                        "shared_with": json.dumps(sorted(revised.shared_with)),
                        "updated_at": now,
                        "resource": fhir_map.document_reference(state),
                    },
                )
                if not updated:
                    latest = store.load_note(uow.conn, note_id)
                    raise StaleVersion(name, expected_version, latest.version if latest else 0)
                store.JOURNAL.audit(
                    uow,
                    principal,
                    audit.UPDATE,
                    resource=name,
                    patient_id=note.patient_id,
                    detail="draft edited",
                )
                uow.commit()
        return self._reload(note_id)

    def sign(self, principal: Principal, note_id: str, expected_version: int) -> NoteView:
        """Signs a draft: it becomes final and immutable; the signature is recorded as a
        Provenance (who, when) and `iopcare.notes.note.signed.v1` carries a reference to the
        note with its labels, never its text."""
        name = f"DocumentReference/{note_id}"
        note, _, _ = self._load_readable(principal, note_id, audit.UPDATE)
        with store.JOURNAL.refusals(self.db, principal, audit.UPDATE, name, note.patient_id):
            if note.author != principal.reference:
                # The signature attests authorship: only the author signs.
                raise PermissionDenied("only the author signs a note", reason="NOT_THE_AUTHOR")
            documents.require_draft(note.status, name)
            if note.version != expected_version:
                raise StaleVersion(name, expected_version, note.version)
            now = datetime.now(UTC)
            signed = replace(
                note,
                status="signed",
                version=note.version + 1,
                signed_at=now,
                signed_by=principal.reference,
            )
            resource = fhir_map.document_reference(_state(signed))
            provenance_id = str(uuid.uuid4())
            with UnitOfWork(self.db) as uow:
                if not store.update_note(
                    uow.conn,
                    note,
                    {
                        "status": "signed",
                        "version": signed.version,
                        "signed_at": now,
                        "signed_by": principal.reference,
                        "updated_at": now,
                        "resource": resource,
                    },
                ):
                    latest = store.load_note(uow.conn, note_id)
                    raise StaleVersion(name, expected_version, latest.version if latest else 0)
                store.insert_provenance(
                    uow.conn,
                    provenance_id,
                    note_id,
                    note.patient_id,
                    now,
                    fhir_map.signature_provenance(
                        provenance_id, note_id, signed.version, principal.reference, now
                    ),
                )
                store.JOURNAL.publish(
                    uow,
                    codes.EVENT_NOTE_SIGNED,
                    f"DocumentReference/{note_id}/_history/{signed.version}",
                    key=note.patient_id,
                    # Reference and labels only (issue 4: labelled content never in events).
                    data=fhir_map.document_reference(_state(signed), content=False),
                    at=now,
                )
                store.JOURNAL.audit(
                    uow,
                    principal,
                    audit.UPDATE,
                    resource=name,
                    patient_id=note.patient_id,
                    detail="signed",
                )
                uow.commit()
        self.notify_outbox()
        # The answer is the note just signed: its update is the audit record of this call (C11:
        # one record per access), so no second record of a read.
        with self.db.read() as conn:
            stored = store.load_note(conn, note_id)
            provenance = store.provenance_for(conn, note_id)
        if stored is None:  # pragma: no cover - committed above
            raise NotFound(f"{name} not found", resource=name)
        return NoteView(stored, [], provenance, False)

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
        with store.JOURNAL.refusals(self.db, principal, audit.CREATE, name, original.patient_id):
            documents.require_signed(original.status, name)
            if relation == "replaces" and original.author != principal.reference:
                # Documentation integrity: a note is corrected by its author; others append.
                raise PermissionDenied(
                    "only the author amends a note; others may add an addendum",
                    reason="NOT_THE_AUTHOR",
                )
        self._writer_basis(principal, audit.CREATE, "DocumentReference", original.patient_id)
        level, sensitivity = documents.inherited_labels("N", frozenset(), _facts(original))
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
            row = self._new_row(
                principal,
                draft,
                datetime.now(UTC),
                id=result_id,
                relates_to=note_id,
                relation=relation,
                relation_reason=reason,
            )
            store.insert_note(uow.conn, row)
            store.JOURNAL.audit(
                uow,
                principal,
                audit.CREATE,
                resource=f"DocumentReference/{result_id}",
                patient_id=original.patient_id,
                detail=f"{relation} {name}",
            )
            return result_id

        result_id, _ = create_once(
            self.db,
            store.request_log,
            principal,
            "AmendNote",
            request_id,
            _create,
            lambda: str(uuid.uuid4()),
            request={
                "note_id": note_id,
                "relation": relation,
                "reason": reason,
                "text": text,
                "title": title,
            },
            audit_log=store.audit_log,
            patient_id=original.patient_id,
        )
        return self._reload(result_id)

    def _reload(self, note_id: str) -> store.StoredNote:
        with self.db.read() as conn:
            note = store.load_note(conn, note_id)
        if note is None:  # pragma: no cover - committed above
            raise NotFound(f"DocumentReference/{note_id} not found")
        return note

    # Reading -----------------------------------------------------------------------------------
    def get(self, principal: Principal, note_id: str) -> NoteView:
        note, decision, viewer = self._load_readable(principal, note_id, audit.READ)
        with self.db.read() as conn:
            # Only the addenda the caller may read: the id of another author's draft or of a
            # psychotherapy addendum is itself something the caller is refused (test-matrix C1).
            related = [
                n.id
                for n in store.related_notes(conn, note_id)
                if privacy.may_read(viewer, _facts(n)).allowed
            ]
            provenance = store.provenance_for(conn, note_id)
        flag = "; FLAGGED for break-glass review" if decision.flagged else ""
        store.JOURNAL.audit_separately(
            self.db,
            principal,
            audit.READ,
            resource=f"DocumentReference/{note_id}",
            patient_id=note.patient_id,
            detail=f"{decision.reason}{flag}",
        )
        return NoteView(note, related, provenance, decision.flagged)

    def search(
        self,
        principal: Principal,
        patient_id: str,
        *,
        author: str = "",
        kinds: tuple[str, ...] = (),
        since: datetime | None = None,
        until: datetime | None = None,
        words: str = "",
        page_size: int = 0,
        page_token: str = "",
        recipient: str = "",
    ) -> tuple[list[store.StoredNote], str]:
        """A patient's notes, newest first, that the caller may read: refused notes are not hits
        (test-matrix C1: absent from search), and the search records how many were withheld.

        With a `recipient` (the FHIR gateway's service identity disclosing outside the program),
        the hits are the notes `disclose` would release to it, each as the copy that may leave."""
        if recipient:
            recipient = self._recipient(principal, recipient, "DocumentReference", patient_id)
        if recipient and principal.role not in DISCLOSING_ROLES:
            store.JOURNAL.audit_separately(
                self.db,
                principal,
                audit.SEARCH,
                resource="DocumentReference",
                patient_id=patient_id,
                outcome=audit.DENIED,
                detail=f"disclosure search for {recipient}: not a disclosing service",
            )
            raise PermissionDenied(
                "disclosure outside the program is done by the gateway's service identity",
                reason="NOT_A_DISCLOSING_SERVICE",
            )
        problems = FieldViolations()
        for i, kind in enumerate(kinds):
            if kind not in documents.NOTE_KINDS:
                problems.add(f"kinds[{i}]", f"one of {', '.join(documents.NOTE_KINDS)}")
        if len(words) > 500:
            problems.add("text", "at most 500 characters")
        if has_forbidden_characters(words):
            problems.add("text", FORBIDDEN_CHARACTERS)
        if len(author) > 200 or has_forbidden_characters(author):
            problems.add("author", "a reference such as Practitioner/{id}")
        if since and until and until <= since:
            problems.add("date_to", "after date_from")
        problems.raise_if_any("the search is invalid")
        size = paging.page_size(page_size)
        before_seq = seq_after(page_token)
        basis = teams.require_access(
            self.db,
            store.audit_log,
            self.access,
            principal,
            audit.SEARCH,
            "DocumentReference",
            patient_id,
        )
        viewer = self._viewer(principal, basis)
        query = store.NoteQuery(
            patient_id=patient_id,
            author=author,
            kinds=kinds,
            since=since,
            until=until,
            words=words,
            before_seq=before_seq,
            limit=size + 1,
        )
        visible: list[store.StoredNote] = []
        withheld: dict[str, int] = {}
        flagged = False
        exhausted = False
        scanned = 0
        now = datetime.now(UTC)
        with self.db.read() as conn:
            # Read in the transaction that decides, as `disclose` does.
            consents = (
                [
                    privacy.ConsentFacts(
                        c.recipient, c.status, c.period_start, c.period_end, c.scope
                    )
                    for c in store.consents_for(conn, patient_id)
                ]
                if recipient
                else []
            )
            # Refused notes are filtered after the query, so fetch until the page is full, in
            # batches of at least SEARCH_BATCH rows, and at most MAX_SCANNED rows per page: a
            # caller refused most of a patient's notes gets a short (even empty) page and a token
            # to go on from where the scan stopped, not one call that reads them all.
            while len(visible) <= size and not exhausted and scanned < MAX_SCANNED:
                query = replace(
                    query, limit=min(max(size + 1, SEARCH_BATCH), MAX_SCANNED - scanned)
                )
                batch = store.search_notes(conn, query)
                scanned += len(batch)
                exhausted = len(batch) < query.limit
                for note in batch:
                    if len(visible) > size:
                        break  # the page is full; the rest is the next page's
                    if recipient:
                        released = privacy.may_disclose(_facts(note), recipient, consents, now)
                        if released.allowed:
                            copy = fhir_map.disclosed(
                                note.resource, released.add_labels, released.notice
                            )
                            visible.append(replace(note, resource=copy))
                        else:
                            withheld[released.reason] = withheld.get(released.reason, 0) + 1
                    else:
                        decision = privacy.may_read(viewer, _facts(note))
                        if decision.allowed:
                            visible.append(note)
                            flagged = flagged or decision.flagged
                        else:
                            withheld[decision.reason] = withheld.get(decision.reason, 0) + 1
                    query = replace(query, before_seq=note.seq)
        token = ""
        if len(visible) > size:
            visible = visible[:size]
            token = paging.encode({"seq": visible[-1].seq})
        elif not exhausted and query.before_seq is not None:
            # The scan stopped before the end: go on after the last note it looked at.
            token = paging.encode({"seq": query.before_seq})
        if recipient:
            basis = f"{basis}; disclosed to {recipient}"
        self._audit_hits(principal, patient_id, basis, visible, withheld, flagged)
        return visible, token

    def _audit_hits(
        self,
        principal: Principal,
        patient_id: str,
        basis: str,
        hits: list[store.StoredNote],
        withheld: dict[str, int],
        flagged: bool,
    ) -> None:
        """One row for the search (its basis, and what the privacy rules withheld), one per hit:
        every note a search shows is a disclosure the audit can account for."""
        held = ", ".join(f"{n} {reason}" for reason, n in sorted(withheld.items()))
        detail = f"{len(hits)} hits; {basis}" + (f"; withheld {held}" if held else "")
        if flagged:
            detail += "; FLAGGED for break-glass review"
        now = datetime.now(UTC)
        row = {
            "time": now,
            "principal": principal.subject,
            "role": principal.role,
            "action": audit.SEARCH,
            "patient_id": patient_id,
            "outcome": audit.SUCCESS,
        }
        rows = [{**row, "resource": "DocumentReference", "detail": detail}]
        rows += [
            {**row, "resource": f"DocumentReference/{n.id}", "detail": "search hit"} for n in hits
        ]
        with UnitOfWork(self.db) as uow:
            store.JOURNAL.audit_rows(uow, rows)
            uow.commit()

    # Consent and disclosure --------------------------------------------------------------------
    def _consent_basis(
        self, principal: Principal, action: str, resource: str, patient_id: str
    ) -> str:
        """The basis on which the caller acts on a patient's consents: the patient themselves (a
        token of role `patient` whose launch context is that patient), else the care-team rule."""
        if principal.role != "patient":
            return teams.require_access(
                self.db, store.audit_log, self.access, principal, action, resource, patient_id
            )
        with store.JOURNAL.refusals(self.db, principal, action, resource, patient_id):
            if principal.patient_context != patient_id:
                raise PermissionDenied(
                    "a patient's token acts on that patient's own record only",
                    reason="NOT_THIS_PATIENT",
                )
        return "patient"

    def record_consent(
        self, principal: Principal, request_id: str, patient_id: str, given: ConsentInput
    ) -> store.StoredConsent:
        """Records the patient's consent to disclose their records to an identified recipient
        (42 CFR 2.31: the patient's signed consent naming the recipient). Only the patient, or
        program staff attesting the form the patient signed, record one (privacy
        `may_record_consent`); the signed form stays in the paper or e-signature system, and the
        consent says when it was signed and where the form is."""
        now = datetime.now(UTC)
        problems = FieldViolations()
        if not privacy.valid_client_id(given.recipient):
            problems.add(
                "recipient",
                "the recipient's client id (the subject of its tokens: letters, digits and "
                ".:_@/-, at most 200), not a display name",
            )
        if given.recipient_type not in privacy.RECIPIENT_TYPES:
            problems.add("recipient_type", f"one of {', '.join(privacy.RECIPIENT_TYPES)}")
        if len(given.recipient_display) > 200 or has_forbidden_characters(given.recipient_display):
            problems.add("recipient_display", "at most 200 characters of text")
        if given.scope not in CONSENT_SCOPES:
            problems.add("scope", f"one of {', '.join(CONSENT_SCOPES)}")
        if given.signed_document and not _signed_document(given.signed_document):
            problems.add(
                "signed_document", "DocumentReference/{id} or an https URL of the signed form"
            )
        if given.signed_at is not None and given.signed_at > now + SIGNATURE_CLOCK_SKEW:
            problems.add("signed_time", "not in the future")
        problems.raise_if_any("the consent is invalid")
        if given.period_start and given.period_end and given.period_end <= given.period_start:
            raise InvalidArgument(
                "the consent ends before it starts", [FieldViolation("end", "after start")]
            )
        basis = self._consent_basis(principal, audit.CREATE, "Consent", patient_id)
        author = privacy.ConsentAuthor(
            principal.subject, principal.role, principal.patient_context, basis
        )
        decision = privacy.may_record_consent(author, patient_id, given.recipient)
        if not decision.allowed:
            store.JOURNAL.audit_separately(
                self.db,
                principal,
                audit.CREATE,
                resource="Consent",
                patient_id=patient_id,
                outcome=audit.DENIED,
                detail=f"{decision.reason}; recipient {given.recipient}",
            )
            raise PermissionDenied(
                "a consent is the patient's: recorded by the patient, or by program staff on the "
                "patient's care team with the signed form, never by its recipient or an outside "
                f"system ({decision.reason})",
                reason=decision.reason,
            )
        if decision.reason == "attested":
            # 42 CFR 2.31(a)(8): the patient's signature. Staff record a form the patient signed,
            # so they say when it was signed and where the signed form is kept.
            missing = FieldViolations()
            if given.signed_at is None:
                missing.add("signed_time", "when the patient signed the consent form")
            if not given.signed_document:
                missing.add("signed_document", "the signed form on file (DocumentReference/{id})")
            missing.raise_if_any("staff record a consent with the patient's signed form")
            attester = principal.reference
        else:
            attester = f"Patient/{patient_id}"
        record = fhir_map.ConsentRecord(
            patient_id=patient_id,
            recipient=given.recipient,
            recipient_type=given.recipient_type,
            recipient_display=given.recipient_display,
            scope=given.scope,
            start=given.period_start,
            end=given.period_end,
            signed_at=given.signed_at or now,
            signed_document=given.signed_document,
            attester=attester,
            attested_at=now,
        )

        def _create(uow: UnitOfWork, consent_id: str) -> str:
            uow.conn.execute(
                store.consent.insert().values(
                    id=consent_id,
                    patient_id=patient_id,
                    recipient=given.recipient,
                    scope=given.scope,
                    status="active",
                    version=1,
                    period_start=given.period_start,
                    period_end=given.period_end,
                    recorded_by=principal.reference,
                    recorded_at=now,
                    resource=fhir_map.consent_resource(consent_id, 1, "active", record),
                )
            )
            store.JOURNAL.audit(
                uow,
                principal,
                audit.CREATE,
                resource=f"Consent/{consent_id}",
                patient_id=patient_id,
                detail=f"{basis}; {decision.reason}; recipient {given.recipient}",
            )
            return consent_id

        consent_id, _ = create_once(
            self.db,
            store.request_log,
            principal,
            "RecordConsent",
            request_id,
            _create,
            lambda: str(uuid.uuid4()),
            request={"patient_id": patient_id, "consent": given},
            audit_log=store.audit_log,
            patient_id=patient_id,
        )
        return self._consent(consent_id)

    def _consent(self, consent_id: str) -> store.StoredConsent:
        with self.db.read() as conn:
            found = store.load_consent(conn, consent_id)
        if found is None:
            raise NotFound(f"Consent/{consent_id} not found", resource=f"Consent/{consent_id}")
        return found

    def get_consent(self, principal: Principal, consent_id: str) -> store.StoredConsent:
        """One consent, for a caller who may see the patient's consents (audited)."""
        name = f"Consent/{consent_id}"
        with store.JOURNAL.refusals(self.db, principal, audit.READ, name):
            current = self._consent(consent_id)
            if not _shown_to(principal, current):
                raise NotFound(f"{name} not found", resource=name)
        basis = self._consent_basis(principal, audit.READ, name, current.patient_id)
        store.JOURNAL.audit_separately(
            self.db,
            principal,
            audit.READ,
            resource=name,
            patient_id=current.patient_id,
            detail=basis,
        )
        return current

    def revoke_consent(self, principal: Principal, consent_id: str) -> store.StoredConsent:
        """Revokes a consent (42 CFR 2.31(a)(6): the patient may revoke at any time); nothing is
        disclosed under it afterwards, because every disclosure reads the consents in the
        transaction that decides it."""
        name = f"Consent/{consent_id}"
        with store.JOURNAL.refusals(self.db, principal, audit.UPDATE, name):
            current = self._consent(consent_id)
        basis = self._consent_basis(principal, audit.UPDATE, name, current.patient_id)
        author = privacy.ConsentAuthor(
            principal.subject, principal.role, principal.patient_context, basis
        )
        decision = privacy.may_revoke_consent(author, current.patient_id, current.recipient)
        if not decision.allowed:
            with store.JOURNAL.refusals(self.db, principal, audit.UPDATE, name, current.patient_id):
                raise PermissionDenied(
                    "an outside system revokes only a consent naming itself",
                    reason=decision.reason,
                )
        now = datetime.now(UTC)
        with UnitOfWork(self.db) as uow:
            # Only an active consent is revoked (and only once, if two revocations race: the
            # status is part of the WHERE clause); revoking again changes nothing but is still
            # an access to the patient's record, audited like the first.
            done = uow.conn.execute(
                store.consent.update()
                .where((store.consent.c.id == consent_id) & (store.consent.c.status == "active"))
                .values(
                    status="inactive",
                    version=current.version + 1,
                    revoked_at=now,
                    resource=fhir_map.revised_consent(
                        current.resource, current.version + 1, "inactive", now
                    ),
                )
            )
            store.JOURNAL.audit(
                uow,
                principal,
                audit.UPDATE,
                resource=name,
                patient_id=current.patient_id,
                detail=f"{'revoked' if done.rowcount == 1 else 'already revoked'}; {basis}",
            )
            uow.commit()
        return self._consent(consent_id)

    def consents(self, principal: Principal, patient_id: str) -> list[store.StoredConsent]:
        """A patient's consents; an outside system sees only those naming it (whom else the
        patient lets see their records is none of its business: minimum necessary)."""
        if principal.role == "patient":
            self._consent_basis(principal, audit.SEARCH, "Consent", patient_id)
            with self.db.read() as conn:
                found = store.consents_for(conn, patient_id)
            store.JOURNAL.audit_separately(
                self.db,
                principal,
                audit.SEARCH,
                resource="Consent",
                patient_id=patient_id,
                detail=f"{len(found)} hits; patient",
            )
            return found
        return teams.audited_search(
            self.db,
            store.audit_log,
            self.access,
            principal,
            "Consent",
            patient_id,
            lambda conn: [
                c for c in store.consents_for(conn, patient_id) if _shown_to(principal, c)
            ],
        )

    def _recipient(
        self, principal: Principal, asked: str, resource: str, patient_id: str | None
    ) -> str:
        """The recipient of a disclosure: always the caller itself. The request's field, if
        set, may only repeat the caller's subject: a token naming another recipient would read
        what that recipient's consent releases (42 CFR 2.31, 2.33: disclosure only to the
        recipient the patient named)."""
        if asked and asked != principal.subject:
            with store.JOURNAL.refusals(self.db, principal, audit.READ, resource, patient_id):
                raise PermissionDenied(
                    "the recipient of a disclosure is the caller itself; name no other",
                    reason="RECIPIENT_NOT_CALLER",
                )
        return principal.subject

    def disclose(self, principal: Principal, note_id: str, recipient: str) -> str:
        """A note for disclosure to the caller, outside the program (an outside EHR's token the
        FHIR gateway forwards; `recipient` may only repeat the caller's subject): the
        DocumentReference with its content, its labels and what the
        disclosure obliges (NORDSCLCD and the 42 CFR 2.32 notice for Part 2 records), or
        PERMISSION_DENIED (reason NO_ACTIVE_CONSENT, PSYCHOTHERAPY_NOTE, ...). Audited either
        way with the recipient."""
        name = f"DocumentReference/{note_id}"
        recipient = self._recipient(principal, recipient, name, None)
        with store.JOURNAL.refusals(self.db, principal, audit.READ, name):
            if principal.role not in DISCLOSING_ROLES:
                raise PermissionDenied(
                    "disclosure outside the program is done by the gateway's service identity",
                    reason="NOT_A_DISCLOSING_SERVICE",
                )
            with self.db.read() as conn:
                note = store.load_note(conn, note_id)
                if note is None:
                    raise NotFound(f"{name} not found", resource=name)
                consents = [
                    privacy.ConsentFacts(
                        c.recipient, c.status, c.period_start, c.period_end, c.scope
                    )
                    for c in store.consents_for(conn, note.patient_id)
                ]
        decision = privacy.may_disclose(_facts(note), recipient, consents, datetime.now(UTC))
        detail = f"disclose to {recipient}: {decision.reason}"
        if not decision.allowed:
            store.JOURNAL.audit_separately(
                self.db,
                principal,
                audit.READ,
                resource=name,
                patient_id=note.patient_id,
                outcome=audit.DENIED,
                detail=detail,
            )
            raise PermissionDenied(
                f"the note may not be disclosed to this recipient ({decision.reason})",
                reason=decision.reason,
            )
        store.JOURNAL.audit_separately(
            self.db,
            principal,
            audit.READ,
            resource=name,
            patient_id=note.patient_id,
            detail=detail,
        )
        return fhir_map.disclosed(note.resource, decision.add_labels, decision.notice)
