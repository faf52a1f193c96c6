"""Clinical notes: kinds, what a note must be, and its lifecycle (pure; no I/O).

draft -> signed (final and immutable: the signature records who and when) -> addenda and
amendments, each a new note that references the original with a reason (FHIR
DocumentReference.relatesTo `appends` or `replaces`); the original is never overwritten. A draft
can be discarded by its author (entered-in-error); a signed note only by an amendment.
"""

from __future__ import annotations

from dataclasses import dataclass

from iopcare.kit import privacy
from iopcare.kit.errors import FailedPrecondition, FieldViolations
from iopcare.notes.domain.text import FORBIDDEN_CHARACTERS, has_forbidden_characters

LOINC = "http://loinc.org"

#: Note kinds and their LOINC document type codes (LOINC Document Ontology).
NOTE_KINDS: dict[str, tuple[str, str]] = {
    "progress": ("11506-3", "Progress note"),
    "psychiatric": ("28627-8", "Psychiatry Progress note"),
    "therapy": ("34904-3", "Mental health Progress note"),
    "nutrition": ("34801-1", "Nutrition and dietetics Note"),
    "group": ("34787-2", "Mental health Group counseling note"),
    "intake": ("78306-8", "Mental health History and physical note"),
    "discharge": ("18842-5", "Discharge summary"),
}
KIND_BY_CODE = {code: kind for kind, (code, _) in NOTE_KINDS.items()}

#: DocumentReference.relatesTo codes an addendum or amendment uses.
RELATIONS = ("appends", "replaces")

MAX_TEXT = 100_000
MAX_TITLE = 200
MAX_REASON = 2_000
MAX_ATTENDEES = 30
MAX_SHARED_WITH = 20


@dataclass(frozen=True)
class NoteDraft:
    """What an author writes: the content and the labels of one note about one patient."""

    patient_id: str
    kind: str
    title: str
    text: str
    #: A group note's part shared by every attendee's note (empty otherwise).
    shared_text: str = ""
    confidentiality: str = "N"
    sensitivity: frozenset[str] = frozenset()
    #: Psychotherapy and very restricted notes: who else the author lets read them.
    shared_with: frozenset[str] = frozenset()


def check_draft(draft: NoteDraft, prefix: str = "") -> None:
    problems = FieldViolations()
    if draft.kind not in NOTE_KINDS:
        problems.add(f"{prefix}kind", f"one of {', '.join(NOTE_KINDS)}")
    if not draft.text.strip() and not draft.shared_text.strip():
        problems.add(f"{prefix}text", "a note needs text")
    if len(draft.text) > MAX_TEXT or len(draft.shared_text) > MAX_TEXT:
        problems.add(f"{prefix}text", f"at most {MAX_TEXT} characters")
    if len(draft.title) > MAX_TITLE:
        problems.add(f"{prefix}title", f"at most {MAX_TITLE} characters")
    for name, value in (
        ("title", draft.title),
        ("text", draft.text),
        ("shared_text", draft.shared_text),
    ):
        if has_forbidden_characters(value):
            problems.add(f"{prefix}{name}", FORBIDDEN_CHARACTERS)
    if draft.shared_text and draft.kind != "group":
        problems.add(f"{prefix}shared_text", "only group notes have a shared part")
    for problem in privacy.check_labels(draft.confidentiality, draft.sensitivity):
        problems.add(f"{prefix}security", problem)
    if len(draft.shared_with) > MAX_SHARED_WITH:
        problems.add(f"{prefix}shared_with", f"at most {MAX_SHARED_WITH} readers")
    for reader in draft.shared_with:
        if (
            not reader.startswith("Practitioner/")
            or len(reader) > 100
            or has_forbidden_characters(reader)
            or any(c.isspace() for c in reader)
        ):
            problems.add(f"{prefix}shared_with", "references of the form Practitioner/{id}")
            break
    problems.raise_if_any("the note is invalid")


def labelled(draft: NoteDraft) -> NoteDraft:
    """The draft with its confidentiality raised to what its sensitivity labels imply."""
    level = privacy.effective_confidentiality(draft.confidentiality, draft.sensitivity)
    if level == draft.confidentiality:
        return draft
    return NoteDraft(
        draft.patient_id,
        draft.kind,
        draft.title,
        draft.text,
        draft.shared_text,
        level,
        draft.sensitivity,
        draft.shared_with,
    )


def require_draft(status: str, name: str) -> None:
    """Only a draft can be edited or signed: a signed note is final (it changes only through an
    addendum or amendment, which is a new note)."""
    if status != "draft":
        raise FailedPrecondition(f"{name} is {status}, not a draft", reason="NOTE_NOT_DRAFT")


def require_signed(status: str, name: str) -> None:
    """Addenda and amendments refer to a signed note; a draft is simply edited."""
    if status != "signed":
        raise FailedPrecondition(f"{name} is {status}, not signed", reason="NOTE_NOT_SIGNED")


def check_amendment(relation: str, reason: str, text: str, title: str = "") -> None:
    problems = FieldViolations()
    for name, value in (("reason", reason), ("text", text), ("title", title)):
        if has_forbidden_characters(value):
            problems.add(name, FORBIDDEN_CHARACTERS)
    if relation not in RELATIONS:
        problems.add("relation", f"one of {', '.join(RELATIONS)}")
    if not reason.strip():
        problems.add("reason", "an addendum or amendment needs a reason")
    if len(reason) > MAX_REASON:
        problems.add("reason", f"at most {MAX_REASON} characters")
    if not text.strip():
        problems.add("text", "an addendum or amendment needs text")
    if len(text) > MAX_TEXT:
        problems.add("text", f"at most {MAX_TEXT} characters")
    problems.raise_if_any("the addendum is invalid")


def inherited_labels(
    confidentiality: str, sensitivity: frozenset[str], original: privacy.NoteFacts
) -> tuple[str, frozenset[str]]:
    """An addendum or amendment is derived from its original: it carries at least the original's
    labels (test-matrix C7: derived data carries the strictest labels of its sources)."""
    order = {c: i for i, c in enumerate(privacy.CONFIDENTIALITY)}
    level = max(confidentiality or "N", original.confidentiality, key=lambda c: order.get(c, 0))
    return level, sensitivity | original.sensitivity
