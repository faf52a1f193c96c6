"""Attacks on consent and disclosure (issue 10, defects 1, 2, 9 and 16a), through the FHIR gateway
in front of the real services and over notes' gRPC API, on SQLite and PostgreSQL.

- 1: an EHR records a 42 CFR Part 2 consent naming itself, then reads the SUD plan. A consent is
  the patient's act (42 CFR 2.31): recorded by the patient, or attested by program staff with the
  patient's signed form on file; never by the recipient; the recipient an identified client.
- 2: notes took the disclosure recipient from the request: any system token read the SUD note
  consented to another EHR. The recipient is always the authenticated caller.
- 9: REST note creation dropped Part 2 labels (OPIOIDUD stored as N).
- 16a: PUT Consent under a patient/ scope answered 500.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest

from iopcare.kit import auth
from iopcare.kit.rpc import bearer
from iopcare.kit.runtime import ServiceRuntime
from iopcare.kit.settings import Settings
from iopcare.notes.v1 import notes_service_pb2 as nt
from iopcare.notes.v1 import notes_service_pb2_grpc as nt_grpc
from tests.support import harness
from tests.support.gateway import (
    FHIR_JSON,
    Stack,
    discharge_bundle,
    enrol_team,
    practitioner_token,
    stack_for,
    system_token,
)
from tests.support.notes import as_, error_reason, field_violations

pytestmark = pytest.mark.security

JSON_HEADERS = {"Content-Type": FHIR_JSON}
LOINC = "http://loinc.org"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
CLIENT_ID = "https://iopcare.org/fhir/sid/client-id"
EHR = "system:st-mary-inpatient"
OTHER_EHR = "system:county-general"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    kafka_bootstrap: str,
) -> Iterator[Stack]:
    server = request.getfixturevalue("postgres_server") if request.param != "sqlite" else None
    with stack_for(
        request.param, tmp_path_factory, kafka_bootstrap, "security-consent", server
    ) as running:
        yield running


@pytest.fixture(scope="module")
def ehr(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client(system_token(stack.settings, subject=EHR)) as client:
        yield client


@pytest.fixture(scope="module")
def therapist(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client(practitioner_token(stack.settings, "therapist", "th-1")) as client:
        yield client


def patient_token(settings: Settings, patient_id: str, scopes: list[str] | None = None) -> str:
    """The patient's own app (SMART standalone patient launch): role patient, launch context."""
    return auth.mint_token(
        settings,
        subject=f"patient:{patient_id}",
        role="patient",
        patient_context=patient_id,
        scopes=scopes or ["patient/*.cruds"],
        lifetime_seconds=600,
    )


def part2_consent(patient_id: str, recipient: str, **extra: Any) -> dict[str, Any]:
    """A 42 CFR Part 2 consent (2.31) to disclose SUD records to one identified recipient."""
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [
            {"coding": [{"system": LOINC, "code": "59284-0", "display": "Consent Document"}]}
        ],
        "patient": {"reference": f"Patient/{patient_id}"},
        "policyRule": {"coding": [{"system": ACT_CODE, "code": "OPTIN"}]},
        "provision": {
            "type": "permit",
            "period": {"start": "2026-01-01", "end": "2030-12-31"},
            "actor": [
                {
                    "role": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                "code": "IRCP",
                                "display": "information recipient",
                            }
                        ]
                    },
                    "reference": {
                        "type": "Organization",
                        "identifier": {"system": CLIENT_ID, "value": recipient},
                        "display": "St Mary's inpatient unit",
                    },
                }
            ],
            "action": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/consentaction",
                            "code": "disclose",
                        }
                    ]
                }
            ],
            "securityLabel": [{"system": ACT_CODE, "code": "SUD"}],
        },
        **extra,
    }


#: What program staff add when they record a consent the patient signed on paper: when it was
#: signed and where the signed form is (42 CFR 2.31(a)(8): the patient's signature).
SIGNED_FORM = {
    "dateTime": "2026-11-30T14:05:00Z",
    "sourceReference": {"reference": "DocumentReference/signed-part2-form-0042"},
}


def handed_off(ehr: httpx.Client) -> tuple[str, str]:
    """(patient id, SUD-labelled plan id) from a detox unit's discharge document."""
    response = ehr.post(
        "/$handoff", json=discharge_bundle(uuid.uuid4().hex[:10]), headers=JSON_HEADERS
    )
    assert response.status_code == 200, response.text
    refs = [
        p["valueReference"]["reference"]
        for p in response.json()["parameter"]
        if p["name"] in ("created", "matched")
    ]
    patient = next(r.split("/")[1] for r in refs if r.startswith("Patient/"))
    plan = next(r.split("/")[1] for r in refs if r.startswith("CarePlan/"))
    return patient, plan


def with_team(stack: Stack, therapist: httpx.Client, patient_id: str) -> None:
    enrol_team(stack, patient_id)
    harness.eventually(
        lambda: (
            therapist.get("/Communication", params={"patient": patient_id}).status_code == 200
            or None
        )
    )


def note(patient_id: str, text: str, labels: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "resourceType": "DocumentReference",
        "status": "current",
        "docStatus": "preliminary",
        "meta": {"security": [{"system": s, "code": c} for s, c in labels]},
        "type": {"coding": [{"system": LOINC, "code": "11506-3", "display": "Progress note"}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "description": "IOP progress note",
        "content": [
            {
                "attachment": {
                    "contentType": "text/plain",
                    "data": base64.b64encode(text.encode()).decode(),
                }
            }
        ],
    }


def signed(stack: Stack, therapist: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    """A note drafted through the gateway and signed by its author inside the program (the
    gateway withholds a labelled draft's representation, so it is signed over gRPC)."""
    draft = therapist.post("/DocumentReference", json=body, headers=JSON_HEADERS)
    assert draft.status_code == 201, draft.text
    note_id = draft.headers["location"].split("/DocumentReference/")[1].split("/")[0]
    author = as_(stack.settings, "therapist", "th-1")
    with harness.channel(stack.runtimes["notes"]) as channel:
        notes = nt_grpc.NotesServiceStub(channel)
        current = notes.GetNote(nt.GetNoteRequest(id=note_id), metadata=author).note
        final = notes.SignNote(
            nt.SignNoteRequest(id=note_id, expected_version=current.version), metadata=author
        ).note
    result: dict[str, Any] = json.loads(final.fhir_json)
    return result


def codes(resource: dict[str, Any]) -> set[str]:
    return {str(s["code"]) for s in resource.get("meta", {}).get("security", [])}


# -- defect 1: who records a consent -------------------------------------------------------


def test_an_ehr_cannot_record_a_consent_naming_itself_and_read_the_sud_plan(
    stack: Stack, ehr: httpx.Client
) -> None:
    patient_id, plan_id = handed_off(ehr)
    assert ehr.get(f"/CarePlan/{plan_id}").status_code == 403
    for recipient in (EHR, OTHER_EHR):
        refused = ehr.post(
            "/Consent", json=part2_consent(patient_id, recipient), headers=JSON_HEADERS
        )
        assert refused.status_code == 403, refused.text
        assert refused.json()["resourceType"] == "OperationOutcome"
        # Nor with a signed form it claims to hold: an EHR is not program staff.
        claimed = part2_consent(patient_id, recipient, **SIGNED_FORM)
        assert ehr.post("/Consent", json=claimed, headers=JSON_HEADERS).status_code == 403
    # Nor inside a transaction or a batch.
    for kind in ("transaction", "batch"):
        bundle = {
            "resourceType": "Bundle",
            "type": kind,
            "entry": [
                {
                    "resource": part2_consent(patient_id, EHR),
                    "request": {"method": "POST", "url": "Consent"},
                }
            ],
        }
        answer = ehr.post("", json=bundle, headers=JSON_HEADERS)
        assert answer.status_code != 500, answer.text
        if answer.status_code == 200:
            status = answer.json()["entry"][0]["response"]["status"]
            assert status.startswith("403"), answer.text
    assert ehr.get("/Consent", params={"patient": patient_id}).json().get("total") == 0
    assert ehr.get(f"/CarePlan/{plan_id}").status_code == 403


def test_the_patient_records_their_consent_and_only_the_named_ehr_reads_the_plan(
    stack: Stack, ehr: httpx.Client
) -> None:
    patient_id, plan_id = handed_off(ehr)
    with stack.client(patient_token(stack.settings, patient_id)) as me:
        recorded = me.post("/Consent", json=part2_consent(patient_id, EHR), headers=JSON_HEADERS)
        assert recorded.status_code == 201, recorded.text
        consent = recorded.json()
        actor = consent["provision"]["actor"][0]["reference"]
        assert actor["identifier"] == {"system": CLIENT_ID, "value": EHR}
        assert consent["performer"] == [{"reference": f"Patient/{patient_id}"}]
    released = ehr.get(f"/CarePlan/{plan_id}")
    assert released.status_code == 200, released.text
    assert "NORDSCLCD" in codes(released.json())
    with stack.client(system_token(stack.settings, subject=OTHER_EHR)) as other:
        assert other.get(f"/CarePlan/{plan_id}").status_code == 403
        # Nor does it learn whom the patient consented to (only consents naming it are shown).
        assert other.get("/Consent", params={"patient": patient_id}).json()["total"] == 0
        assert other.get(f"/Consent/{consent['id']}").status_code == 404
    assert ehr.get(f"/Consent/{consent['id']}").status_code == 200
    # A patient's token records consents for that patient only.
    other_patient, _ = handed_off(ehr)
    with stack.client(patient_token(stack.settings, patient_id)) as me:
        refused = me.post("/Consent", json=part2_consent(other_patient, EHR), headers=JSON_HEADERS)
        assert refused.status_code in (403, 404), refused.text
    # Nor does a patient-context token of a system role make the EHR the patient.
    launched = auth.mint_token(
        stack.settings,
        subject=OTHER_EHR,
        role="system",
        patient_context=other_patient,
        scopes=["patient/*.cruds"],
    )
    with stack.client(launched) as app:
        answer = app.post(
            "/Consent", json=part2_consent(other_patient, OTHER_EHR), headers=JSON_HEADERS
        )
        assert answer.status_code == 403, answer.text


def test_staff_record_a_consent_only_with_the_patients_signed_form_on_file(
    stack: Stack, ehr: httpx.Client, therapist: httpx.Client
) -> None:
    patient_id, plan_id = handed_off(ehr)
    with_team(stack, therapist, patient_id)
    unsigned = therapist.post("/Consent", json=part2_consent(patient_id, EHR), headers=JSON_HEADERS)
    assert unsigned.status_code == 422, unsigned.text
    recorded = therapist.post(
        "/Consent", json=part2_consent(patient_id, EHR, **SIGNED_FORM), headers=JSON_HEADERS
    )
    assert recorded.status_code == 201, recorded.text
    consent = recorded.json()
    assert consent["sourceReference"] == SIGNED_FORM["sourceReference"]
    assert consent["dateTime"].startswith("2026-11-30T14:05:00")
    attested = [e for e in consent.get("extension", []) if e["url"].endswith("consent-attestation")]
    assert attested, consent
    parts = {e["url"]: e for e in attested[0]["extension"]}
    assert parts["attester"]["valueReference"] == {"reference": "Practitioner/th-1"}
    assert ehr.get(f"/CarePlan/{plan_id}").status_code == 200
    # A clinician off the team may not (the patient is "unknown" to them: test-matrix D8).
    with stack.client(practitioner_token(stack.settings, "therapist", "th-stranger")) as stranger:
        refused = stranger.post(
            "/Consent",
            json=part2_consent(patient_id, OTHER_EHR, **SIGNED_FORM),
            headers=JSON_HEADERS,
        )
        assert refused.status_code in (403, 422), refused.text
    listed = ehr.get("/Consent", params={"patient": patient_id}).json()
    assert [e["resource"]["id"] for e in listed["entry"] if e["search"]["mode"] == "match"] == [
        consent["id"]
    ]


def test_the_recipient_must_be_an_identified_client_not_a_display_name(
    stack: Stack, ehr: httpx.Client
) -> None:
    patient_id, _ = handed_off(ehr)
    base = part2_consent(patient_id, EHR)
    actor = base["provision"]["actor"][0]
    unidentified = [
        {"display": EHR},
        {"display": "St Mary's inpatient unit"},
        {"reference": "Practitioner/th-1"},
        {
            "type": "Organization",
            "identifier": {"system": "urn:oid:2.16.840.1.113883.4.6", "value": "1234567893"},
        },
        {"type": "Organization", "identifier": {"system": CLIENT_ID, "value": "St Mary's unit"}},
    ]
    with stack.client(patient_token(stack.settings, patient_id)) as me:
        for reference in unidentified:
            body = dict(
                base,
                provision={**base["provision"], "actor": [dict(actor, reference=reference)]},
            )
            answer = me.post("/Consent", json=body, headers=JSON_HEADERS)
            assert answer.status_code == 422, (reference, answer.text)
            assert "Consent.provision.actor[0].reference" in json.dumps(answer.json())
        device = dict(
            base,
            provision={
                **base["provision"],
                "actor": [dict(actor, reference={"reference": "Device/st-mary-ehr"})],
            },
        )
        assert me.post("/Consent", json=device, headers=JSON_HEADERS).status_code == 201


def test_consents_over_grpc_come_from_the_patient_or_attesting_staff(
    notes: nt_grpc.NotesServiceStub, settings: Settings, patient: str
) -> None:
    def record(md: list[tuple[str, str]], **fields: Any) -> nt.RecordConsentResponse:
        request = nt.RecordConsentRequest(
            request_id=str(uuid.uuid4()), patient_id=patient, recipient=EHR, scope="sud"
        )
        for key, value in fields.items():
            if key == "signed_time":
                request.signed_time.FromJsonString(value)
            else:
                setattr(request, key, value)
        return notes.RecordConsent(request, metadata=md)

    def refused(md: list[tuple[str, str]], **fields: Any) -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as caught:
            record(md, **fields)
        return caught.value

    signed_form = {
        "signed_time": "2026-11-30T14:05:00Z",
        "signed_document": "DocumentReference/signed-part2-form-0042",
    }
    for identity in (
        bearer(auth.mint_token(settings, subject=EHR, role="system", scopes=["system/*.cruds"])),
        bearer(auth.mint_token(settings, subject="service:gateway", role="service")),
        bearer(auth.mint_token(settings, subject="admin:privacy", role="admin")),
        # Emergency access (42 CFR 2.51) is no basis for recording the patient's consent.
        as_(settings, "therapist", "th-elsewhere", break_glass=True),
    ):
        for fields in ({}, signed_form):
            error = refused(identity, **fields)
            assert error.code() == grpc.StatusCode.PERMISSION_DENIED, error.details()
    # Staff on the team: only with the signed form on file.
    error = refused(as_(settings, "case-manager", "cm-1"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) == {"signed_time", "signed_document"}
    consent = record(as_(settings, "case-manager", "cm-1"), **signed_form).consent
    assert consent.recipient == EHR
    # Another outside system neither sees nor revokes it.
    stranger = bearer(
        auth.mint_token(settings, subject=OTHER_EHR, role="system", scopes=["system/*.rs"])
    )
    listed = notes.ListConsents(nt.ListConsentsRequest(patient_id=patient), metadata=stranger)
    assert list(listed.consents) == []
    with pytest.raises(grpc.RpcError) as caught:
        notes.RevokeConsent(nt.RevokeConsentRequest(id=consent.id), metadata=stranger)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # A recipient named by a display string is no identity.
    error = refused(
        bearer(
            auth.mint_token(
                settings, subject=f"patient:{patient}", role="patient", patient_context=patient
            )
        ),
        recipient="St Mary's inpatient unit",
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error) == ["recipient"]
    # The patient, for themselves.
    mine = bearer(
        auth.mint_token(
            settings, subject=f"patient:{patient}", role="patient", patient_context=patient
        )
    )
    assert record(mine).consent.status == "active"
    other = bearer(
        auth.mint_token(settings, subject="patient:someone", role="patient", patient_context="x")
    )
    assert refused(other).code() == grpc.StatusCode.PERMISSION_DENIED


# -- defect 2: the recipient is the caller ---------------------------------------------------


def test_a_system_token_cannot_name_another_ehr_as_recipient(
    notes: nt_grpc.NotesServiceStub,
    notes_runtime: ServiceRuntime,
    settings: Settings,
    patient: str,
) -> None:
    psy = as_(settings, "psychiatrist", "psy-1")
    draft = notes.CreateNote(
        nt.CreateNoteRequest(
            request_id=str(uuid.uuid4()),
            note=nt.NoteInput(
                patient_id=patient,
                kind="progress",
                text="Buprenorphine 16 mg daily; no opioid use since intake.",
                sensitivity=["OPIOIDUD"],
            ),
        ),
        metadata=psy,
    ).notes[0]
    sud = notes.SignNote(
        nt.SignNoteRequest(id=draft.id, expected_version=draft.version), metadata=psy
    ).note
    notes.RecordConsent(
        nt.RecordConsentRequest(
            request_id=str(uuid.uuid4()),
            patient_id=patient,
            recipient=EHR,
            scope="sud",
            signed_document="DocumentReference/signed-part2-form-0042",
            signed_time={"seconds": 1_796_000_000},
        ),
        metadata=as_(settings, "case-manager", "cm-1"),
    )
    named = bearer(auth.mint_token(settings, subject=EHR, role="system", scopes=["system/*.rs"]))
    for subject, role in ((OTHER_EHR, "system"), ("admin:ops", "admin"), ("service:x", "service")):
        attacker = bearer(
            auth.mint_token(settings, subject=subject, role=role, scopes=["system/*.rs"])
        )
        with pytest.raises(grpc.RpcError) as caught:
            notes.DiscloseNote(nt.DiscloseNoteRequest(id=sud.id, recipient=EHR), metadata=attacker)
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error_reason(caught.value) == "RECIPIENT_NOT_CALLER"
        with pytest.raises(grpc.RpcError) as caught:
            notes.SearchNotes(
                nt.SearchNotesRequest(patient_id=patient, recipient=EHR), metadata=attacker
            )
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        # As itself, the attacker has no consent: nothing labelled.
        with pytest.raises(grpc.RpcError) as caught:
            notes.DiscloseNote(nt.DiscloseNoteRequest(id=sud.id), metadata=attacker)
        assert error_reason(caught.value) == "NO_ACTIVE_CONSENT"
        found = notes.SearchNotes(
            nt.SearchNotesRequest(patient_id=patient, recipient=subject), metadata=attacker
        ).notes
        assert sud.id not in {n.id for n in found}
    # The EHR the patient named gets it, as itself (recipient empty, or its own subject).
    for recipient in ("", EHR):
        body = json.loads(
            notes.DiscloseNote(
                nt.DiscloseNoteRequest(id=sud.id, recipient=recipient), metadata=named
            ).fhir_json
        )
        assert {"OPIOIDUD", "NORDSCLCD"} <= codes(body)
        found = notes.SearchNotes(
            nt.SearchNotesRequest(patient_id=patient, recipient=recipient or EHR), metadata=named
        ).notes
        assert sud.id in {n.id for n in found}


# -- defect 9: labels kept -------------------------------------------------------------------


def stored_note(stack: Stack, created: httpx.Response) -> dict[str, Any]:
    """The note as notes holds it, read by its author inside the program (the gateway answers a
    labelled create with an OperationOutcome, never the representation)."""
    note_id = created.headers["location"].split("/DocumentReference/")[1].split("/")[0]
    with harness.channel(stack.runtimes["notes"]) as channel:
        found = nt_grpc.NotesServiceStub(channel).GetNote(
            nt.GetNoteRequest(id=note_id), metadata=as_(stack.settings, "therapist", "th-1")
        )
    result: dict[str, Any] = json.loads(found.note.fhir_json)
    return result


def test_rest_note_creation_keeps_every_sensitivity_label(
    stack: Stack, ehr: httpx.Client, therapist: httpx.Client
) -> None:
    patient_id, _ = handed_off(ehr)
    with_team(stack, therapist, patient_id)
    for label in ("OPIOIDUD", "ETHUD", "ALCUD", "SUD", "ETH", "HIV", "SEX", "STD", "SDV", "MH"):
        body = note(patient_id, f"Session note ({label}).", [(ACT_CODE, label)])
        draft = therapist.post("/DocumentReference", json=body, headers=JSON_HEADERS)
        assert draft.status_code == 201, draft.text
        stored = codes(stored_note(stack, draft))
        # Kept, and confidentiality raised to R (never stored as N).
        assert {label, "R"} <= stored and "N" not in stored, (label, stored)
    very = note(patient_id, "Very restricted.", [(CONFIDENTIALITY, "V"), (ACT_CODE, "PSYTHPN")])
    created = therapist.post("/DocumentReference", json=very, headers=JSON_HEADERS)
    assert {"V", "PSYTHPN"} <= codes(stored_note(stack, created))

    # A code that is no v3 sensitivity label is refused, never dropped.
    bogus = note(patient_id, "x", [(ACT_CODE, "NOTALABEL")])
    answer = therapist.post("/DocumentReference", json=bogus, headers=JSON_HEADERS)
    assert answer.status_code == 422, answer.text
    assert "DocumentReference.meta.security" in json.dumps(answer.json())

    # OPIOIDUD is SUD for 42 CFR Part 2: no consent, no disclosure; with one, with NORDSCLCD.
    opioid = signed(
        stack,
        therapist,
        note(patient_id, "Buprenorphine induction day 3.", [(ACT_CODE, "OPIOIDUD")]),
    )
    url = f"/DocumentReference/{opioid['id']}"
    refused = ehr.get(url)
    assert refused.status_code == 403 and "NO_ACTIVE_CONSENT" in refused.text
    with stack.client(patient_token(stack.settings, patient_id)) as me:
        assert (
            me.post(
                "/Consent", json=part2_consent(patient_id, EHR), headers=JSON_HEADERS
            ).status_code
            == 201
        )
    released = ehr.get(url)
    assert released.status_code == 200, released.text
    assert {"OPIOIDUD", "NORDSCLCD"} <= codes(released.json())


# -- defect 16a: PUT Consent under a patient/ scope ------------------------------------------


def test_put_consent_under_a_patient_scope_is_answered_never_a_500(
    stack: Stack, ehr: httpx.Client
) -> None:
    patient_id, _ = handed_off(ehr)
    other_id, _ = handed_off(ehr)
    with stack.client(patient_token(stack.settings, patient_id)) as me:
        recorded = me.post("/Consent", json=part2_consent(patient_id, EHR), headers=JSON_HEADERS)
        assert recorded.status_code == 201, recorded.text
        consent = recorded.json()
        etag = recorded.headers["ETag"]
        # Junk and other patients' ids: 4xx with an OperationOutcome.
        for body in (
            dict(consent, patient={"reference": f"Patient/{other_id}"}),
            dict(consent, patient="nonsense"),
            dict(consent, status="entered-in-error"),
            {k: v for k, v in consent.items() if k != "patient"},
        ):
            answer = me.put(
                f"/Consent/{consent['id']}", json=body, headers={**JSON_HEADERS, "If-Match": etag}
            )
            assert 400 <= answer.status_code < 500, answer.text
            assert answer.json()["resourceType"] == "OperationOutcome"
        # The patient revokes their own consent.
        revoked = me.put(
            f"/Consent/{consent['id']}",
            json=dict(consent, status="inactive"),
            headers={**JSON_HEADERS, "If-Match": etag},
        )
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["status"] == "inactive"
    with stack.client(patient_token(stack.settings, other_id)) as stranger:
        answer = stranger.put(
            f"/Consent/{consent['id']}",
            json=dict(consent, status="inactive"),
            headers={**JSON_HEADERS, "If-Match": 'W/"2"'},
        )
        assert answer.status_code in (403, 404), answer.text
        assert answer.json()["resourceType"] == "OperationOutcome"


def test_put_consent_with_a_patient_scoped_ehr_token_is_a_4xx_not_a_500(
    stack: Stack, ehr: httpx.Client, therapist: httpx.Client
) -> None:
    """The report's case: `iopcare token --system --patient ID --scope 'patient/*.cruds'`."""
    patient_id, _ = handed_off(ehr)
    with_team(stack, therapist, patient_id)
    recorded = therapist.post(
        "/Consent", json=part2_consent(patient_id, EHR, **SIGNED_FORM), headers=JSON_HEADERS
    )
    assert recorded.status_code == 201, recorded.text
    consent = recorded.json()
    for subject, expected in ((OTHER_EHR, 404), (EHR, 200)):
        token = auth.mint_token(
            stack.settings,
            subject=subject,
            role="system",
            patient_context=patient_id,
            scopes=["patient/*.cruds"],
        )
        with stack.client(token) as launched:
            answer = launched.put(
                f"/Consent/{consent['id']}",
                json=dict(consent, status="inactive"),
                headers={**JSON_HEADERS, "If-Match": recorded.headers["ETag"]},
            )
            # Another EHR may not revoke the patient's consent (it does not even see it); the
            # recipient may renounce it.
            assert answer.status_code == expected, answer.text
            if expected == 404:
                assert answer.json()["resourceType"] == "OperationOutcome"
