"""Clinical notes under review, on both databases: what a reader of a psychotherapy note may not
pass on, what events and lists may not name, input that must be refused with field details,
idempotent requests, consent revocation audited, and bounded search work."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from sqlalchemy import select

from iopcare.kit import topics
from iopcare.kit.runtime import ServiceRuntime
from iopcare.kit.settings import Settings
from iopcare.notes import note_search
from iopcare.notes import store as notes_store
from iopcare.notes.v1 import notes_service_pb2 as nt
from iopcare.notes.v1 import notes_service_pb2_grpc as nt_grpc
from tests.support import harness
from tests.support.notes import (
    as_,
    error_reason,
    field_violations,
)


def _create(notes: Any, md: Any, patient: str, kind: str, text: str, **fields: Any) -> nt.Note:
    note = nt.NoteInput(patient_id=patient, kind=kind, text=text, **fields)
    (one,) = notes.CreateNote(
        nt.CreateNoteRequest(request_id=str(uuid.uuid4()), note=note), metadata=md
    ).notes
    return one


def _signed(notes: Any, md: Any, patient: str, kind: str, text: str, **fields: Any) -> nt.Note:
    d = _create(notes, md, patient, kind, text, **fields)
    return notes.SignNote(nt.SignNoteRequest(id=d.id, expected_version=d.version), metadata=md).note


def _code(call: Any) -> tuple[str, str, list[str]]:
    try:
        call()
    except grpc.RpcError as exc:
        return exc.code().name, error_reason(exc), field_violations(exc)
    return "OK", "", []


def test_an_addendum_to_a_psychotherapy_note_cannot_be_shared_beyond_its_original(
    notes: nt_grpc.NotesServiceStub, settings: Settings, patient: str
) -> None:
    """A reader the author shared a psychotherapy note with writes an addendum (its title names
    the original's); they must not open it to someone the author never chose."""
    therapist = as_(settings, "therapist", "th-1")
    psy = as_(settings, "psychiatrist", "psy-1")
    diet = as_(settings, "dietitian", "diet-1")
    original = _signed(
        notes,
        therapist,
        patient,
        "therapy",
        "session content",
        title="Trauma disclosure",
        sensitivity=["PSYTHPN"],
        shared_with=["Practitioner/psy-1"],
    )
    addendum = notes.AmendNote(
        nt.AmendNoteRequest(
            request_id=str(uuid.uuid4()), id=original.id, relation="appends", reason="r", text="x"
        ),
        metadata=psy,
    ).note
    widen = nt.UpdateNoteRequest(
        id=addendum.id,
        expected_version=addendum.version,
        note=nt.NoteInput(shared_with=["Practitioner/diet-1"]),
        update_mask=FieldMask(paths=["shared_with"]),
    )
    code, _, fields = _code(lambda: notes.UpdateNote(widen, metadata=psy))
    assert (code, fields) == ("INVALID_ARGUMENT", ["shared_with"])
    signed = notes.SignNote(
        nt.SignNoteRequest(id=addendum.id, expected_version=addendum.version), metadata=psy
    ).note
    assert list(signed.shared_with) == ["Practitioner/th-1"]
    code, reason, _ = _code(lambda: notes.GetNote(nt.GetNoteRequest(id=addendum.id), metadata=diet))
    assert (code, reason) == ("PERMISSION_DENIED", "PSYCHOTHERAPY_NOTE")
    assert notes.GetNote(nt.GetNoteRequest(id=addendum.id), metadata=therapist).note.text == "x"


def test_control_characters_and_forged_tokens_are_invalid_arguments_on_both_databases(
    notes: nt_grpc.NotesServiceStub, settings: Settings, patient: str
) -> None:
    """A NUL was stored on SQLite (and then in events other services refuse to parse), made
    PostgreSQL fail with a bare DataError, and broke an FTS5 search (UNAVAILABLE); a page token
    beyond 64 bits was INTERNAL on SQLite. Each is the client's mistake: INVALID_ARGUMENT naming
    the field, and nothing written."""
    psy = as_(settings, "psychiatrist", "psy-1")
    signed = _signed(notes, psy, patient, "psychiatric", "sleep is better")
    nul = "a\x00b"

    def create(**fields: Any) -> None:
        note = nt.NoteInput(patient_id=patient, kind="psychiatric", **{"text": "t", **fields})
        notes.CreateNote(
            nt.CreateNoteRequest(request_id=str(uuid.uuid4()), note=note), metadata=psy
        )

    def post(**fields: Any) -> None:
        request = nt.PostMessageRequest(request_id=str(uuid.uuid4()), patient_id=patient, **fields)
        notes.PostMessage(request, metadata=psy)

    def search(**fields: Any) -> None:
        notes.SearchNotes(nt.SearchNotesRequest(patient_id=patient, **fields), metadata=psy)

    def amend(**fields: Any) -> None:
        request = nt.AmendNoteRequest(
            request_id=str(uuid.uuid4()),
            id=signed.id,
            relation="appends",
            **{"reason": "r", "text": "t", **fields},
        )
        notes.AmendNote(request, metadata=psy)

    forged = "eyJzZXEiOjEwMDAwMDAwMDAwMDAwMDAwMDAwMDAwfQ"  # {"seq": 10**22}
    cases: list[tuple[Any, str]] = [
        (lambda: create(text=nul), "text"),
        (lambda: create(title="x\x1b[2J"), "title"),
        (lambda: create(shared_with=["Practitioner/\x00"]), "shared_with"),
        (lambda: post(text=nul), "text"),
        (lambda: post(text="x", recipients=["Practitioner/p\x00"]), "recipients[0]"),
        (lambda: search(text=nul), "text"),
        (lambda: search(text="\x00"), "text"),
        (lambda: search(author=nul), "author"),
        (lambda: search(page_token=forged), "page_token"),
        (
            lambda: notes.ListThread(
                nt.ListThreadRequest(patient_id=patient, page_token=forged), metadata=psy
            ),
            "page_token",
        ),
        (lambda: amend(reason=nul), "reason"),
        (lambda: amend(text=nul), "text"),
        (lambda: amend(title=nul), "title"),
        (
            lambda: notes.RecordConsent(
                nt.RecordConsentRequest(
                    request_id=str(uuid.uuid4()), patient_id=patient, recipient=nul
                ),
                metadata=psy,
            ),
            "recipient",
        ),
    ]
    for call, field in cases:
        code, _, fields = _code(call)
        assert (code, fields) == ("INVALID_ARGUMENT", [field]), field
    watch = notes.WatchThread(
        nt.WatchThreadRequest(patient_id=patient, resume_token=forged), metadata=psy
    )
    with pytest.raises(grpc.RpcError) as caught:
        next(iter(watch))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == ["resume_token"]
    found = notes.SearchNotes(nt.SearchNotesRequest(patient_id=patient), metadata=psy).notes
    assert [n.id for n in found] == [signed.id]
    thread = notes.ListThread(nt.ListThreadRequest(patient_id=patient), metadata=psy).messages
    assert not any("\x00" in m.text for m in thread)


def test_a_note_lists_only_the_addenda_the_caller_may_read(
    notes: nt_grpc.NotesServiceStub, settings: Settings, patient: str
) -> None:
    """GetNote's related ids named every addendum: another author's draft, and a psychotherapy
    addendum to the psychiatrist's note, both of which the caller is refused."""
    psy = as_(settings, "psychiatrist", "psy-1")
    therapist = as_(settings, "therapist", "th-1")
    manager = as_(settings, "case-manager", "cm-1")
    original = _signed(notes, psy, patient, "psychiatric", "sertraline 50 mg")

    def amend(md: Any) -> nt.Note:
        request = nt.AmendNoteRequest(
            request_id=str(uuid.uuid4()), id=original.id, relation="appends", reason="r", text="t"
        )
        return notes.AmendNote(request, metadata=md).note

    def related(md: Any) -> list[str]:
        return list(notes.GetNote(nt.GetNoteRequest(id=original.id), metadata=md).related_ids)

    draft = amend(therapist)
    assert related(psy) == [] and related(manager) == []
    assert related(therapist) == [draft.id]
    private = amend(therapist)
    private = notes.UpdateNote(
        nt.UpdateNoteRequest(
            id=private.id,
            expected_version=private.version,
            note=nt.NoteInput(sensitivity=["PSYTHPN"]),
            update_mask=FieldMask(paths=["sensitivity"]),
        ),
        metadata=therapist,
    ).note
    notes.SignNote(
        nt.SignNoteRequest(id=private.id, expected_version=private.version), metadata=therapist
    )
    # The original's author reads an addendum to their own note; the case manager does not.
    assert related(psy) == [private.id] and related(manager) == []
    assert related(therapist) == [draft.id, private.id]


def test_the_signed_event_of_an_amendment_carries_no_reason_text(
    notes: nt_grpc.NotesServiceStub, settings: Settings, patient: str, kafka_bootstrap: str
) -> None:
    """The reason of an addendum or amendment is the clinician's free text ("patient disclosed a
    relapse"); the signed event went out with it in an extension, whatever the note's labels."""
    therapist = as_(settings, "therapist", "th-1")
    original = _signed(
        notes, therapist, patient, "therapy", "session", sensitivity=["PSYTHPN", "SUD"]
    )
    amendment = notes.AmendNote(
        nt.AmendNoteRequest(
            request_id=str(uuid.uuid4()),
            id=original.id,
            relation="replaces",
            reason="patient disclosed a heroin relapse",
            text="corrected",
        ),
        metadata=therapist,
    ).note
    notes.SignNote(
        nt.SignNoteRequest(id=amendment.id, expected_version=amendment.version),
        metadata=therapist,
    )
    (record,) = harness.read_topic(
        kafka_bootstrap,
        harness.topic(settings, topics.NOTES),
        lambda r: r.key == patient.encode() and json.loads(r.value)["id"] == amendment.id,
    )
    body = record.value.decode()
    assert "heroin" not in body
    resource = json.loads(body)
    assert resource["relatesTo"][0]["target"]["reference"] == f"DocumentReference/{original.id}"
    reader = notes.GetNote(nt.GetNoteRequest(id=amendment.id), metadata=therapist).note
    assert reader.relation_reason == "patient disclosed a heroin relapse"


def test_revoking_a_revoked_consent_is_audited_too(
    notes: nt_grpc.NotesServiceStub,
    notes_runtime: ServiceRuntime,
    settings: Settings,
    patient: str,
) -> None:
    """Every access to patient data has its audit row: the second revocation of a consent
    answered with the consent and left no trace."""
    cm = as_(settings, "case-manager", "cm-1")
    consent = notes.RecordConsent(
        nt.RecordConsentRequest(
            request_id=str(uuid.uuid4()),
            patient_id=patient,
            recipient="system:county-ehr",
            signed_time={"seconds": 1_796_000_000},
            signed_document="DocumentReference/signed-consent-form-18",
        ),
        metadata=cm,
    ).consent
    for _ in range(2):
        revoked = notes.RevokeConsent(nt.RevokeConsentRequest(id=consent.id), metadata=cm).consent
        assert (revoked.status, revoked.version) == ("inactive", 2)
    a = notes_store.audit_log.c
    with notes_runtime.db.read() as conn:
        rows = conn.execute(
            select(a.detail).where((a.resource == f"Consent/{consent.id}") & (a.action == "update"))
        ).all()
    assert len(rows) == 2


def test_a_request_id_reused_for_a_different_request_is_refused(
    notes: nt_grpc.NotesServiceStub, settings: Settings, patient: str
) -> None:
    """A retry (same request id, same request) gets the first result; the same id with another
    request answered with the first request's resource, as if it were this one's."""
    psy = as_(settings, "psychiatrist", "psy-1")
    rid = str(uuid.uuid4())

    def post(text: str) -> nt.Message:
        request = nt.PostMessageRequest(request_id=rid, patient_id=patient, text=text)
        return notes.PostMessage(request, metadata=psy).message

    first = post("one")
    assert post("one").id == first.id
    assert _code(lambda: post("two"))[::2] == ("INVALID_ARGUMENT", ["request_id"])

    def create(kind: str) -> list[nt.Note]:
        note = nt.NoteInput(patient_id=patient, kind=kind, text="t")
        request = nt.CreateNoteRequest(request_id=rid, note=note)
        return list(notes.CreateNote(request, metadata=psy).notes)

    (draft,) = create("psychiatric")
    assert [n.id for n in create("psychiatric")] == [draft.id]
    assert _code(lambda: create("discharge"))[::2] == ("INVALID_ARGUMENT", ["request_id"])
    signed = [_signed(notes, psy, patient, "psychiatric", f"note {i}").id for i in range(2)]

    def amend(note_id: str) -> nt.Note:
        request = nt.AmendNoteRequest(
            request_id=rid, id=note_id, relation="appends", reason="r", text="t"
        )
        return notes.AmendNote(request, metadata=psy).note

    addendum = amend(signed[0])
    assert amend(signed[0]).id == addendum.id
    assert _code(lambda: amend(signed[1]))[::2] == ("INVALID_ARGUMENT", ["request_id"])


def test_a_search_through_many_withheld_notes_does_bounded_work_per_page(
    notes: nt_grpc.NotesServiceStub,
    settings: Settings,
    patient: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Refused notes are filtered after the query, and the search fetched page_size + 1 rows at a
    time until the page was full: a dietitian's page of one over a patient with thousands of
    psychotherapy notes read them all, two rows per query, in one call. A page now stops after a
    bounded scan and hands back a token to go on from there (AIP-158: a short page is fine)."""
    monkeypatch.setattr(note_search, "MAX_SCANNED", 10)
    diet = as_(settings, "dietitian", "diet-1")
    therapist = as_(settings, "therapist", "th-1")
    own = _signed(notes, diet, patient, "nutrition", "meal plan")
    for i in range(25):
        _signed(notes, therapist, patient, "therapy", f"session {i}", sensitivity=["PSYTHPN"])
    found: list[str] = []
    pages = 0
    token = ""
    while True:
        page = notes.SearchNotes(
            nt.SearchNotesRequest(patient_id=patient, page_size=1, page_token=token),
            metadata=diet,
        )
        pages += 1
        found += [n.id for n in page.notes]
        token = page.next_page_token
        if not token:
            break
    assert found == [own.id]
    assert pages == 3


def test_concurrent_edits_and_signatures_of_one_version_let_exactly_one_through(
    notes: nt_grpc.NotesServiceStub, settings: Settings, patient: str
) -> None:
    """Edits and signatures racing from the same version: one wins, the rest are
    FAILED_PRECONDITION, and a signed note keeps exactly the text it was signed with."""
    psy = as_(settings, "psychiatrist", "psy-1")
    draft = _create(notes, psy, patient, "psychiatric", "as drafted")

    def edit() -> tuple[str, str, list[str]]:
        request = nt.UpdateNoteRequest(
            id=draft.id,
            expected_version=draft.version,
            note=nt.NoteInput(text="edited"),
            update_mask=FieldMask(paths=["text"]),
        )
        return _code(lambda: notes.UpdateNote(request, metadata=psy))

    def sign() -> tuple[str, str, list[str]]:
        request = nt.SignNoteRequest(id=draft.id, expected_version=draft.version)
        return _code(lambda: notes.SignNote(request, metadata=psy))

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda f: f(), [edit, sign] * 6))
    codes = [code for code, _, _ in results]
    assert codes.count("OK") == 1
    assert set(codes) == {"OK", "FAILED_PRECONDITION"}
    final = notes.GetNote(nt.GetNoteRequest(id=draft.id), metadata=psy).note
    assert final.version == 2
    winner = results[codes.index("OK")]
    if final.status == "signed":
        assert final.text == "as drafted" and codes.index("OK") % 2 == 1
    else:
        assert final.text == "edited" and codes.index("OK") % 2 == 0
    assert winner[0] == "OK"


def test_signing_a_note_is_one_audit_record(
    notes: nt_grpc.NotesServiceStub,
    notes_runtime: ServiceRuntime,
    settings: Settings,
    patient: str,
) -> None:
    """Test-matrix C11: exactly one audit record per access. SignNote recorded its update and
    then, answering with the signed note, a second record of a read."""
    psy = as_(settings, "psychiatrist", "psy-1")
    signed = _signed(notes, psy, patient, "psychiatric", "stable")
    a = notes_store.audit_log.c
    with notes_runtime.db.read() as conn:
        rows = conn.execute(
            select(a.action, a.detail).where(a.resource == f"DocumentReference/{signed.id}")
        ).all()
    assert sorted((r.action, r.detail) for r in rows) == [
        ("create", "draft; care-team"),
        ("update", "signed"),
    ]
