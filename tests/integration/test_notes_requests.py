"""Every mutating notes RPC is idempotent by its request id, on both databases: a repeat of a
request (a retry after a lost answer, or concurrent copies of it) gets the first answer and
changes nothing again; the same id with a different request is refused (INVALID_ARGUMENT,
REQUEST_ID_REUSED). And every List RPC pages with an opaque token in a stable order."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from sqlalchemy import func, select

from iopcare.kit.runtime import ServiceRuntime
from iopcare.kit.settings import Settings
from iopcare.notes import store as notes_store
from iopcare.notes.v1 import notes_service_pb2 as nt
from iopcare.notes.v1 import notes_service_pb2_grpc as nt_grpc
from tests.support.notes import as_, error_reason


def _refused(call: Callable[[], Any]) -> tuple[str, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code().name, error_reason(caught.value)


REUSED = ("INVALID_ARGUMENT", "REQUEST_ID_REUSED")


def _post(notes: Any, md: Any, patient: str, text: str, **kw: Any) -> nt.Message:
    request = nt.PostMessageRequest(
        request_id=str(uuid.uuid4()), patient_id=patient, text=text, **kw
    )
    return notes.PostMessage(request, metadata=md).message


def _audit_rows(runtime: ServiceRuntime, resource: str, detail: str) -> int:
    a = notes_store.audit_log.c
    with runtime.db.read() as conn:
        return int(
            conn.execute(
                select(func.count()).where(
                    (a.resource == resource)
                    & a.detail.startswith(detail)
                    & (a.outcome == "success")
                )
            ).scalar_one()
        )


def test_thread_changes_are_made_once_per_request_id(
    notes: nt_grpc.NotesServiceStub,
    notes_runtime: ServiceRuntime,
    settings: Settings,
    patient: str,
) -> None:
    th = as_(settings, "therapist", "th-1")
    psy = as_(settings, "psychiatrist", "psy-1")
    one, two = (_post(notes, th, patient, f"message {i}") for i in range(2))

    # Retract: a retry gets the retracted message, not ALREADY_RETRACTED; retracted once.
    rid = str(uuid.uuid4())

    def retract(message_id: str) -> nt.Message:
        request = nt.RetractMessageRequest(request_id=rid, id=message_id, expected_version=1)
        return notes.RetractMessage(request, metadata=th).message

    first = retract(one.id)
    assert (first.status, first.version) == ("entered-in-error", 2)
    again = retract(one.id)
    assert (again.status, again.version, again.fhir_json) == (
        first.status,
        first.version,
        first.fhir_json,
    )
    assert _audit_rows(notes_runtime, f"Communication/{one.id}", "retracted") == 1
    assert _refused(lambda: retract(two.id)) == REUSED
    assert notes.GetCommunication(
        nt.GetCommunicationRequest(id=two.id), metadata=th
    ).message.status == ("completed")

    # MarkRead: concurrent copies of one request all get its answer; one receipt per message.
    rid = str(uuid.uuid4())

    def mark(ids: list[str]) -> int:
        request = nt.MarkReadRequest(request_id=rid, message_ids=ids)
        return notes.MarkRead(request, metadata=psy).new_receipts

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: mark([one.id, two.id]), range(4)))
    assert answers == [2, 2, 2, 2]
    assert _audit_rows(notes_runtime, f"Communication/{two.id}", "read receipt") == 1
    assert _refused(lambda: mark([two.id])) == REUSED
    # Without a request id, marking again is answered as before: nothing new.
    assert notes.MarkRead(nt.MarkReadRequest(message_ids=[two.id]), metadata=psy).new_receipts == 0

    # AcknowledgeCrisis: the retry gets the Flag; one acknowledgement in the thread.
    _post(notes, th, patient, "Says he has a plan.", category="crisis")
    (flag,) = notes.ListFlags(nt.ListFlagsRequest(patient_id=patient), metadata=psy).flags
    rid = str(uuid.uuid4())

    def acknowledge(note: str) -> nt.Flag:
        request = nt.AcknowledgeCrisisRequest(request_id=rid, flag_id=flag.id, note=note)
        return notes.AcknowledgeCrisis(request, metadata=psy).flag

    acked = acknowledge("called him")
    assert acknowledge("called him") == acked
    assert acked.version == 2
    assert _refused(lambda: acknowledge("called his mother")) == REUSED
    thread = notes.ListThread(nt.ListThreadRequest(patient_id=patient), metadata=psy).messages
    assert sum("acknowledged by" in m.text for m in thread) == 1


def test_drafts_are_saved_and_discarded_once_per_request_id(
    notes: nt_grpc.NotesServiceStub, settings: Settings, patient: str
) -> None:
    diet = as_(settings, "dietitian", "diet-1")
    rid = str(uuid.uuid4())

    def save(text: str, draft_id: str = "", version: int = 0) -> nt.MessageDraft:
        request = nt.SaveMessageDraftRequest(
            request_id=rid,
            draft_id=draft_id,
            expected_version=version,
            message=nt.PostMessageRequest(patient_id=patient, text=text),
        )
        return notes.SaveMessageDraft(request, metadata=diet).draft

    draft = save("Meal plan")
    assert save("Meal plan") == draft  # a retry creates no second draft
    assert _refused(lambda: save("Meal plan, revised")) == REUSED
    listed = notes.ListMessageDrafts(nt.ListMessageDraftsRequest(patient_id=patient), metadata=diet)
    assert [d.id for d in listed.drafts] == [draft.id]

    rid = str(uuid.uuid4())
    edited = save("Meal plan, revised", draft.id, draft.version)
    assert save("Meal plan, revised", draft.id, draft.version) == edited
    assert edited.version == 2

    rid = str(uuid.uuid4())

    def discard(draft_id: str) -> None:
        request = nt.DiscardMessageDraftRequest(request_id=rid, draft_id=draft_id)
        notes.DiscardMessageDraft(request, metadata=diet)

    discard(draft.id)
    discard(draft.id)  # the retry of a discard that committed: answered, not NOT_FOUND
    other = notes.SaveMessageDraft(
        nt.SaveMessageDraftRequest(message=nt.PostMessageRequest(patient_id=patient, text="x")),
        metadata=diet,
    ).draft
    assert _refused(lambda: discard(other.id)) == REUSED
    listed = notes.ListMessageDrafts(nt.ListMessageDraftsRequest(patient_id=patient), metadata=diet)
    assert [d.id for d in listed.drafts] == [other.id]


def test_note_and_consent_changes_are_made_once_per_request_id(
    notes: nt_grpc.NotesServiceStub,
    notes_runtime: ServiceRuntime,
    settings: Settings,
    patient: str,
) -> None:
    psy = as_(settings, "psychiatrist", "psy-1")
    (draft,) = notes.CreateNote(
        nt.CreateNoteRequest(
            request_id=str(uuid.uuid4()),
            note=nt.NoteInput(patient_id=patient, kind="psychiatric", text="first"),
        ),
        metadata=psy,
    ).notes
    rid = str(uuid.uuid4())

    def update(text: str) -> nt.Note:
        request = nt.UpdateNoteRequest(
            request_id=rid,
            id=draft.id,
            expected_version=draft.version,
            note=nt.NoteInput(text=text),
            update_mask=FieldMask(paths=["text"]),
        )
        return notes.UpdateNote(request, metadata=psy).note

    edited = update("second")
    # The retry carries the version it was based on (now stale): answered, not STALE_VERSION.
    assert update("second") == edited
    assert (edited.version, edited.text) == (2, "second")
    assert _refused(lambda: update("third")) == REUSED

    rid = str(uuid.uuid4())

    def sign(version: int) -> nt.SignNoteResponse:
        request = nt.SignNoteRequest(request_id=rid, id=draft.id, expected_version=version)
        return notes.SignNote(request, metadata=psy)

    with ThreadPoolExecutor(3) as pool:
        signed = list(pool.map(lambda _: sign(edited.version), range(3)))
    assert {(s.note.status, s.note.version) for s in signed} == {("signed", 3)}
    with notes_runtime.db.read() as conn:
        assert len(notes_store.provenance_for(conn, draft.id)) == 1
    assert _refused(lambda: sign(edited.version + 1)) == REUSED

    cm = as_(settings, "case-manager", "cm-1")
    consents = [
        notes.RecordConsent(
            nt.RecordConsentRequest(
                request_id=str(uuid.uuid4()),
                patient_id=patient,
                recipient=f"system:county-ehr-{i}",
                signed_time={"seconds": 1_796_000_000},
                signed_document="DocumentReference/signed-consent-form-18",
            ),
            metadata=cm,
        ).consent
        for i in range(2)
    ]
    rid = str(uuid.uuid4())

    def revoke(consent_id: str) -> nt.Consent:
        request = nt.RevokeConsentRequest(request_id=rid, id=consent_id)
        return notes.RevokeConsent(request, metadata=cm).consent

    revoked = revoke(consents[0].id)
    assert revoke(consents[0].id) == revoked
    assert (revoked.status, revoked.version) == ("inactive", 2)
    assert _audit_rows(notes_runtime, f"Consent/{consents[0].id}", "revoked") == 1
    assert _refused(lambda: revoke(consents[1].id)) == REUSED
    kept = notes.GetConsent(nt.GetConsentRequest(id=consents[1].id), metadata=cm).consent
    assert kept.status == "active"


def _walk(list_page: Callable[[str], tuple[list[str], str]]) -> list[list[str]]:
    pages, token = [], ""
    while True:
        ids, token = list_page(token)
        pages.append(ids)
        if not token:
            return pages


def test_flags_consents_and_drafts_page_in_a_stable_order(
    notes: nt_grpc.NotesServiceStub, settings: Settings, patient: str
) -> None:
    th = as_(settings, "therapist", "th-1")
    cm = as_(settings, "case-manager", "cm-1")
    for i in range(3):
        _post(notes, th, patient, f"crisis {i}", category="crisis")
        notes.RecordConsent(
            nt.RecordConsentRequest(
                request_id=str(uuid.uuid4()),
                patient_id=patient,
                recipient=f"system:ehr-{i}",
                signed_time={"seconds": 1_796_000_000},
                signed_document="DocumentReference/form",
            ),
            metadata=cm,
        )
        notes.SaveMessageDraft(
            nt.SaveMessageDraftRequest(
                message=nt.PostMessageRequest(patient_id=patient, text=f"draft {i}")
            ),
            metadata=th,
        )

    def flags(token: str) -> tuple[list[str], str]:
        request = nt.ListFlagsRequest(patient_id=patient, page_size=2, page_token=token)
        answer = notes.ListFlags(request, metadata=th)
        return [f.id for f in answer.flags], answer.next_page_token

    def consents(token: str) -> tuple[list[str], str]:
        request = nt.ListConsentsRequest(patient_id=patient, page_size=2, page_token=token)
        answer = notes.ListConsents(request, metadata=cm)
        return [c.id for c in answer.consents], answer.next_page_token

    def drafts(token: str) -> tuple[list[str], str]:
        request = nt.ListMessageDraftsRequest(patient_id=patient, page_size=2, page_token=token)
        answer = notes.ListMessageDrafts(request, metadata=th)
        return [d.id for d in answer.drafts], answer.next_page_token

    all_flags = [
        f.id for f in notes.ListFlags(nt.ListFlagsRequest(patient_id=patient), metadata=th).flags
    ]
    all_consents = [
        c.id
        for c in notes.ListConsents(
            nt.ListConsentsRequest(patient_id=patient), metadata=cm
        ).consents
    ]
    all_drafts = [
        d.id
        for d in notes.ListMessageDrafts(
            nt.ListMessageDraftsRequest(patient_id=patient), metadata=th
        ).drafts
    ]
    for walk, everything in ((flags, all_flags), (consents, all_consents), (drafts, all_drafts)):
        pages = _walk(walk)
        assert [len(p) for p in pages] == [2, 1]
        assert [i for p in pages for i in p] == everything
        assert len(set(everything)) == 3
    # Oldest first: each crisis Flag names its message's text.
    listed = notes.ListFlags(nt.ListFlagsRequest(patient_id=patient), metadata=th).flags
    assert [json.loads(f.fhir_json)["code"]["text"] for f in listed] == [
        "crisis 0",
        "crisis 1",
        "crisis 2",
    ]
    for forged in ("not-a-token", "eyJhdCI6IjIwMjYiLCJpZCI6IngifQ"):
        code = _refused(lambda: flags(forged))[0]  # noqa: B023 - called at once
        assert code == "INVALID_ARGUMENT"
        assert _refused(lambda: consents(forged))[0] == "INVALID_ARGUMENT"  # noqa: B023
        assert _refused(lambda: drafts(forged))[0] == "INVALID_ARGUMENT"  # noqa: B023
