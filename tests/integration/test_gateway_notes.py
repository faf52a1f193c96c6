"""Communication, DocumentReference, Flag and Consent through the FHIR gateway (httpx against a
real uvicorn server) in front of the real notes, careplan and scheduling services, on SQLite and
PostgreSQL; and the intake appointment `$handoff` books through scheduling."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support import harness
from tests.support.gateway import (
    FHIR_JSON,
    Stack,
    discharge_bundle,
    practitioner_token,
    stack_for,
    system_token,
)
from tests.support.plans import care_team

JSON_HEADERS = {"Content-Type": FHIR_JSON}
LOINC = "http://loinc.org"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CATEGORY = "https://iopcare.org/fhir/CodeSystem/team-message-category"
NOTICE_EXT = "https://iopcare.org/fhir/StructureDefinition/redisclosure-notice"
EHR_SUBJECT = "system:test-ehr"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    kafka_bootstrap: str,
) -> Iterator[Stack]:
    server = request.getfixturevalue("postgres_server") if request.param != "sqlite" else None
    with stack_for(
        request.param, tmp_path_factory, kafka_bootstrap, "gateway-notes", server
    ) as running:
        yield running


@pytest.fixture(scope="module")
def ehr(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client(system_token(stack.settings, subject=EHR_SUBJECT)) as client:
        yield client


@pytest.fixture(scope="module")
def therapist(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client(practitioner_token(stack.settings, "therapist", "th-1")) as client:
        yield client


def issues(response: httpx.Response) -> list[dict[str, Any]]:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    return list(body["issue"])


def expressions(response: httpx.Response) -> list[str]:
    return [e for issue in issues(response) for e in issue.get("expression", [])]


@pytest.fixture(scope="module")
def program(stack: Stack) -> Iterator[httpx.Client]:
    """The program's administrator: care teams are enrolled by the program, never by an outside
    EHR (issue 10 item 4)."""
    with stack.client(practitioner_token(stack.settings, "admin", "adm-1")) as client:
        yield client


def enrolled(ehr: httpx.Client, therapist: httpx.Client, program: httpx.Client) -> str:
    """A registered patient whose care team (th-1 a therapist on it), enrolled by the program,
    notes has projected."""
    patient = {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.19.5", "value": uuid.uuid4().hex}],
    }
    patient_id = str(ehr.post("/Patient", json=patient, headers=JSON_HEADERS).json()["id"])
    team = program.post("/CareTeam", json=care_team(patient_id), headers=JSON_HEADERS)
    assert team.status_code == 201, team.text
    harness.eventually(
        lambda: (
            therapist.get("/Communication", params={"patient": patient_id}).status_code == 200
            or None
        )
    )
    return patient_id


def message(patient_id: str, text: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Communication",
        "status": "completed",
        "subject": {"reference": f"Patient/{patient_id}"},
        "payload": [{"contentString": text}],
        **extra,
    }


def note(patient_id: str, text: str, code: str = "11506-3", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "DocumentReference",
        "status": "current",
        "docStatus": "preliminary",
        "type": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "description": "Session note",
        "content": [
            {
                "attachment": {
                    "contentType": "text/plain",
                    "data": base64.b64encode(text.encode()).decode(),
                }
            }
        ],
        **extra,
    }


def signed_note(therapist: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    draft = therapist.post("/DocumentReference", json=body, headers=JSON_HEADERS)
    assert draft.status_code == 201, draft.text
    resource = draft.json()
    version = resource.pop("meta")["versionId"]
    resource["docStatus"] = "final"
    signed = therapist.put(
        f"/DocumentReference/{resource['id']}",
        json=resource,
        headers={**JSON_HEADERS, "If-Match": f'W/"{version}"'},
    )
    assert signed.status_code == 200, signed.text
    result: dict[str, Any] = signed.json()
    assert result["docStatus"] == "final"
    return result


# -- Communication -------------------------------------------------------------------------


def test_messages_are_posted_with_their_fields_read_and_searched(
    ehr: httpx.Client, therapist: httpx.Client, program: httpx.Client
) -> None:
    patient_id = enrolled(ehr, therapist, program)
    question = therapist.post(
        "/Communication",
        json=message(
            patient_id,
            "Can we move Thursday's session?",
            category=[{"coding": [{"system": CATEGORY, "code": "question"}]}],
            priority="urgent",
            recipient=[{"reference": "Practitioner/psy-1"}],
        ),
        headers=JSON_HEADERS,
    )
    assert question.status_code == 201, question.text
    posted = question.json()
    assert posted["priority"] == "urgent"
    assert {"reference": "Practitioner/psy-1"} in posted["recipient"]
    read = therapist.get(f"/Communication/{posted['id']}")
    assert read.status_code == 200 and read.json()["id"] == posted["id"]

    answer = therapist.post(
        "/Communication",
        json=message(
            patient_id,
            "Yes, Friday works.",
            inResponseTo=[{"reference": f"Communication/{posted['id']}"}],
        ),
        headers=JSON_HEADERS,
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["inResponseTo"][0]["reference"] == f"Communication/{posted['id']}"

    questions = therapist.get(
        "/Communication", params={"patient": patient_id, "category": "question"}
    ).json()
    assert [e["resource"]["id"] for e in questions["entry"]] == [posted["id"]]
    paged = therapist.get("/Communication", params={"patient": patient_id, "_count": "1"}).json()
    assert paged["total"] == 2 and len(paged["entry"]) == 1
    assert any(link["relation"] == "next" for link in paged["link"])

    bad = {
        "Communication.category": message(
            patient_id, "x", category=[{"coding": [{"system": CATEGORY, "code": "gossip"}]}]
        ),
        "Communication.inResponseTo[0]": message(
            patient_id, "x", inResponseTo=[{"reference": "Observation/1"}]
        ),
        "Communication.payload": message(patient_id, "x", payload=[]),
        "Communication.subject": message(patient_id, "x", subject={"reference": "Group/1"}),
        # Refused by notes itself, its field named as the FHIR element.
        "Communication.partOf[0]": message(patient_id, "x", partOf=[{"reference": "a plan"}]),
    }
    for path, body in bad.items():
        if not body.get("payload"):
            body.pop("payload", None)
        response = therapist.post("/Communication", json=body, headers=JSON_HEADERS)
        assert response.status_code == 422, (path, response.text)
        assert path in expressions(response), (path, response.text)
    unknown_answer = message(
        patient_id, "x", inResponseTo=[{"reference": f"Communication/{uuid.uuid4()}"}]
    )
    response = therapist.post("/Communication", json=unknown_answer, headers=JSON_HEADERS)
    assert 400 <= response.status_code < 500
    assert therapist.get(f"/Communication/{uuid.uuid4()}").status_code == 404


def test_a_crisis_message_raises_a_flag_found_by_patient_and_status(
    ehr: httpx.Client, therapist: httpx.Client, program: httpx.Client
) -> None:
    patient_id = enrolled(ehr, therapist, program)
    crisis = message(
        patient_id,
        "Patient disclosed suicidal thoughts during group.",
        category=[{"coding": [{"system": CATEGORY, "code": "crisis"}]}],
    )
    assert therapist.post("/Communication", json=crisis, headers=JSON_HEADERS).status_code == 201
    flags = ehr.get("/Flag", params={"patient": patient_id, "status": "active"}).json()
    assert flags["total"] == 1
    assert (
        ehr.get("/Flag", params={"patient": patient_id, "status": "inactive"}).json()["total"] == 0
    )
    assert ehr.get("/Flag").status_code == 400
    everything = ehr.get(f"/Patient/{patient_id}/$everything").json()
    types = [e["resource"]["resourceType"] for e in everything["entry"]]
    assert "Flag" in types and "Communication" in types
    narrowed = ehr.get(f"/Patient/{patient_id}/$everything", params={"_type": "Flag"}).json()
    assert {e["resource"]["resourceType"] for e in narrowed["entry"]} == {"Patient", "Flag"}


# -- DocumentReference, Consent ------------------------------------------------------------


def test_notes_are_drafted_signed_searched_and_read(
    ehr: httpx.Client, therapist: httpx.Client, program: httpx.Client
) -> None:
    patient_id = enrolled(ehr, therapist, program)
    draft = therapist.post(
        "/DocumentReference",
        json=note(patient_id, "Worked on distress tolerance skills."),
        headers=JSON_HEADERS,
    )
    assert draft.status_code == 201, draft.text
    draft_id = draft.json()["id"]
    assert draft.json()["docStatus"] == "preliminary"
    # A draft is its author's alone: the EHR (outside the program) does not get it.
    assert ehr.get(f"/DocumentReference/{draft_id}").status_code == 403

    # Editing the draft's text, then signing it, each with the version it is based on.
    edited = {k: v for k, v in draft.json().items() if k != "meta"}
    edited["content"] = note(patient_id, "Worked on distress tolerance and sleep.")["content"]
    response = therapist.put(
        f"/DocumentReference/{draft_id}",
        json=edited,
        headers={**JSON_HEADERS, "If-Match": 'W/"1"'},
    )
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == 'W/"2"'
    signing = {k: v for k, v in response.json().items() if k != "meta"}
    signing["docStatus"] = "final"
    stale = therapist.put(
        f"/DocumentReference/{draft_id}",
        json=signing,
        headers={**JSON_HEADERS, "If-Match": 'W/"1"'},
    )
    assert stale.status_code == 412
    signed = therapist.put(
        f"/DocumentReference/{draft_id}",
        json=signing,
        headers={**JSON_HEADERS, "If-Match": 'W/"2"'},
    )
    assert signed.status_code == 200, signed.text
    assert signed.json()["docStatus"] == "final"
    assert signed.json()["authenticator"]["reference"] == "Practitioner/th-1"
    # Signed notes never change.
    again = {k: v for k, v in signed.json().items() if k != "meta"}
    again["description"] = "changed"
    assert (
        therapist.put(
            f"/DocumentReference/{draft_id}",
            json=again,
            headers={**JSON_HEADERS, "If-Match": 'W/"3"'},
        ).status_code
        == 409
    )

    # Now part of the record: the EHR reads it (disclosed for treatment), as does the author.
    disclosed = ehr.get(f"/DocumentReference/{draft_id}")
    assert disclosed.status_code == 200, disclosed.text
    assert base64.b64decode(disclosed.json()["content"][0]["attachment"]["data"]).startswith(
        b"Worked on distress tolerance and sleep"
    )
    assert therapist.get(f"/DocumentReference/{draft_id}/_history/3").status_code == 200

    # Search: type (LOINC), author, full text, date, paging.
    for n in range(2):
        signed_note(therapist, note(patient_id, f"Nutrition follow-up {n}: meal plan", "34904-3"))
    base = {"patient": patient_id}
    assert therapist.get("/DocumentReference", params=base).json()["total"] == 3
    by_type = therapist.get(
        "/DocumentReference", params={**base, "type": f"{LOINC}|34904-3"}
    ).json()
    assert by_type["total"] == 2
    words = therapist.get("/DocumentReference", params={**base, "_content": "sleep"}).json()
    assert [e["resource"]["id"] for e in words["entry"]] == [draft_id]
    assert (
        therapist.get("/DocumentReference", params={**base, "author": "Practitioner/psy-1"}).json()[
            "total"
        ]
        == 0
    )
    assert (
        therapist.get("/DocumentReference", params={**base, "date": "ge2001-01-01"}).json()["total"]
        == 3
    )
    first = ehr.get("/DocumentReference", params={**base, "_count": "2"}).json()
    assert first["total"] == 3 and len(first["entry"]) == 2
    rest = ehr.get(next(x["url"] for x in first["link"] if x["relation"] == "next")).json()
    assert len(rest["entry"]) == 1
    ids = {e["resource"]["id"] for e in first["entry"] + rest["entry"]}
    assert draft_id in ids and len(ids) == 3

    everything = ehr.get(f"/Patient/{patient_id}/$everything").json()
    types = {e["resource"]["resourceType"] for e in everything["entry"]}
    assert {"DocumentReference", "Patient", "CareTeam"} <= types


def test_part2_notes_leave_only_under_consent_with_the_redisclosure_label(
    stack: Stack, ehr: httpx.Client, therapist: httpx.Client, program: httpx.Client
) -> None:
    patient_id = enrolled(ehr, therapist, program)
    sud = note(
        patient_id,
        "Discussed relapse triggers (alcohol).",
        meta={"security": [{"system": ACT_CODE, "code": "SUD"}]},
    )
    # The gateway does not give a labelled note back to anyone outside the program, its author's
    # app included (issue 10: every response passes the release rule, and a write by a caller
    # refused the read is refused): the draft's representation is withheld, and it is signed
    # inside the program.
    draft = therapist.post("/DocumentReference", json=sud, headers=JSON_HEADERS)
    assert draft.status_code == 201, draft.text
    assert draft.json()["resourceType"] == "OperationOutcome"
    signed = {"id": draft.headers["location"].split("/DocumentReference/")[1].split("/")[0]}
    import grpc

    from iopcare.notes.v1 import notes_service_pb2 as nt
    from iopcare.notes.v1 import notes_service_pb2_grpc as nt_grpc
    from tests.support.notes import as_

    with harness.channel(stack.runtimes["notes"]) as channel:
        nt_grpc.NotesServiceStub(channel).SignNote(
            nt.SignNoteRequest(id=signed["id"], expected_version=1),
            metadata=as_(stack.settings, "therapist", "th-1"),
        )
    url = f"/DocumentReference/{signed['id']}"

    plain = signed_note(therapist, note(patient_id, "Attended all sessions this week."))

    # No consent: the EHR gets 403 on a read, and a search does not list it.
    refused = ehr.get(url)
    assert refused.status_code == 403
    assert "NO_ACTIVE_CONSENT" in issues(refused)[0]["diagnostics"]
    listed = ehr.get("/DocumentReference", params={"patient": patient_id}).json()
    assert [e["resource"]["id"] for e in listed["entry"]] == [plain["id"]]
    # The author may read it inside the program, but not through the gateway (outside).
    assert therapist.get(url).status_code == 403

    consent = {
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
        "category": [{"coding": [{"system": LOINC, "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient_id}"},
        "provision": {
            "type": "permit",
            "actor": [
                {
                    "role": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                "code": "IRCP",
                            }
                        ]
                    },
                    # The EHR identified by its client id (its tokens' subject), not by a name.
                    "reference": {
                        "type": "Organization",
                        "identifier": {
                            "system": "https://iopcare.org/fhir/sid/client-id",
                            "value": EHR_SUBJECT,
                        },
                        "display": "Test EHR",
                    },
                }
            ],
            "securityLabel": [{"system": ACT_CODE, "code": "SUD"}],
        },
        # The patient signed the form in the program; the therapist on the team records it
        # (42 CFR 2.31). The EHR itself may not: it is the recipient.
        "dateTime": "2026-11-30T10:00:00Z",
        "sourceReference": {"reference": "DocumentReference/signed-consent-form-1"},
    }
    assert ehr.post("/Consent", json=consent, headers=JSON_HEADERS).status_code == 403
    recorded = therapist.post("/Consent", json=consent, headers=JSON_HEADERS)
    assert recorded.status_code == 201, recorded.text
    consents = ehr.get("/Consent", params={"patient": patient_id, "status": "active"}).json()
    assert [e["resource"]["id"] for e in consents["entry"]] == [recorded.json()["id"]]

    disclosed = ehr.get(url)
    assert disclosed.status_code == 200, disclosed.text
    body = disclosed.json()
    labels = {s["code"] for s in body["meta"]["security"]}
    assert {"SUD", "NORDSCLCD"} <= labels
    assert any(e["url"] == NOTICE_EXT for e in body.get("extension", []))
    # Searches and $everything now carry it too, as disclosed.
    listed = ehr.get("/DocumentReference", params={"patient": patient_id}).json()
    hits = {e["resource"]["id"]: e["resource"] for e in listed["entry"]}
    assert set(hits) == {plain["id"], signed["id"]}
    assert "NORDSCLCD" in {s["code"] for s in hits[signed["id"]]["meta"]["security"]}
    everything = ehr.get(f"/Patient/{patient_id}/$everything").json()
    assert signed["id"] in {e["resource"].get("id") for e in everything["entry"]}

    # Only a disclosing identity may search for a recipient (notes' own rule, over gRPC).
    with (
        harness.channel(stack.runtimes["notes"]) as channel,
        pytest.raises(grpc.RpcError) as caught,
    ):
        nt_grpc.NotesServiceStub(channel).SearchNotes(
            nt.SearchNotesRequest(patient_id=patient_id, recipient=EHR_SUBJECT),
            metadata=as_(stack.settings, "therapist", "th-1"),
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED

    # The patient revokes (the therapist records it): nothing more leaves under it (42 CFR
    # 2.31(a)(6)).
    current = {k: v for k, v in recorded.json().items() if k != "meta"}
    reopened = dict(current, provision={**current["provision"], "period": {"end": "2030"}})
    assert (
        therapist.put(
            f"/Consent/{current['id']}",
            json=reopened,
            headers={**JSON_HEADERS, "If-Match": 'W/"1"'},
        ).status_code
        == 422
    )
    revoked = therapist.put(
        f"/Consent/{current['id']}",
        json=dict(current, status="inactive"),
        headers={**JSON_HEADERS, "If-Match": 'W/"1"'},
    )
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["status"] == "inactive" and revoked.headers["etag"] == 'W/"2"'
    assert (
        therapist.put(
            f"/Consent/{current['id']}",
            json=dict(current, status="active"),
            headers={**JSON_HEADERS, "If-Match": 'W/"2"'},
        ).status_code
        == 422
    )
    assert ehr.get(url).status_code == 403
    listed = ehr.get("/DocumentReference", params={"patient": patient_id}).json()
    assert {e["resource"]["id"] for e in listed["entry"]} == {plain["id"]}

    # Another EHR, not named in the consent, gets nothing either.
    with stack.client(system_token(stack.settings, subject="system:another-ehr")) as other:
        assert other.get(url).status_code == 403

    bad_consents = {
        "Consent.patient": dict(consent, patient={"reference": "Group/1"}),
        "Consent.status": dict(consent, status="draft"),
        "Consent.provision.actor": dict(consent, provision={"type": "permit"}),
    }
    for path, bad in bad_consents.items():
        response = therapist.post("/Consent", json=bad, headers=JSON_HEADERS)
        assert response.status_code == 422 and path in expressions(response), path
    # A partial date (FHIR allows "2026") starts the consent at its first instant.
    partial = dict(consent, provision={**consent["provision"], "period": {"start": "2026"}})
    response = therapist.post("/Consent", json=partial, headers=JSON_HEADERS)
    assert response.status_code == 201, response.text
    assert response.json()["provision"]["period"]["start"].startswith("2026-01-01")


def test_bad_notes_are_422_with_the_element(
    ehr: httpx.Client, therapist: httpx.Client, program: httpx.Client
) -> None:
    patient_id = enrolled(ehr, therapist, program)
    good = note(patient_id, "text")
    bad: dict[str, dict[str, Any]] = {
        "DocumentReference.type": dict(good, type={"coding": [{"system": LOINC, "code": "1-8"}]}),
        "DocumentReference.subject": dict(good, subject={"reference": "Group/g"}),
        "DocumentReference.docStatus": dict(good, docStatus="final"),
        "DocumentReference.content[0].attachment.data": dict(
            good, content=[{"attachment": {"contentType": "text/plain", "data": "@@"}}]
        ),
        "DocumentReference.content[0].attachment.contentType": dict(
            good, content=[{"attachment": {"contentType": "application/pdf", "data": "AA=="}}]
        ),
    }
    for path, body in bad.items():
        response = therapist.post("/DocumentReference", json=body, headers=JSON_HEADERS)
        assert response.status_code in (400, 422), (path, response.text)
        if response.status_code == 422:
            assert path in expressions(response), (path, response.text)
    draft = therapist.post("/DocumentReference", json=good, headers=JSON_HEADERS).json()
    moved = {k: v for k, v in draft.items() if k != "meta"}
    moved["subject"] = {"reference": "Patient/someone-else"}
    response = therapist.put(
        f"/DocumentReference/{draft['id']}",
        json=moved,
        headers={**JSON_HEADERS, "If-Match": 'W/"1"'},
    )
    assert response.status_code == 422
    assert "DocumentReference.subject" in expressions(response)
    assert therapist.get("/DocumentReference").status_code == 400
    assert (
        therapist.get(
            "/DocumentReference", params={"patient": patient_id, "author": "Org/x"}
        ).status_code
        == 400
    )
    assert ehr.get(f"/DocumentReference/{uuid.uuid4()}").status_code == 404
    # The EHR (a system identity) writes no clinical notes.
    assert ehr.post("/DocumentReference", json=good, headers=JSON_HEADERS).status_code == 403


# -- $handoff books the intake -------------------------------------------------------------


def test_handoff_books_the_intake_once_or_says_why_not(stack: Stack, ehr: httpx.Client) -> None:
    def created(response: httpx.Response) -> tuple[list[str], list[str]]:
        assert response.status_code == 200, response.text
        refs, warnings = [], []
        for parameter in response.json()["parameter"]:
            if parameter["name"] == "created":
                refs.append(parameter["valueReference"]["reference"])
            elif parameter["name"] == "outcome":
                warnings += [i["diagnostics"] for i in parameter["resource"]["issue"]]
        return refs, warnings

    # No intake-capable calendar yet: the handoff stands, and says the intake was not booked.
    refs, warnings = created(
        ehr.post("/$handoff", json=discharge_bundle(uuid.uuid4().hex[:10]), headers=JSON_HEADERS)
    )
    assert not [r for r in refs if r.startswith("Appointment/")]
    assert any("no intake appointment was booked" in w and "intake" in w for w in warnings)

    # A case manager's calendar serving intake: the next handoff books the first free hour.
    calendar = {
        "resourceType": "Schedule",
        "actor": [{"reference": f"Practitioner/cm-{uuid.uuid4().hex[:6]}"}],
        "serviceType": [
            {
                "coding": [
                    {"system": "https://iopcare.org/fhir/CodeSystem/session-type", "code": "intake"}
                ]
            }
        ],
        "extension": [
            {
                "url": "https://iopcare.org/fhir/StructureDefinition/schedule-available-time",
                "extension": [
                    *(
                        {"url": "daysOfWeek", "valueCode": d}
                        for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
                    ),
                    {"url": "availableStartTime", "valueTime": "00:00:00"},
                    {"url": "availableEndTime", "valueTime": "23:59:00"},
                ],
            }
        ],
    }
    assert ehr.post("/Schedule", json=calendar, headers=JSON_HEADERS).status_code == 201
    bundle = discharge_bundle(uuid.uuid4().hex[:10])
    refs, _ = created(ehr.post("/$handoff", json=bundle, headers=JSON_HEADERS))
    (appointment,) = [r for r in refs if r.startswith("Appointment/")]
    (patient,) = [r for r in refs if r.startswith("Patient/")]
    booked = ehr.get(f"/{appointment}").json()
    assert booked["status"] == "booked"
    assert f"{patient}" in [p["actor"]["reference"] for p in booked["participant"]]
    assert booked["serviceType"][0]["coding"][0]["code"] == "intake"

    # A repeat of the bundle books nothing more.
    again, _ = created(ehr.post("/$handoff", json=bundle, headers=JSON_HEADERS))
    assert [r for r in again if r.startswith("Appointment/")] == [appointment]
    intakes = ehr.get(
        "/Appointment",
        params={"patient": patient.split("/")[1], "service-type": "intake", "status": "booked"},
    ).json()
    assert [e["resource"]["id"] for e in intakes["entry"]] == [appointment.split("/")[1]]

    # Concurrent repeats of a new bundle: one intake between them.
    from concurrent.futures import ThreadPoolExecutor

    concurrent = discharge_bundle(uuid.uuid4().hex[:10])

    def created_or_matched(response: httpx.Response) -> list[str]:
        assert response.status_code == 200, response.text
        return [
            p["valueReference"]["reference"]
            for p in response.json()["parameter"]
            if p["name"] in ("created", "matched")
        ]

    with ThreadPoolExecutor(6) as pool:
        answers = list(
            pool.map(
                lambda _: created_or_matched(
                    ehr.post("/$handoff", json=concurrent, headers=JSON_HEADERS)
                ),
                range(6),
            )
        )
    booked_refs = {r for refs_ in answers for r in refs_ if r.startswith("Appointment/")}
    assert len(booked_refs) == 1, answers
    # Racing copies may all report the patient as matched (ADR 0012): one patient between them.
    (patient,) = {r for refs_ in answers for r in refs_ if r.startswith("Patient/")}
    intakes = ehr.get(
        "/Appointment",
        params={"patient": patient.split("/")[1], "service-type": "intake", "status": "booked"},
    ).json()
    assert intakes["total"] == 1
