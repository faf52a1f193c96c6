"""The FHIR REST gateway over HTTP (httpx against a real uvicorn server), in front of the three
services running on a real database and the session's Kafka broker."""

from __future__ import annotations

import json
import select
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iopcare.kit import auth
from tests.support import harness, hl7_examples
from tests.support.gateway import (
    FHIR_JSON,
    Stack,
    practitioner_token,
    stack_for,
    system_token,
)
from tests.support.plans import care_team, iop_plan, new_patient_id, phq9

JSON_HEADERS = {"Content-Type": FHIR_JSON}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    kafka_bootstrap: str,
) -> Iterator[Stack]:
    server = request.getfixturevalue("postgres_server") if request.param != "sqlite" else None
    with stack_for(
        request.param,
        tmp_path_factory,
        kafka_bootstrap,
        "gateway",
        server,
        max_body_bytes=256 * 1024,
    ) as running:
        yield running


@pytest.fixture(scope="module")
def ehr(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client(system_token(stack.settings)) as client:
        yield client


def register(ehr: httpx.Client, mrn: str | None = None) -> str:
    patient = {
        "resourceType": "Patient",
        "identifier": [
            {"system": "urn:oid:2.16.840.1.113883.19.5", "value": mrn or uuid.uuid4().hex}
        ],
        "name": [{"family": "Rivera", "given": ["Sam"]}],
    }
    response = ehr.post("/Patient", json=patient, headers=JSON_HEADERS)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@pytest.fixture(scope="module")
def program(stack: Stack) -> Iterator[httpx.Client]:
    """The program's administrator (a clinician-app token with user/ scopes): care teams are
    enrolled by the program, never by an outside EHR (issue 10 item 4)."""
    token = practitioner_token(stack.settings, "admin", "adm-1")
    with stack.client(token) as client:
        yield client


def enrolled_patient(ehr: httpx.Client, program: httpx.Client) -> tuple[str, str]:
    """A registered patient with an active care team the program enrolled; (patient id, team
    id)."""
    patient_id = register(ehr)
    response = program.post("/CareTeam", json=care_team(patient_id), headers=JSON_HEADERS)
    assert response.status_code == 201, response.text
    return patient_id, str(response.json()["id"])


def issues(response: httpx.Response) -> list[dict[str, Any]]:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    return list(body["issue"])


# -- capability and security ---------------------------------------------------------------


def test_metadata_is_open_and_declares_r4(stack: Stack) -> None:
    with stack.client() as anonymous:
        response = anonymous.get("/metadata")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    statement = response.json()
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    with stack.client() as anonymous:
        definition = anonymous.get("/OperationDefinition/handoff").json()
    assert definition["code"] == "handoff" and definition["system"] is True


def test_requests_without_a_valid_token_are_401(stack: Stack) -> None:
    settings = stack.settings
    other_key = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    forged = jwt.encode(
        {
            "iss": settings.token_issuer,
            "aud": settings.token_audience,
            "sub": "x",
            "role": "system",
            "iat": 0,
            "exp": 2**40,
            "scope": "system/*.cruds",
        },
        other_key,
        algorithm="ES384",
    )
    public_key = (settings.dev_key_dir / "token-signing.pub.pem").read_bytes()
    claims = {
        "iss": settings.token_issuer,
        "aud": settings.token_audience,
        "sub": "x",
        "role": "system",
        "iat": int(time.time()),
        "exp": int(time.time()) + 300,
        "scope": "system/*.cruds",
    }
    unsigned = jwt.encode(claims, None, algorithm="none")
    # Algorithm confusion: an HMAC token "signed" with the public key as the shared secret.
    confused = _hmac_token(claims, public_key)
    bad = {
        "none": None,
        "alg none": unsigned,
        "hs384 with the public key": confused,
        "expired": system_token(settings, lifetime=-120),
        "forged": forged,
        "long-lived": system_token(settings, lifetime=24 * 3600),
        "wrong audience": auth.mint_token(
            settings.model_copy(update={"token_audience": "someone-else"}),
            subject="system:x",
            role="system",
            scopes=["system/*.cruds"],
            lifetime_seconds=300,
        ),
    }
    for name, token in bad.items():
        with stack.client(token) as client:
            response = client.get("/Patient?identifier=a|b")
        assert response.status_code == 401, name
        assert issues(response)[0]["code"] == "login"
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert all(record["status"] == 401 for record in stack.audit[-len(bad) :])


def _hmac_token(claims: dict[str, Any], secret: bytes) -> str:
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    header = b64(json.dumps({"alg": "HS384", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims).encode())
    signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha384).digest()
    return f"{header}.{payload}.{b64(signature)}"


def test_scopes_limit_what_a_token_may_do(stack: Stack, ehr: httpx.Client) -> None:
    patient_id = register(ehr)
    read_only = system_token(stack.settings, ["system/Patient.read"])  # SMART v1
    with stack.client(read_only) as client:
        assert client.get(f"/Patient/{patient_id}").status_code == 200
        refused = client.post(
            "/Patient",
            json={"resourceType": "Patient", "identifier": [{"system": "s", "value": "v"}]},
            headers=JSON_HEADERS,
        )
        assert refused.status_code == 403
        assert "create" in issues(refused)[0]["diagnostics"]
        assert client.get(f"/CarePlan?patient={patient_id}").status_code == 403
    v2 = system_token(stack.settings, ["system/Patient.rs"])
    with stack.client(v2) as client:
        assert client.get(f"/Patient?_id={patient_id}").json()["total"] == 1


def test_the_services_still_apply_the_care_team_rule(
    stack: Stack, ehr: httpx.Client, program: httpx.Client
) -> None:
    patient_id, _ = enrolled_patient(ehr, program)
    stranger = practitioner_token(stack.settings, "therapist", "not-on-the-team")
    with stack.client(stranger) as client:
        response = client.get(f"/CareTeam?patient={patient_id}")
    assert response.status_code == 403
    member = practitioner_token(stack.settings, "therapist", "th-1")
    with stack.client(member) as client:
        assert client.get(f"/CareTeam?patient={patient_id}").json()["total"] == 1


def test_a_mix_of_requests_leaves_exactly_one_audit_record_each(
    stack: Stack, ehr: httpx.Client
) -> None:
    patient_id = register(ehr)
    before = len(stack.audit)
    calls = [
        lambda: ehr.get(f"/Patient/{patient_id}"),
        lambda: ehr.get("/Patient/nobody"),
        lambda: ehr.get(f"/CarePlan?patient={patient_id}"),
        lambda: ehr.get("/metadata"),
        lambda: ehr.post("/CarePlan", content=b"{", headers=JSON_HEADERS),
        lambda: ehr.delete(f"/Patient/{patient_id}"),
    ]
    for n in range(300):
        calls[n % len(calls)]()
    with stack.client() as anonymous:
        for _ in range(20):
            anonymous.get(f"/Patient/{patient_id}")
    assert len(stack.audit) - before == 320
    refused = [r for r in stack.audit[before:] if r["outcome"] == "refused"]
    # 50 each of not found, unparseable and DELETE, and the 20 without a token.
    assert len(refused) == 170
    assert sum(r["status"] == 401 for r in refused) == 20


def test_every_request_is_audited_once(stack: Stack, ehr: httpx.Client) -> None:
    before = len(stack.audit)
    ehr.get("/metadata")
    ehr.get("/Patient/does-not-exist")
    ehr.delete("/Patient/x")
    records = stack.audit[before:]
    assert [r["status"] for r in records] == [200, 404, 405]
    assert records[1]["subject"] == "system:test-ehr"
    assert all(set(r) >= {"time", "method", "path", "status", "outcome"} for r in records)


# -- resources -----------------------------------------------------------------------------


def test_patient_read_vread_history_search_and_conditional_create(ehr: httpx.Client) -> None:
    mrn = uuid.uuid4().hex
    patient_id = register(ehr, mrn)
    read = ehr.get(f"/Patient/{patient_id}")
    assert read.status_code == 200 and read.headers["etag"] == 'W/"1"'
    assert "last-modified" in read.headers
    assert ehr.get(f"/Patient/{patient_id}/_history/1").json()["id"] == patient_id
    assert ehr.get(f"/Patient/{patient_id}/_history/9").status_code == 404
    history = ehr.get(f"/Patient/{patient_id}/_history").json()
    assert history["type"] == "history" and history["total"] == 1
    found = ehr.get("/Patient", params={"identifier": f"urn:oid:2.16.840.1.113883.19.5|{mrn}"})
    assert [e["resource"]["id"] for e in found.json()["entry"]] == [patient_id]
    again = ehr.post(
        "/Patient",
        json={"resourceType": "Patient", "identifier": [{"system": "urn:x", "value": "y"}]},
        headers={
            **JSON_HEADERS,
            "If-None-Exist": f"identifier=urn:oid:2.16.840.1.113883.19.5|{mrn}",
        },
    )
    assert again.status_code == 200 and again.json()["id"] == patient_id
    assert ehr.get("/Patient").status_code == 400  # no criteria: too costly


def test_care_plan_lifecycle_over_rest(ehr: httpx.Client, program: httpx.Client) -> None:
    patient_id, team_id = enrolled_patient(ehr, program)
    plan = iop_plan(patient_id, team_id)
    plan["status"] = "draft"
    created = ehr.post("/CarePlan", json=plan, headers=JSON_HEADERS)
    assert created.status_code == 201, created.text
    assert created.headers["etag"] == 'W/"1"'
    assert created.headers["location"].endswith("/_history/1")
    plan = created.json()
    plan["title"] = "IOP plan, revised"
    without_meta = {k: v for k, v in plan.items() if k != "meta"}
    no_version = ehr.put(f"/CarePlan/{plan['id']}", json=without_meta, headers=JSON_HEADERS)
    assert no_version.status_code == 428
    updated = ehr.put(
        f"/CarePlan/{plan['id']}",
        json=plan,
        headers={**JSON_HEADERS, "If-Match": 'W/"1"', "Prefer": "return=minimal"},
    )
    assert updated.status_code == 200, updated.text
    assert updated.content == b"" and updated.headers["etag"] == 'W/"2"'
    stale = ehr.put(
        f"/CarePlan/{plan['id']}", json=plan, headers={**JSON_HEADERS, "If-Match": 'W/"1"'}
    )
    assert stale.status_code == 412
    assert stale.headers["etag"] == 'W/"2"'
    assert ehr.get(f"/CarePlan/{plan['id']}/_history/1").json()["title"] != "IOP plan, revised"
    assert ehr.get(f"/CarePlan/{plan['id']}/_history").json()["total"] == 2
    trimmed = ehr.get(f"/CarePlan/{plan['id']}", params={"_elements": "status,title"}).json()
    # the listed elements, and those CarePlan requires (FHIR: servers SHOULD return them)
    assert set(trimmed) == {"resourceType", "id", "meta", "status", "title", "intent", "subject"}
    assert trimmed["meta"]["tag"][0]["code"] == "SUBSETTED"
    wrong_id = ehr.put("/CarePlan/other", json=plan, headers={**JSON_HEADERS, "If-Match": 'W/"2"'})
    assert wrong_id.status_code == 400
    assert ehr.put(f"/Goal/{plan['id']}", json={}, headers=JSON_HEADERS).status_code == 405


def test_search_filters_pages_includes_and_summarises(
    ehr: httpx.Client, program: httpx.Client
) -> None:
    patient_id, team_id = enrolled_patient(ehr, program)
    for title in ("first", "second", "third"):
        plan = iop_plan(patient_id, team_id)
        plan.update(status="draft", title=title)
        assert ehr.post("/CarePlan", json=plan, headers=JSON_HEADERS).status_code == 201
    page = ehr.get("/CarePlan", params={"patient": patient_id, "_count": 2}).json()
    assert page["total"] == 3 and len(page["entry"]) == 2
    next_url = next(link["url"] for link in page["link"] if link["relation"] == "next")
    rest = ehr.get(next_url).json()
    assert len(rest["entry"]) == 1
    assert "previous" in {link["relation"] for link in rest["link"]}
    titles = {e["resource"]["title"] for e in page["entry"] + rest["entry"]}
    assert titles == {"first", "second", "third"}
    assert (
        ehr.get(
            "/CarePlan", params={"subject": f"Patient/{patient_id}", "status": "active"}
        ).json()["total"]
        == 0
    )
    with_patient = ehr.get(
        "/CarePlan", params={"patient": patient_id, "_include": "CarePlan:subject"}
    ).json()
    modes = [e["search"]["mode"] for e in with_patient["entry"]]
    assert modes.count("include") == 1 and modes.count("match") == 3
    count = ehr.get("/CarePlan", params={"patient": patient_id, "_summary": "count"}).json()
    assert count["total"] == 3 and "entry" not in count
    summary = ehr.get("/CarePlan", params={"patient": patient_id, "_summary": "true"}).json()
    assert all("activity" not in e["resource"] for e in summary["entry"])
    lately = ehr.get("/CarePlan", params={"patient": patient_id, "_lastUpdated": "ge2020-01-01"})
    assert lately.json()["total"] == 3
    assert (
        ehr.get("/CarePlan", params={"patient": patient_id, "_lastUpdated": "lt2020"}).json()[
            "total"
        ]
        == 0
    )
    unknown = ehr.get("/CarePlan", params={"patient": patient_id, "colour": "blue"})
    assert unknown.status_code == 400
    assert ehr.get("/CarePlan").status_code == 400  # one patient at a time
    foreign = ehr.get(
        "/CarePlan", params={"patient": f"https://other.example/fhir/Patient/{patient_id}"}
    )
    assert foreign.status_code == 400  # another server's patient is not ours


def test_goals_measures_and_everything(ehr: httpx.Client, program: httpx.Client) -> None:
    patient_id, _ = enrolled_patient(ehr, program)
    measure = phq9(patient_id, 12)
    recorded = ehr.post("/Observation", json=measure, headers=JSON_HEADERS)
    assert recorded.status_code == 201, recorded.text
    obs_id = recorded.json()["id"]
    assert ehr.get(f"/Observation/{obs_id}").json()["id"] == obs_id
    assert (
        ehr.get(
            "/Observation", params={"patient": patient_id, "code": "http://loinc.org|44261-6"}
        ).json()["total"]
        == 1
    )
    assert (
        ehr.get("/Observation", params={"patient": patient_id, "code": "70274-6"}).json()["total"]
        == 0
    )
    everything = ehr.get(f"/Patient/{patient_id}/$everything").json()
    types = {e["resource"]["resourceType"] for e in everything["entry"]}
    assert {"Patient", "CareTeam", "Observation"} <= types
    only = ehr.get(f"/Patient/{patient_id}/$everything", params={"_type": "Observation"}).json()
    assert {e["resource"]["resourceType"] for e in only["entry"]} == {"Patient", "Observation"}


def test_official_hl7_examples_go_through_the_gateway(stack: Stack, ehr: httpx.Client) -> None:
    reason = hl7_examples.unavailable()
    if reason is not None:
        harness.missing(reason)
    registered = ""
    for path in hl7_examples.examples("Patient"):
        example = json.loads(path.read_text())
        response = ehr.post("/Patient", content=path.read_bytes(), headers=JSON_HEADERS)
        if example.get("identifier") and all(
            i.get("system") and i.get("value") for i in example["identifier"]
        ):
            assert response.status_code in (200, 201), (path.name, response.text)
            assert response.json()["identifier"] == example["identifier"]
            registered = registered or response.json()["id"]
        else:  # the registry needs identifiers with system and value: refused, never a 500
            assert response.status_code == 422, (path.name, response.text)
    created = 0
    for path in hl7_examples.examples("CarePlan"):
        example = json.loads(path.read_text())
        # As published, they name patients by the example ids (Patient/example): not registered
        # here, so 422 naming the element (test-matrix D7).
        response = ehr.post("/CarePlan", content=path.read_bytes(), headers=JSON_HEADERS)
        assert response.status_code == 422, (path.name, response.text)
        assert issues(response)[0].get("expression") == ["CarePlan.subject"], path.name
        # About a patient registered above (every reference to the example's patient, the
        # plan's subject and its contained goals' alike: a contained Goal of another patient is
        # refused), they are taken in or refused for a reason.
        original = str((example.get("subject") or {}).get("reference", ""))
        if original:
            text = json.dumps(example).replace(f'"{original}"', f'"Patient/{registered}"')
            example = json.loads(text)
        example["subject"] = {"reference": f"Patient/{registered}"}
        response = ehr.post("/CarePlan", json=example, headers=JSON_HEADERS)
        assert response.status_code < 500, (path.name, response.text)
        if response.status_code == 201:
            created += 1
            assert response.json()["subject"] == example["subject"]
        else:
            assert issues(response)
    assert created >= 1
    # Every other official example of a type the gateway creates, about the registered patient:
    # taken in or refused with an OperationOutcome, never a server error.
    outcomes: dict[str, list[int]] = {}
    patient_element = {"EpisodeOfCare": "patient"}
    for resource_type in ("CareTeam", "Goal", "Observation", "EpisodeOfCare", "Communication"):
        for path in hl7_examples.examples(resource_type):
            example = json.loads(path.read_text())
            element = patient_element.get(resource_type, "subject")
            if isinstance(example.get(element), dict) and str(
                example[element].get("reference", "")
            ).startswith("Patient/"):
                example[element] = {"reference": f"Patient/{registered}"}
            response = ehr.post(f"/{resource_type}", json=example, headers=JSON_HEADERS)
            assert response.status_code < 500, (path.name, response.text)
            if response.status_code >= 400:
                assert issues(response), path.name
            outcomes.setdefault(resource_type, []).append(response.status_code)
    assert all(outcomes.values())
    assert any(status in (200, 201) for statuses in outcomes.values() for status in statuses)


# -- bad input -----------------------------------------------------------------------------


def test_bad_input_gets_the_right_status_and_an_outcome(stack: Stack, ehr: httpx.Client) -> None:
    cases = [
        (ehr.post("/CarePlan", content=b'{"resourceType": "CarePl', headers=JSON_HEADERS), 400),
        (ehr.post("/CarePlan", content=b'{"status": "draft"}', headers=JSON_HEADERS), 400),
        (ehr.post("/CarePlan", content=b'{"a": 1, "a": 2}', headers=JSON_HEADERS), 400),
        (ehr.post("/CarePlan", content=b"\xff\xfe", headers=JSON_HEADERS), 400),
        (ehr.post("/CarePlan", json={"resourceType": "Goal"}, headers=JSON_HEADERS), 400),
        (ehr.get("/Unicorn/1"), 404),
        (ehr.get("/Medication/1"), 404),
        (ehr.get("/CarePlan/nope"), 404),
        (ehr.delete("/CarePlan/x"), 405),
        (
            ehr.post(
                "/CarePlan",
                content=b"<CarePlan/>",
                headers={"Content-Type": "application/fhir+xml"},
            ),
            415,
        ),
        (ehr.get("/metadata", params={"_format": "xml"}), 406),
        (ehr.get("/metadata", headers={"Accept": "application/fhir+xml"}), 406),
        (ehr.post("/CarePlan", content=b"x" * (300 * 1024), headers=JSON_HEADERS), 413),
        (ehr.post("/CarePlan", content=b"[" * 100_000, headers=JSON_HEADERS), 400),
        (
            ehr.post(
                "/CarePlan",
                content=b'{"resourceType": "CarePlan", "x": "\x00"}',
                headers=JSON_HEADERS,
            ),
            400,
        ),
        (
            ehr.post(
                "",
                json={
                    "resourceType": "Bundle",
                    "type": "batch",
                    "entry": [{"request": {"method": "GET", "url": "metadata"}}] * 1500,
                },
                headers=JSON_HEADERS,
            ),
            413,
        ),
    ]
    for response, status in cases:
        assert response.status_code == status, (status, response.text)
        assert issues(response)
    # A reference to a patient this server does not know: 422 naming the element (D7).
    unknown = ehr.post(
        "/CarePlan",
        json={
            "resourceType": "CarePlan",
            "status": "draft",
            "intent": "plan",
            "subject": {"reference": f"Patient/{new_patient_id()}"},
        },
        headers=JSON_HEADERS,
    )
    assert unknown.status_code == 422
    assert [i.get("expression") for i in issues(unknown)] == [["CarePlan.subject"]]
    patient = ehr.post(
        "/Patient",
        json={
            "resourceType": "Patient",
            "identifier": [{"system": "urn:oid:2.16.840.1.113883.19.5", "value": new_patient_id()}],
        },
        headers=JSON_HEADERS,
    ).json()["id"]
    invalid = ehr.post(
        "/CarePlan",
        json={
            "resourceType": "CarePlan",
            "status": "sideways",
            "intent": "plan",
            "subject": {"reference": f"Patient/{patient}"},
        },
        headers=JSON_HEADERS,
    )
    assert invalid.status_code == 422
    assert any("CarePlan.status" in i.get("expression", [""])[0] for i in issues(invalid))


def test_a_streamed_body_over_the_limit_is_cut_off(stack: Stack) -> None:
    """A chunked body (no Content-Length) is counted while it streams: the server answers 413
    once it passes the limit (256 KiB here) instead of reading all a client is willing to send."""
    url = httpx.URL(stack.base_url)
    token = system_token(stack.settings)
    sent = 0
    with socket.create_connection((url.host, url.port), timeout=10) as conn:
        conn.sendall(
            (
                f"POST {url.path}/CarePlan HTTP/1.1\r\nHost: {url.host}\r\n"
                f"Authorization: Bearer {token}\r\nContent-Type: {FHIR_JSON}\r\n"
                "Transfer-Encoding: chunked\r\n\r\n"
            ).encode()
        )
        chunk = b"10000\r\n" + b" " * 65536 + b"\r\n"
        answer = b""
        while sent < 64 * 1024 * 1024:
            readable, _, _ = select.select([conn], [], [], 0)
            if readable:
                answer = conn.recv(65536)
                break
            try:
                conn.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                answer = conn.recv(65536)
                break
            sent += 65536
    assert answer.startswith(b"HTTP/1.1 413"), answer[:100]
    assert sent < 8 * 1024 * 1024


# -- batch and transaction -----------------------------------------------------------------


def test_batch_resolves_urn_uuid_references_and_reports_each_entry(
    ehr: httpx.Client, program: httpx.Client
) -> None:
    patient_id, _ = enrolled_patient(ehr, program)
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "request": {"method": "POST", "url": "Observation"},
                "resource": {**phq9(patient_id, 9), "subject": {"reference": "urn:uuid:p"}},
            },
            {
                "fullUrl": "urn:uuid:p",
                "request": {"method": "POST", "url": "Patient"},
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [{"system": "urn:t", "value": uuid.uuid4().hex}],
                },
            },
            {"request": {"method": "GET", "url": f"CareTeam?patient={patient_id}"}},
            {"request": {"method": "GET", "url": "CarePlan/missing"}},
            {
                "request": {"method": "POST", "url": "$handoff"},
                "resource": {"resourceType": "Bundle", "type": "collection"},
            },
        ],
    }
    response = ehr.post("", json=bundle, headers=JSON_HEADERS)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["type"] == "batch-response"
    statuses = [e["response"]["status"] for e in body["entry"]]
    # The observation names the patient created in the same batch; the new patient has no team
    # yet, but a system identity may record for any patient.
    assert statuses[1].startswith("201")
    new_patient = body["entry"][1]["resource"]["id"]
    assert statuses[0].startswith("201"), body["entry"][0]
    assert body["entry"][0]["resource"]["subject"]["reference"] == f"Patient/{new_patient}"
    assert statuses[2].startswith("200") and statuses[3].startswith("404")
    assert body["entry"][3]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert statuses[4].startswith("400")  # an entry is one resource interaction, not a bundle


def test_transaction_spanning_services_is_refused_and_writes_nothing(
    ehr: httpx.Client, program: httpx.Client
) -> None:
    patient_id, _ = enrolled_patient(ehr, program)
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"request": {"method": "POST", "url": "Observation"}, "resource": phq9(patient_id, 5)},
            {
                "request": {"method": "POST", "url": "Communication"},
                "resource": {
                    "resourceType": "Communication",
                    "status": "completed",
                    "subject": {"reference": f"Patient/{patient_id}"},
                    "payload": [{"contentString": "hello"}],
                },
            },
        ],
    }
    response = ehr.post("", json=bundle, headers=JSON_HEADERS)
    assert response.status_code == 422
    assert "careplan and notes" in issues(response)[0]["diagnostics"]
    assert ehr.get("/Observation", params={"patient": patient_id}).json()["total"] == 0


def test_transaction_with_an_invalid_entry_writes_nothing(
    ehr: httpx.Client, program: httpx.Client
) -> None:
    patient_id, _ = enrolled_patient(ehr, program)
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"request": {"method": "POST", "url": "Observation"}, "resource": phq9(patient_id, 5)},
            {
                "request": {"method": "POST", "url": "Goal"},
                "resource": {"resourceType": "Goal", "lifecycleStatus": 7},
            },
        ],
    }
    response = ehr.post("", json=bundle, headers=JSON_HEADERS)
    assert response.status_code == 422
    assert any("Bundle.entry[1]" in i.get("expression", [""])[0] for i in issues(response))
    assert ehr.get("/Observation", params={"patient": patient_id}).json()["total"] == 0


def test_single_write_transaction_is_applied(ehr: httpx.Client, program: httpx.Client) -> None:
    patient_id, _ = enrolled_patient(ehr, program)
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"request": {"method": "POST", "url": "Observation"}, "resource": phq9(patient_id, 5)},
            {"request": {"method": "GET", "url": f"Patient/{patient_id}"}},
        ],
    }
    response = ehr.post("", json=bundle, headers=JSON_HEADERS)
    assert response.status_code == 200, response.text
    assert response.json()["type"] == "transaction-response"
    assert ehr.get("/Observation", params={"patient": patient_id}).json()["total"] == 1


# -- fuzzing (test-matrix D12) -------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, min_size=1, max_size=4)
        | st.dictionaries(st.text(max_size=10), children, min_size=1, max_size=4)
    ),
    max_leaves=20,
)
RESOURCE_TYPES = st.sampled_from(
    [
        "CarePlan",
        "Patient",
        "Goal",
        "Observation",
        "CareTeam",
        "EpisodeOfCare",
        "Communication",
        "Bundle",
        "Basic",
        "",
    ]
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    path=st.sampled_from(
        [
            "",
            "CarePlan",
            "CarePlan/x",
            "Patient/_search",
            "$handoff",
            "Goal/1/_history/1",
            "metadata",
            "Patient/p/$everything",
            "EpisodeOfCare/e/$handoff-summary",
        ]
    ),
    resource_type=RESOURCE_TYPES,
    fields=st.dictionaries(
        st.sampled_from(
            [
                "status",
                "subject",
                "entry",
                "type",
                "id",
                "meta",
                "identifier",
                "intent",
                "patient",
                "x",
            ]
        ),
        JSON_VALUES,
        max_size=5,
    ),
    query=st.dictionaries(
        st.sampled_from(
            ["patient", "_count", "_offset", "_summary", "date", "status", "_include", "identifier"]
        ),
        st.text(max_size=12),
        max_size=3,
    ),
)
def test_no_request_gets_a_server_error(
    ehr: httpx.Client,
    method: str,
    path: str,
    resource_type: str,
    fields: dict[str, Any],
    query: dict[str, str],
) -> None:
    body = {"resourceType": resource_type, **fields} if resource_type else fields
    response = ehr.request(
        method, f"/{path}", params=query, content=json.dumps(body).encode(), headers=JSON_HEADERS
    )
    assert response.status_code < 500, (method, path, body, response.text)
    if response.status_code >= 400:
        assert response.json()["resourceType"] == "OperationOutcome"


def test_concurrent_updates_from_one_version_exactly_one_wins(
    ehr: httpx.Client, program: httpx.Client
) -> None:
    """Test-matrix B1/B2 over REST: 20 clients update from version 1 at once."""
    from concurrent.futures import ThreadPoolExecutor

    patient_id, team_id = enrolled_patient(ehr, program)
    plan = iop_plan(patient_id, team_id)
    plan["status"] = "draft"
    created = ehr.post("/CarePlan", json=plan, headers=JSON_HEADERS).json()

    def update(n: int) -> int:
        body = {**created, "title": f"edit {n}"}
        return ehr.put(
            f"/CarePlan/{created['id']}", json=body, headers={**JSON_HEADERS, "If-Match": 'W/"1"'}
        ).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(update, range(20)))
    assert statuses.count(200) == 1, statuses
    assert statuses.count(412) == 19, statuses
    assert ehr.get(f"/CarePlan/{created['id']}/_history").json()["total"] == 2


def test_concurrent_conditional_creates_make_one_resource(
    ehr: httpx.Client, program: httpx.Client
) -> None:
    """Test-matrix B8: ten clients send the same conditional create at once (or one client
    retries after a timeout): the same criteria from the same caller share a request id."""
    from concurrent.futures import ThreadPoolExecutor

    patient_id, _ = enrolled_patient(ehr, program)
    measure = phq9(patient_id, 11, when="2026-11-20T10:00:00Z")
    condition = f"patient={patient_id}&code=http://loinc.org|44261-6&date=2026-11-20"

    def create(_: int) -> httpx.Response:
        return ehr.post(
            "/Observation", json=measure, headers={**JSON_HEADERS, "If-None-Exist": condition}
        )

    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(pool.map(create, range(10)))
    assert all(r.status_code in (200, 201) for r in responses), [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert ehr.get("/Observation", params={"patient": patient_id}).json()["total"] == 1


def test_responses_are_not_cached_and_carry_a_request_id(stack: Stack, ehr: httpx.Client) -> None:
    response = ehr.get("/Patient/nobody", headers={"X-Request-Id": "ehr-trace-42"})
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-request-id"] == "ehr-trace-42"
    assert stack.audit[-1]["request_id"] == "ehr-trace-42"
    odd = ehr.get("/metadata", headers={"X-Request-Id": "<script>"})
    assert odd.headers["x-request-id"] != "<script>"


def test_a_patient_scoped_token_sees_only_its_patient(
    stack: Stack, ehr: httpx.Client, program: httpx.Client
) -> None:
    """Test-matrix C8: a token with `patient/` scopes and a launch context reads that patient's
    records and nobody else's, and cannot write with read scopes."""
    mine, team = enrolled_patient(ehr, program)
    other, other_team = enrolled_patient(ehr, program)
    plans = {}
    for patient, team_id in ((mine, team), (other, other_team)):
        plan = iop_plan(patient, team_id)
        plan["status"] = "draft"
        plans[patient] = ehr.post("/CarePlan", json=plan, headers=JSON_HEADERS).json()["id"]
    token = auth.mint_token(
        stack.settings,
        subject="system:patient-app",
        role="system",
        scopes=["patient/*.rs"],
        lifetime_seconds=300,
        patient_context=mine,
    )
    with stack.client(token) as app:
        assert app.get(f"/CarePlan/{plans[mine]}").status_code == 200
        assert app.get(f"/CarePlan/{plans[other]}").status_code == 404
        assert app.get(f"/Patient/{other}").status_code == 404
        assert app.get(f"/CarePlan/{plans[other]}/_history").status_code == 404
        implicit = app.get("/CarePlan").json()  # no patient given: the launch context's
        assert [e["resource"]["id"] for e in implicit["entry"]] == [plans[mine]]
        assert app.get("/CarePlan", params={"patient": other}).status_code == 403
        assert app.get("/Patient", params={"_id": other}).status_code == 403
        assert app.get(f"/Patient/{other}/$everything").status_code == 404
        assert app.get(f"/Patient/{mine}/$everything").status_code == 200
        write = app.post("/Observation", json=phq9(mine, 3), headers=JSON_HEADERS)
        assert write.status_code == 403
    without_context = system_token(stack.settings, ["patient/*.rs"])
    with stack.client(without_context) as app:
        assert app.get(f"/CarePlan/{plans[mine]}").status_code == 403
