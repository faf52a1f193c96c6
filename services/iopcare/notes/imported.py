"""Documents written outside the program, taken into the patient's record (ADR 0030).

A hospital's discharge summary arriving with a `$handoff` is not a draft of anyone here: it is
final when it arrives. It becomes a note of kind `discharge` (LOINC 18842-5) with status `signed`
(immutable; changed only by an amendment, as any signed note), `context.encounter` naming the stay
it arrived with, the sender's author as a display (and the registered Practitioner when there is
one), and the sender's labels. Only system identities (an EHR sending a handoff) and
administrators take documents in; clinicians write their own notes (`clinical`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from iopcare.kit import audit, fhir, privacy
from iopcare.kit.access import EHR_ROLE
from iopcare.kit.auth import Principal
from iopcare.kit.db import UnitOfWork
from iopcare.kit.errors import FieldViolation, InvalidArgument, PermissionDenied
from iopcare.notes import fhir_map, once, store
from iopcare.notes.domain import documents
from iopcare.notes.domain.documents import NoteDraft
from iopcare.notes.domain.text import FORBIDDEN_CHARACTERS, has_forbidden_characters
from iopcare.notes.usecase import UseCase, audited

#: Who takes a document in: an EHR (system) or the program's administrator.
IMPORTER_ROLES = frozenset({EHR_ROLE, "admin"})
MAX_DISPLAY = 200
MAX_IDENTIFIER = 400


@dataclass(frozen=True)
class ImportedDocument:
    """A document from outside: its content and labels, and where it came from."""

    draft: NoteDraft
    episode_id: str = ""
    #: `Practitioner/{id}` of the registered author (empty: none).
    author: str = ""
    author_display: str = ""
    written_at: datetime | None = None
    #: The sender's identifier of the document, `system|value` (empty: none).
    source_identifier: str = ""


#: What a document from outside may be: a discharge summary (a step-down's), an intake summary.
IMPORTED_KINDS = ("discharge", "intake")


def check(document: ImportedDocument) -> None:
    """What an imported document must be, besides being a valid note (pure)."""
    documents.check_draft(document.draft, "note.")
    problems: list[FieldViolation] = []
    if document.draft.kind not in IMPORTED_KINDS or document.draft.shared_with:
        problems.append(
            FieldViolation(
                "note.kind", f"an imported document is one of {', '.join(IMPORTED_KINDS)}"
            )
        )
    if privacy.PSYCHOTHERAPY in document.draft.sensitivity or document.draft.confidentiality == "V":
        # Author-only records: an outside document cannot make anyone here their author.
        problems.append(
            FieldViolation("note.sensitivity", "an imported document is no psychotherapy or V note")
        )
    if document.author and not document.author.startswith("Practitioner/"):
        problems.append(FieldViolation("author", "a reference of the form Practitioner/{id}"))
    for name, value, limit in (
        ("author", document.author, 100),
        ("author_display", document.author_display, MAX_DISPLAY),
        ("episode_id", document.episode_id, 100),
        ("source_identifier", document.source_identifier, MAX_IDENTIFIER),
    ):
        if len(value) > limit:
            problems.append(FieldViolation(name, f"at most {limit} characters"))
        if has_forbidden_characters(value):
            problems.append(FieldViolation(name, FORBIDDEN_CHARACTERS))
    if problems:
        raise InvalidArgument("the document cannot be taken in", problems)


def resource(document: ImportedDocument, state: fhir_map.NoteState) -> str:
    """The DocumentReference of an imported document: a note's, with where it came from."""
    data: dict[str, Any] = json.loads(fhir_map.document_reference(state))
    data["docStatus"] = "final"
    author: dict[str, Any] = {}
    if document.author:
        author["reference"] = document.author
    if document.author_display:
        author["display"] = document.author_display
    data["author"] = [author] if author else [{"display": "the sending organization"}]
    if document.written_at is not None:
        data["date"] = fhir.instant(document.written_at)
    if document.episode_id:
        data["context"] = {"encounter": [{"reference": f"EpisodeOfCare/{document.episode_id}"}]}
    if document.source_identifier:
        system, _, value = document.source_identifier.rpartition("|")
        data["masterIdentifier"] = {**({"system": system} if system else {}), "value": value}
    return fhir.to_json(fhir.parse_resource(data, "DocumentReference"))


def import_document(
    case: UseCase, principal: Principal, request_id: str, document: ImportedDocument
) -> store.StoredNote:
    """Stores the document as a signed note, once per `request_id`."""
    name = "DocumentReference"
    patient_id = document.draft.patient_id
    check(document)
    document = ImportedDocument(
        documents.labelled(document.draft),
        document.episode_id,
        document.author,
        document.author_display,
        document.written_at,
        document.source_identifier,
    )
    basis = case.basis(principal, audit.CREATE, name, patient_id)
    if principal.role not in IMPORTER_ROLES:
        case.audit_access(
            principal, audit.CREATE, name, patient_id, "NOT_AN_IMPORTER", outcome=audit.DENIED
        )
        raise PermissionDenied(
            "documents from outside are taken in by a system identity (an EHR) or an "
            "administrator; clinicians write notes",
            reason="NOT_AN_IMPORTER",
        )

    def _create(uow: UnitOfWork, note_id: str) -> str:
        store.insert_note(uow.conn, _row(document, note_id, principal, datetime.now(UTC)))
        audited(
            uow,
            principal,
            audit.CREATE,
            f"DocumentReference/{note_id}",
            patient_id,
            f"imported document; {basis}",
        )
        return note_id

    asked = once.Asked(principal, "ImportDocument", request_id, {"document": document})
    note_id, _ = once.create(case.db, asked, _create, patient_id)
    with case.db.read() as conn:
        found = store.load_note(conn, note_id)
    assert found is not None  # committed above
    return found


def _row(
    document: ImportedDocument, note_id: str, principal: Principal, now: datetime
) -> dict[str, Any]:
    """The notes row of an imported document: a signed note of its kind, authored by the
    importing identity, with its DocumentReference (which names the sender's author)."""
    draft = document.draft
    # The importing identity holds the row (its author rights): a sender's clinician named in
    # the document is shown in the DocumentReference, never made an author of a note here.
    author = principal.reference
    state = fhir_map.NoteState(
        id=note_id,
        version=1,
        patient_id=draft.patient_id,
        kind=draft.kind,
        author=author,
        status="signed",
        title=draft.title,
        text=draft.text,
        shared_text="",
        confidentiality=draft.confidentiality,
        sensitivity=draft.sensitivity,
        created_at=now,
        updated_at=now,
    )
    return {
        "id": note_id,
        "version": 1,
        "author": author,
        "author_role": principal.role,
        "status": "signed",
        "created_at": now,
        "updated_at": now,
        "patient_id": draft.patient_id,
        "kind": draft.kind,
        "title": draft.title,
        "text": draft.text,
        "shared_text": "",
        "confidentiality": draft.confidentiality,
        "type_code": documents.NOTE_KINDS[draft.kind][0],
        "sensitivity": " ".join(sorted(draft.sensitivity)),
        "shared_with": "[]",
        "resource": resource(document, state),
    }


def reference_only(resource_json: str) -> str:
    """The DocumentReference as a reference and its labels, without the content (what the sender
    gets back: a system identity is no treating reader of labelled content)."""
    data: dict[str, Any] = json.loads(resource_json)
    data.pop("description", None)
    data["content"] = [
        {
            "attachment": {
                "contentType": "text/plain; charset=utf-8",
                "url": f"DocumentReference/{data['id']}",
            }
        }
    ]
    return fhir.to_json(fhir.parse_resource(data, "DocumentReference"))
