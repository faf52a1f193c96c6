"""Clinical notes over gRPC on both databases: lifecycle, search, privacy, consent and disclosure,
and what the note events carry (issue 4, items 2, 4 and 5)."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import select

from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.kit import auth, topics
from iopcare.kit.rpc import bearer
from iopcare.kit.runtime import ServiceRuntime
from iopcare.kit.settings import Settings
from iopcare.notes import store as notes_store
from iopcare.notes.v1 import notes_service_pb2 as nt
from iopcare.notes.v1 import notes_service_pb2_grpc as nt_grpc
from tests.support import harness
from tests.support.notes import (
    as_,
    error_reason,
    field_violations,
    wait_for_team,
)
from tests.support.plans import new_patient_id


def _create(
    notes: nt_grpc.NotesServiceStub,
    md: list[tuple[str, str]],
    patient: str,
    kind: str,
    text: str,
    **fields: Any,
) -> nt.Note:
    note = nt.NoteInput(patient_id=patient, kind=kind, text=text, **fields)
    created = notes.CreateNote(
        nt.CreateNoteRequest(request_id=str(uuid.uuid4()), note=note), metadata=md
    )
    (one,) = created.notes
    return one


def _signed(
    notes: nt_grpc.NotesServiceStub,
    md: list[tuple[str, str]],
    patient: str,
    kind: str,
    text: str,
    **fields: Any,
) -> nt.Note:
    draft = _create(notes, md, patient, kind, text, **fields)
    return notes.SignNote(
        nt.SignNoteRequest(id=draft.id, expected_version=draft.version), metadata=md
    ).note


def _texts(note: nt.Note) -> list[str]:
    resource = json.loads(note.fhir_json)
    return [base64.b64decode(c["attachment"]["data"]).decode() for c in resource["content"]]


def _refused(call: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def test_a_note_is_drafted_signed_and_then_only_amended(
    notes: nt_grpc.NotesServiceStub, settings: Settings, patient: str
) -> None:
    psy = as_(settings, "psychiatrist", "psy-1")
    therapist = as_(settings, "therapist", "th-1")
    draft = _create(notes, psy, patient, "psychiatric", "Sleep better; sertraline 50 mg.")
    assert (draft.status, draft.version, draft.type_code) == ("draft", 1, "28627-8")
    # A draft is its author's alone.
    refused = _refused(lambda: notes.GetNote(nt.GetNoteRequest(id=draft.id), metadata=therapist))
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_reason(refused) == "DRAFT_OF_ANOTHER_AUTHOR"

    mask = FieldMask(paths=["text"])
    edit = nt.NoteInput(text="Sleeping better; sertraline raised to 100 mg.")
    stale = _refused(
        lambda: notes.UpdateNote(
            nt.UpdateNoteRequest(id=draft.id, expected_version=7, note=edit, update_mask=mask),
            metadata=psy,
        )
    )
    assert stale.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(stale) == "STALE_VERSION"
    edited = notes.UpdateNote(
        nt.UpdateNoteRequest(id=draft.id, expected_version=1, note=edit, update_mask=mask),
        metadata=psy,
    ).note
    assert edited.version == 2 and edited.text.endswith("100 mg.")

    signed = notes.SignNote(nt.SignNoteRequest(id=draft.id, expected_version=2), metadata=psy)
    assert (signed.note.status, signed.note.signed_by) == ("signed", "Practitioner/psy-1")
    resource = json.loads(signed.note.fhir_json)
    assert resource["docStatus"] == "final"
    assert resource["authenticator"] == {"reference": "Practitioner/psy-1"}
    provenance = json.loads(signed.provenance_json)
    assert provenance["signature"][0]["who"] == {"reference": "Practitioner/psy-1"}
    assert provenance["target"] == [{"reference": f"DocumentReference/{draft.id}/_history/3"}]

    # Signed is final: no edit, no second signature.
    for call in (
        lambda: notes.UpdateNote(
            nt.UpdateNoteRequest(id=draft.id, expected_version=3, note=edit, update_mask=mask),
            metadata=psy,
        ),
        lambda: notes.SignNote(nt.SignNoteRequest(id=draft.id, expected_version=3), metadata=psy),
    ):
        refused = _refused(call)
        assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_reason(refused) == "NOTE_NOT_DRAFT"

    # Only the author amends; another clinician appends.
    refused = _refused(
        lambda: notes.AmendNote(
            nt.AmendNoteRequest(
                request_id="a1", id=draft.id, relation="replaces", reason="dose", text="x"
            ),
            metadata=therapist,
        )
    )
    assert error_reason(refused) == "NOT_THE_AUTHOR"
    addendum = notes.AmendNote(
        nt.AmendNoteRequest(
            request_id="a2",
            id=draft.id,
            relation="appends",
            reason="Session observations",
            text="Patient reports less rumination in group.",
        ),
        metadata=therapist,
    ).note
    notes.SignNote(nt.SignNoteRequest(id=addendum.id, expected_version=1), metadata=therapist)
    read = notes.GetNote(nt.GetNoteRequest(id=draft.id), metadata=therapist)
    assert list(read.related_ids) == [addendum.id]
    assert read.note.fhir_json == signed.note.fhir_json  # the original, byte for byte
    appended = json.loads(
        notes.GetNote(nt.GetNoteRequest(id=addendum.id), metadata=psy).note.fhir_json
    )
    assert appended["relatesTo"] == [
        {"code": "appends", "target": {"reference": f"DocumentReference/{draft.id}"}}
    ]


def test_notes_are_found_by_words_kind_author_and_date(
    notes: nt_grpc.NotesServiceStub, settings: Settings, patient: str
) -> None:
    psy = as_(settings, "psychiatrist", "psy-1")
    therapist = as_(settings, "therapist", "th-1")
    _signed(notes, psy, patient, "psychiatric", "Craving decreased after naltrexone started.")
    _signed(notes, therapist, patient, "therapy", "Discussed relapse triggers at work.")
    _signed(notes, therapist, patient, "therapy", "Family session; relapsing worries shared.")

    def search(**fields: Any) -> list[str]:
        found = notes.SearchNotes(nt.SearchNotesRequest(patient_id=patient, **fields), metadata=psy)
        return [n.text for n in found.notes]

    # Stemmed words, newest first; every word must occur.
    assert search(text="relapse") == [
        "Family session; relapsing worries shared.",
        "Discussed relapse triggers at work.",
    ]
    assert search(text="relapse work") == ["Discussed relapse triggers at work."]
    assert search(text='"naltrexone" (craving*') == ["Craving decreased after naltrexone started."]
    assert len(search(kinds=["therapy"])) == 2
    assert len(search(author="Practitioner/psy-1")) == 1
    assert search(text="nothing-like-this") == []
    from google.protobuf.timestamp_pb2 import Timestamp

    future = Timestamp()
    future.GetCurrentTime()
    future.seconds += 3600
    assert search(date_from=future) == []
    first = notes.SearchNotes(nt.SearchNotesRequest(patient_id=patient, page_size=2), metadata=psy)
    rest = notes.SearchNotes(
        nt.SearchNotesRequest(patient_id=patient, page_size=2, page_token=first.next_page_token),
        metadata=psy,
    )
    assert len(first.notes) == 2 and len(rest.notes) == 1 and not rest.next_page_token
    refused = _refused(lambda: search(kinds=["diary"]))
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(refused) == ["kinds[0]"]
    assert len(search(type_codes=["34904-3"])) == 2  # Mental health Progress note
    assert len(search(type_codes=["28627-8"], kinds=["therapy"])) == 3
    refused = _refused(lambda: search(type_codes=["0000-0"]))
    assert field_violations(refused) == ["type_codes[0]"]


def test_psychotherapy_notes_stay_with_their_author_and_disciplines_see_their_own(
    notes: nt_grpc.NotesServiceStub,
    settings: Settings,
    patient: str,
    notes_runtime: ServiceRuntime,
    kafka_bootstrap: str,
) -> None:
    therapist = as_(settings, "therapist", "th-1")
    dietitian = as_(settings, "dietitian", "diet-1")
    psy = as_(settings, "psychiatrist", "psy-1")
    private = _signed(
        notes,
        therapist,
        patient,
        "therapy",
        "Process notes: transference themes.",
        sensitivity=["PSYTHPN"],
    )
    assert private.confidentiality == "R"
    _signed(notes, therapist, patient, "therapy", "Attended CBT; homework done.")
    meal = _signed(notes, dietitian, patient, "nutrition", "Meal plan kept 5 of 7 days.")

    for reader in (dietitian, psy, as_(settings, "physician", "er-9", break_glass=True)):
        refused = _refused(
            lambda r=reader: notes.GetNote(nt.GetNoteRequest(id=private.id), metadata=r)
        )
        assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error_reason(refused) == "PSYCHOTHERAPY_NOTE"
    assert notes.GetNote(nt.GetNoteRequest(id=private.id), metadata=therapist).note.text

    def visible(md: list[tuple[str, str]]) -> list[str]:
        found = notes.SearchNotes(nt.SearchNotesRequest(patient_id=patient), metadata=md)
        return sorted(n.id for n in found.notes)

    assert private.id in visible(therapist)
    assert private.id not in visible(psy)
    assert visible(dietitian) == [meal.id]  # own discipline only; the therapy notes are not hits

    # Every refusal is audited, and the search says what it withheld.
    a = notes_store.audit_log.c
    with notes_runtime.db.read() as conn:
        refusals = (
            conn.execute(
                select(a.detail).where(
                    (a.resource == f"DocumentReference/{private.id}") & (a.outcome == "denied")
                )
            )
            .scalars()
            .all()
        )
        searches = (
            conn.execute(
                select(a.detail).where(
                    (a.patient_id == patient)
                    & (a.resource == "DocumentReference")
                    & (a.principal == "practitioner:diet-1")
                )
            )
            .scalars()
            .all()
        )
    assert sorted(refusals) == ["PSYCHOTHERAPY_NOTE"] * 3
    assert any("withheld 1 OTHER_DISCIPLINE, 1 PSYCHOTHERAPY_NOTE" in s for s in searches)

    # The signed events carry references and labels, never the text.
    records = harness.read_topic(
        kafka_bootstrap,
        harness.topic(settings, topics.NOTES),
        lambda r: (
            r.key == patient.encode()
            and harness.header(r, "ce_type") == "iopcare.notes.note.signed.v1"
        ),
        expect=3,
    )
    for record in records:
        body = record.value.decode()
        assert "transference" not in body and "homework" not in body and "Meal" not in body
        resource = json.loads(body)
        assert "data" not in resource["content"][0]["attachment"]
    labels = {
        json.loads(r.value)["id"]: [s["code"] for s in json.loads(r.value)["meta"]["security"]]
        for r in records
    }
    assert labels[private.id] == ["R", "PSYTHPN"]


def test_part2_notes_leave_only_with_consent_and_a_redisclosure_notice(
    notes: nt_grpc.NotesServiceStub,
    settings: Settings,
    patient: str,
    notes_runtime: ServiceRuntime,
) -> None:
    psy = as_(settings, "psychiatrist", "psy-1")
    # The outside EHR's own token (the gateway forwards it): the recipient is always the caller.
    outside = "system:county-hospital"
    gateway = bearer(
        auth.mint_token(settings, subject=outside, role="system", scopes=["system/*.rs"])
    )
    sud = _signed(
        notes,
        psy,
        patient,
        "psychiatric",
        "Alcohol use disorder, in early remission.",
        sensitivity=["SUD"],
    )

    def disclose() -> nt.DiscloseNoteResponse:
        return notes.DiscloseNote(nt.DiscloseNoteRequest(id=sud.id), metadata=gateway)

    refused = _refused(disclose)
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_reason(refused) == "NO_ACTIVE_CONSENT"
    # The EHR's identity never reads the labelled note as a clinician would.
    refused = _refused(lambda: notes.GetNote(nt.GetNoteRequest(id=sud.id), metadata=gateway))
    assert error_reason(refused) == "LABELLED_CONTENT"
    # Nor does a clinician ask for disclosure.
    refused = _refused(lambda: notes.DiscloseNote(nt.DiscloseNoteRequest(id=sud.id), metadata=psy))
    assert error_reason(refused) == "NOT_A_DISCLOSING_SERVICE"

    consent = notes.RecordConsent(
        nt.RecordConsentRequest(
            request_id=str(uuid.uuid4()),
            patient_id=patient,
            recipient=outside,
            scope="sud",
            # Staff record the form the patient signed (42 CFR 2.31(a)(8)).
            signed_time=Timestamp(seconds=1_796_000_000),
            signed_document="DocumentReference/signed-consent-form-17",
        ),
        metadata=as_(settings, "case-manager", "cm-1"),
    ).consent
    assert consent.status == "active"
    assert json.loads(consent.fhir_json)["resourceType"] == "Consent"
    disclosed = json.loads(disclose().fhir_json)
    codes = [s["code"] for s in disclosed["meta"]["security"]]
    assert codes == ["R", "SUD", "NORDSCLCD"]
    notice = [e["valueString"] for e in disclosed["extension"] if "redisclosure" in e["url"]]
    assert notice == ["42 CFR part 2 prohibits unauthorized use or disclosure of these records."]

    notes.RevokeConsent(nt.RevokeConsentRequest(id=consent.id), metadata=psy)
    assert error_reason(_refused(disclose)) == "NO_ACTIVE_CONSENT"
    a = notes_store.audit_log.c
    with notes_runtime.db.read() as conn:
        trail = conn.execute(
            select(a.outcome, a.detail)
            .where(a.resource == f"DocumentReference/{sud.id}")
            .where(a.detail.like("disclose%"))
            .order_by(a.id)
        ).all()
    assert [t.outcome for t in trail] == ["denied", "success", "denied"]
    assert all(outside in t.detail for t in trail)


def test_a_group_note_gives_each_attendee_the_shared_part_and_only_their_own(
    stub: pb_grpc.CarePlanServiceStub,
    notes: nt_grpc.NotesServiceStub,
    settings: Settings,
    patient: str,
) -> None:
    other = new_patient_id()
    harness.enrol_over_grpc(stub, settings, other)
    wait_for_team(notes, settings, other)
    therapist = as_(settings, "therapist", "th-1")
    created = notes.CreateNote(
        nt.CreateNoteRequest(
            request_id=str(uuid.uuid4()),
            note=nt.NoteInput(
                kind="group",
                title="Relapse prevention group",
                shared_text="Topic: coping with cravings.",
            ),
            attendees=[
                nt.Attendee(patient_id=patient, text="Shared a high-risk situation."),
                nt.Attendee(patient_id=other, text="Quiet; left early."),
            ],
        ),
        metadata=therapist,
    ).notes
    by_patient = {n.patient_id: n for n in created}
    assert set(by_patient) == {patient, other}
    assert by_patient[patient].group_id == by_patient[other].group_id
    assert _texts(by_patient[patient]) == [
        "Topic: coping with cravings.",
        "Shared a high-risk situation.",
    ]
    assert "left early" not in by_patient[patient].fhir_json
    assert json.loads(by_patient[patient].fhir_json)["type"]["coding"][0]["code"] == "34787-2"


def test_bad_requests_are_refused_with_details_and_nothing_is_written(
    notes: nt_grpc.NotesServiceStub, settings: Settings, patient: str, notes_runtime: ServiceRuntime
) -> None:
    psy = as_(settings, "psychiatrist", "psy-1")
    refused = _refused(
        lambda: notes.CreateNote(
            nt.CreateNoteRequest(
                request_id="r1",
                note=nt.NoteInput(patient_id=patient, kind="diary", text="", sensitivity=["XYZ"]),
            ),
            metadata=psy,
        )
    )
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert sorted(field_violations(refused)) == ["kind", "security", "text"]
    # Search input that could upset a full-text engine is input, not a failure.
    quotes = notes.SearchNotes(nt.SearchNotesRequest(patient_id=patient, text='"" "'), metadata=psy)
    assert list(quotes.notes) == []
    from google.protobuf.timestamp_pb2 import Timestamp

    too_early = _refused(
        lambda: notes.SearchNotes(
            nt.SearchNotesRequest(patient_id=patient, date_from=Timestamp(seconds=-99999999999)),
            metadata=psy,
        )
    )
    assert too_early.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(too_early) == ["date_from"]
    missing = _refused(lambda: notes.GetNote(nt.GetNoteRequest(id="no-such-note"), metadata=psy))
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    outsider = _refused(
        lambda: _create(notes, as_(settings, "therapist", "th-9"), patient, "therapy", "x")
    )
    assert outsider.code() == grpc.StatusCode.PERMISSION_DENIED
    admin = _refused(
        lambda: _create(notes, as_(settings, "admin", "adm-1"), patient, "progress", "x")
    )
    assert error_reason(admin) == "NOT_A_CLINICIAN_ON_THE_TEAM"
    with notes_runtime.db.read() as conn:
        assert conn.execute(select(notes_store.note.c.id)).all() == []


def test_concurrent_signatures_of_one_version_sign_it_once(
    notes: nt_grpc.NotesServiceStub, settings: Settings, patient: str, notes_runtime: ServiceRuntime
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    psy = as_(settings, "psychiatrist", "psy-1")
    draft = _create(notes, psy, patient, "progress", "Stable; continue plan.")

    def sign(_: int) -> str:
        try:
            notes.SignNote(nt.SignNoteRequest(id=draft.id, expected_version=1), metadata=psy)
            return "signed"
        except grpc.RpcError as exc:
            return f"{exc.code().name}:{error_reason(exc)}"

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(sign, range(8)))
    assert outcomes.count("signed") == 1
    assert {o for o in outcomes if o != "signed"} <= {
        "FAILED_PRECONDITION:STALE_VERSION",
        "FAILED_PRECONDITION:NOTE_NOT_DRAFT",
    }
    with notes_runtime.db.read() as conn:
        signatures = notes_store.provenance_for(conn, draft.id)
    assert len(signatures) == 1


def test_break_glass_reads_part2_content_flagged_and_the_addendum_keeps_the_labels(
    notes: nt_grpc.NotesServiceStub, settings: Settings, patient: str, notes_runtime: ServiceRuntime
) -> None:
    doc = as_(settings, "physician", "doc-1")
    sud = _signed(
        notes, doc, patient, "progress", "Withdrawal symptoms resolved.", sensitivity=["ETH"]
    )
    emergency = as_(settings, "physician", "er-7", break_glass=True)
    read = notes.GetNote(nt.GetNoteRequest(id=sud.id), metadata=emergency)
    assert read.break_glass and read.note.text == "Withdrawal symptoms resolved."
    a = notes_store.audit_log.c
    with notes_runtime.db.read() as conn:
        (detail,) = (
            conn.execute(
                select(a.detail).where(
                    (a.resource == f"DocumentReference/{sud.id}")
                    & (a.principal == "practitioner:er-7")
                )
            )
            .scalars()
            .all()
        )
    assert detail == "break-glass; FLAGGED for break-glass review"
    addendum = notes.AmendNote(
        nt.AmendNoteRequest(
            request_id="add-1", id=sud.id, relation="appends", reason="labs", text="LFTs normal."
        ),
        metadata=as_(settings, "psychiatrist", "psy-1"),
    ).note
    assert (addendum.confidentiality, list(addendum.sensitivity)) == ("R", ["ETH"])


def test_a_shared_psychotherapy_note_and_its_addendum_stay_between_the_two_clinicians(
    notes: nt_grpc.NotesServiceStub, settings: Settings, patient: str
) -> None:
    therapist = as_(settings, "therapist", "th-1")
    psy = as_(settings, "psychiatrist", "psy-1")
    private = _signed(
        notes,
        therapist,
        patient,
        "therapy",
        "Trauma narrative, session 4.",
        sensitivity=["PSYTHPN"],
        shared_with=["Practitioner/psy-1"],
    )
    assert notes.GetNote(nt.GetNoteRequest(id=private.id), metadata=psy).note.text
    addendum = notes.AmendNote(
        nt.AmendNoteRequest(
            request_id="psy-add", id=private.id, relation="appends", reason="meds", text="Prazosin."
        ),
        metadata=psy,
    ).note
    notes.SignNote(nt.SignNoteRequest(id=addendum.id, expected_version=1), metadata=psy)
    assert notes.GetNote(nt.GetNoteRequest(id=addendum.id), metadata=therapist).note.text
    refused = _refused(
        lambda: notes.GetNote(
            nt.GetNoteRequest(id=addendum.id), metadata=as_(settings, "case-manager", "cm-1")
        )
    )
    assert error_reason(refused) == "PSYCHOTHERAPY_NOTE"
