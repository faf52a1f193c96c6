"""The privacy rules of clinical notes as a table: role x label x consent (issue 4, item 4), and
the note lifecycle rules. Pure functions: no database, no broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from iopcare.kit import privacy
from iopcare.kit.errors import FailedPrecondition, InvalidArgument
from iopcare.kit.privacy import ConsentFacts, NoteFacts, Viewer
from iopcare.notes.domain import documents
from iopcare.notes.domain.documents import NoteDraft

AUTHOR = "Practitioner/th-1"
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def note(
    sensitivity: str = "",
    confidentiality: str = "N",
    kind: str = "therapy",
    author_role: str = "therapist",
    status: str = "signed",
    shared_with: str = "",
) -> NoteFacts:
    return NoteFacts(
        author=AUTHOR,
        author_role=author_role,
        kind=kind,
        status=status,
        confidentiality=confidentiality,
        sensitivity=frozenset(sensitivity.split()),
        shared_with=frozenset(shared_with.split()),
    )


def viewer(role: str, who: str = "x-1", basis: str = "care-team") -> Viewer:
    return Viewer(f"Practitioner/{who}", role, basis)


THE_AUTHOR = Viewer(AUTHOR, "therapist", "care-team")
PSYCHIATRIST = viewer("psychiatrist", "psy-1")
DIETITIAN = viewer("dietitian", "diet-1")
PHYSICIAN = viewer("physician", "doc-1")
CASE_MANAGER = viewer("case-manager", "cm-1")
ADMIN = Viewer("Device/admin", "admin", "role:admin")
SERVICE = Viewer("Device/service:careplan", "service", "role:service")
BREAK_GLASS = viewer("physician", "er-1", "break-glass")

# (viewer, note, allowed, reason)
READ_TABLE = [
    # Psychotherapy notes: the author, or whom the author shared them with (45 CFR 164.508(a)(2)).
    (THE_AUTHOR, note("PSYTHPN"), True, "author"),
    (PSYCHIATRIST, note("PSYTHPN"), False, "PSYCHOTHERAPY_NOTE"),
    (PSYCHIATRIST, note("PSYTHPN", shared_with="Practitioner/psy-1"), True, "shared-by-author"),
    (DIETITIAN, note("PSYTHPN"), False, "PSYCHOTHERAPY_NOTE"),
    (ADMIN, note("PSYTHPN"), False, "PSYCHOTHERAPY_NOTE"),
    (BREAK_GLASS, note("PSYTHPN"), False, "PSYCHOTHERAPY_NOTE"),
    (SERVICE, note("PSYTHPN"), False, "PSYCHOTHERAPY_NOTE"),
    # Part 2 (SUD/ETH): the treating team; not administrators or other services (42 CFR 2.12).
    (PSYCHIATRIST, note("SUD", "R"), True, "care-team"),
    (CASE_MANAGER, note("ETH", "R"), True, "care-team"),
    (ADMIN, note("SUD", "R"), False, "LABELLED_CONTENT"),
    (SERVICE, note("SUD", "R"), False, "LABELLED_CONTENT"),
    (BREAK_GLASS, note("SUD", "R", kind="progress", author_role="physician"), True, "break-glass"),
    # Narrowed roles: own discipline, intake and discharge (45 CFR 164.502(b)).
    (DIETITIAN, note(), False, "OTHER_DISCIPLINE"),
    (DIETITIAN, note(kind="nutrition", author_role="dietitian"), True, "care-team"),
    (DIETITIAN, note(kind="intake", author_role="psychiatrist"), True, "care-team"),
    (PHYSICIAN, note(kind="psychiatric", author_role="psychiatrist"), False, "OTHER_DISCIPLINE"),
    (PHYSICIAN, note(kind="progress", author_role="nurse"), True, "care-team"),
    (PHYSICIAN, note(kind="discharge", author_role="psychiatrist"), True, "care-team"),
    (PSYCHIATRIST, note(kind="nutrition", author_role="dietitian"), True, "care-team"),
    # Very restricted: the author and named readers only.
    (PSYCHIATRIST, note(confidentiality="V"), False, "VERY_RESTRICTED"),
    (
        PSYCHIATRIST,
        note(confidentiality="V", shared_with="Practitioner/psy-1"),
        True,
        "shared-by-author",
    ),
    # Drafts: the author only.
    (PSYCHIATRIST, note(status="draft"), False, "DRAFT_OF_ANOTHER_AUTHOR"),
    (THE_AUTHOR, note(status="draft"), True, "author"),
    # Normal notes: the team. The administrator runs the program, not the treatment: no notes.
    (ADMIN, note(), False, "NOT_TREATING"),
    (ADMIN, note(kind="intake"), False, "NOT_TREATING"),
    (Viewer("Practitioner/adm-1", "admin", "care-team"), note(), False, "NOT_TREATING"),
    (CASE_MANAGER, note(), True, "care-team"),
]


@pytest.mark.parametrize(("who", "facts", "allowed", "reason"), READ_TABLE)
def test_who_reads_which_note(who: Viewer, facts: NoteFacts, allowed: bool, reason: str) -> None:
    decision = privacy.may_read(who, facts)
    assert (decision.allowed, decision.reason) == (allowed, reason)


def test_break_glass_on_part2_content_is_flagged_for_review() -> None:
    decision = privacy.may_read(
        BREAK_GLASS, note("SUD", "R", kind="progress", author_role="physician")
    )
    assert decision.allowed and decision.flagged
    assert not privacy.may_read(PSYCHIATRIST, note("SUD", "R")).flagged


EHR = "Organization/outside-ehr"
ACTIVE = ConsentFacts(EHR, "active")
SUD_ONLY = ConsentFacts(EHR, "active", scope="sud")
REVOKED = ConsentFacts(EHR, "inactive")
EXPIRED = ConsentFacts(EHR, "active", end=NOW - timedelta(days=1))
NOT_YET = ConsentFacts(EHR, "active", start=NOW + timedelta(days=1))
OTHER_RECIPIENT = ConsentFacts("Organization/someone-else", "active")

# (note, consents, allowed, reason, redisclosure notice expected)
DISCLOSE_TABLE = [
    (note("SUD", "R"), [], False, "NO_ACTIVE_CONSENT", False),
    (note("SUD", "R"), [ACTIVE], True, "consent", True),
    (note("ETH", "R"), [SUD_ONLY], True, "consent", True),
    (note("SUD", "R"), [REVOKED], False, "NO_ACTIVE_CONSENT", False),
    (note("SUD", "R"), [EXPIRED], False, "NO_ACTIVE_CONSENT", False),
    (note("SUD", "R"), [NOT_YET], False, "NO_ACTIVE_CONSENT", False),
    (note("SUD", "R"), [OTHER_RECIPIENT], False, "NO_ACTIVE_CONSENT", False),
    (note("PSYTHPN", "R"), [ACTIVE], False, "PSYCHOTHERAPY_NOTE", False),
    (note(confidentiality="V"), [ACTIVE], False, "VERY_RESTRICTED", False),
    (note("PSY", "R"), [], False, "NO_ACTIVE_CONSENT", False),
    (note("PSY", "R"), [SUD_ONLY], False, "NO_ACTIVE_CONSENT", False),
    (note("PSY", "R"), [ACTIVE], True, "consent", False),
    (note(), [], True, "treatment", False),
    (note(status="draft"), [ACTIVE], False, "NOT_SIGNED", False),
    # Subtypes rank as their class (issue 10, defect 9): OPIOIDUD and ETHUD are SUD, so Part 2.
    (note("OPIOIDUD", "R"), [], False, "NO_ACTIVE_CONSENT", False),
    (note("OPIOIDUD", "R"), [SUD_ONLY], True, "consent", True),
    (note("ETHUD", "R"), [SUD_ONLY], True, "consent", True),
    (note("ALCUD", "R"), [ACTIVE], True, "consent", True),
    (note("MH", "R"), [SUD_ONLY], False, "NO_ACTIVE_CONSENT", False),
    (note("MH", "R"), [ACTIVE], True, "consent", False),
    # Classes with their own (state) rules stay in the program, consent or not.
    (note("HIV", "R"), [ACTIVE], False, "NO_DISCLOSURE_RULE", False),
    (note("SDV", "R"), [ACTIVE], False, "NO_DISCLOSURE_RULE", False),
]


@pytest.mark.parametrize(("facts", "consents", "allowed", "reason", "notice"), DISCLOSE_TABLE)
def test_what_leaves_the_program_and_with_what(
    facts: NoteFacts, consents: list[ConsentFacts], allowed: bool, reason: str, notice: bool
) -> None:
    disclosure = privacy.may_disclose(facts, EHR, consents, NOW)
    assert (disclosure.allowed, disclosure.reason) == (allowed, reason)
    assert (privacy.NO_REDISCLOSURE in disclosure.add_labels) == notice
    assert (disclosure.notice == privacy.REDISCLOSURE_NOTICE) == notice


def test_sensitive_notes_are_at_least_restricted() -> None:
    assert privacy.effective_confidentiality("N", {"SUD"}) == "R"
    assert privacy.effective_confidentiality("V", {"SUD"}) == "V"
    assert privacy.effective_confidentiality("N", set()) == "N"


def test_an_addendum_keeps_the_strictest_labels_of_its_original() -> None:
    level, labels = documents.inherited_labels("N", frozenset({"PSY"}), note("SUD", "R"))
    assert level == "R" and labels == {"PSY", "SUD"}


def test_a_draft_with_bad_fields_reports_every_violation() -> None:
    bad = NoteDraft(
        patient_id="p",
        kind="diary",
        title="t" * 300,
        text="",
        shared_text="shared",
        confidentiality="X",
        sensitivity=frozenset({"HIV"}),
        shared_with=frozenset({"Patient/p"}),
    )
    with pytest.raises(InvalidArgument) as caught:
        documents.check_draft(bad)
    fields = sorted({v.field for v in caught.value.violations})
    assert fields == ["kind", "security", "shared_text", "shared_with", "title"]


def test_only_drafts_change_and_only_signed_notes_are_amended() -> None:
    documents.require_draft("draft", "DocumentReference/1")
    with pytest.raises(FailedPrecondition) as caught:
        documents.require_draft("signed", "DocumentReference/1")
    assert caught.value.reason == "NOTE_NOT_DRAFT"
    with pytest.raises(FailedPrecondition):
        documents.require_signed("draft", "DocumentReference/1")
    with pytest.raises(InvalidArgument):
        documents.check_amendment("corrects", "", "text")


def test_every_note_kind_has_a_loinc_document_code() -> None:
    assert documents.NOTE_KINDS["progress"][0] == "11506-3"
    assert documents.NOTE_KINDS["discharge"][0] == "18842-5"
    assert len({code for code, _ in documents.NOTE_KINDS.values()}) == len(documents.NOTE_KINDS)


@pytest.mark.parametrize("bad", ["a\x00b", "\x07", "esc\x1b[2J", "\x7f\x00"])
def test_control_characters_are_refused_but_tabs_and_newlines_kept(bad: str) -> None:
    draft = NoteDraft(patient_id="p", kind="progress", title=bad, text=bad)
    with pytest.raises(InvalidArgument) as caught:
        documents.check_draft(draft)
    assert sorted(v.field for v in caught.value.violations) == ["text", "title"]
    with pytest.raises(InvalidArgument):
        documents.check_amendment("appends", bad, "text")
    documents.check_draft(NoteDraft(patient_id="p", kind="progress", title="t", text="a\tb\r\nc"))


def test_every_v3_sensitivity_label_is_known_and_subtypes_imply_their_class() -> None:
    for label in ("ETH", "SUD", "OPIOIDUD", "ETHUD", "PSY", "PSYTHPN", "MH", "HIV", "SDV", "SEX"):
        assert privacy.check_labels("R", [label]) == [], label
    assert privacy.check_labels("N", ["NOTALABEL"])
    assert privacy.check_labels("X", [])
    assert privacy.implied(["OPIOIDUD"]) == {"OPIOIDUD", "SUD", "BH"}
    assert privacy.implied(["PSYTHPN"]) >= {"PSY", "MH"}
    assert privacy.is_part2(["OPIOIDUD"]) and privacy.is_part2(["ETH"])
    assert not privacy.is_part2(["PSY", "HIV"])
    # Any sensitivity label raises confidentiality to at least R; V stays V.
    assert privacy.effective_confidentiality("N", ["OPIOIDUD"]) == "R"
    assert privacy.effective_confidentiality("L", ["SEX"]) == "R"
    assert privacy.effective_confidentiality("V", ["SUD"]) == "V"
    # Stored space-separated in 100 characters: a bounded number of labels.
    assert privacy.check_labels("R", sorted(privacy.SENSITIVITY))


def test_a_labelled_note_of_any_class_is_withheld_from_non_treating_identities() -> None:
    for label in ("OPIOIDUD", "HIV", "SEX", "MH"):
        decision = privacy.may_read(ADMIN, note(label, "R"))
        assert (decision.allowed, decision.reason) == (False, "LABELLED_CONTENT"), label
