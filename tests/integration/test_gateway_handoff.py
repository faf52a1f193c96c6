"""`POST /fhir/$handoff`: step-down handoffs from an inpatient unit, over HTTP, into the real
services, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import copy
import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import httpx
import pytest

from iopcare.kit import auth
from tests.support import harness
from tests.support.gateway import (
    FHIR_JSON,
    MRN_SYSTEM,
    Stack,
    discharge_bundle,
    hl7_bundle_dir,
    in_program,
    stack_for,
    system_token,
)

JSON_HEADERS = {"Content-Type": FHIR_JSON}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    kafka_bootstrap: str,
) -> Iterator[Stack]:
    server = request.getfixturevalue("postgres_server") if request.param != "sqlite" else None
    with stack_for(request.param, tmp_path_factory, kafka_bootstrap, "handoff", server) as running:
        yield running


@pytest.fixture(scope="module")
def ehr(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client(system_token(stack.settings, subject="system:st-mary-inpatient")) as client:
        yield client


def ehr_history_labels(stack: Stack, plan_id: str) -> list[set[str]]:
    """The labels of every stored version of a plan (inside the program)."""
    from iopcare.careplan.v1 import careplan_service_pb2 as pb
    from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
    from iopcare.kit import auth
    from iopcare.kit.rpc import bearer

    token = auth.service_token(stack.settings, "test")  # an internal identity, not an EHR
    with harness.channel(stack.runtimes["careplan"]) as channel:
        versions = (
            pb_grpc.CarePlanServiceStub(channel)
            .ListResourceVersions(
                pb.ListResourceVersionsRequest(resource_type="CarePlan", id=plan_id),
                metadata=bearer(token),
            )
            .versions
        )
    return [
        {s["code"] for s in json.loads(v.fhir_json).get("meta", {}).get("security", [])}
        for v in versions
    ]


def outcome_of(response: httpx.Response) -> dict[str, list[str]]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["resourceType"] == "Parameters"
    result: dict[str, list[str]] = {"created": [], "matched": [], "warnings": []}
    for parameter in body["parameter"]:
        if parameter["name"] in ("created", "matched"):
            result[parameter["name"]].append(parameter["valueReference"]["reference"])
        elif parameter["name"] == "outcome":
            result["warnings"] += [
                i["diagnostics"]
                for i in parameter["resource"]["issue"]
                if i["severity"] == "warning"
            ]
    return result


def plan_goals(stack: Stack, plan: dict[str, Any]) -> list[dict[str, Any]]:
    """The plan's goals: Goals of their own, never contained (ADR 0022)."""
    assert not any(c["resourceType"] == "Goal" for c in plan.get("contained", []))
    refs = [g["reference"] for g in plan["goal"]]
    assert all(r.startswith("Goal/") for r in refs)
    return [in_program(stack, "Goal", r.split("/")[1]) for r in refs]


def ids(refs: list[str], resource_type: str) -> list[str]:
    return [r.split("/")[1] for r in refs if r.startswith(f"{resource_type}/")]


def test_discharge_document_becomes_patient_stay_plan_and_note(
    stack: Stack, ehr: httpx.Client
) -> None:
    mrn = uuid.uuid4().hex[:10]
    response = ehr.post("/$handoff", json=discharge_bundle(mrn), headers=JSON_HEADERS)
    result = outcome_of(response)
    (patient_id,) = ids(result["created"], "Patient")
    (episode_id,) = ids(result["created"], "EpisodeOfCare")
    (plan_id,) = ids(result["created"], "CarePlan")
    assert len(ids(result["created"], "Communication")) == 1
    # The last PHQ-9 becomes a measure, the Composition a discharge summary note, the discharging
    # physician a registered Practitioner (ADR 0030) ...
    assert len(ids(result["created"], "Observation")) == 1
    assert len(ids(result["created"], "DocumentReference")) == 1
    assert len(ids(result["created"], "Practitioner")) == 1
    # ... entries not taken in are reported, as is the intake appointment no RPC can propose yet.
    assert not any("Observation" in w for w in result["warnings"])
    assert any("Encounter" in w for w in result["warnings"])
    assert any("intake" in w for w in result["warnings"])

    # Drawn from SUD-labelled records, the stay and the plan carry that label, and the gateway
    # does not let them out without a consent it can check (42 CFR Part 2) ...
    for path in (f"/EpisodeOfCare/{episode_id}", f"/CarePlan/{plan_id}"):
        withheld = ehr.get(path)
        assert withheld.status_code == 403
        assert withheld.json()["issue"][0]["code"] == "suppressed"
    search = ehr.get("/CarePlan", params={"patient": patient_id}).json()
    assert search["total"] == 0
    assert search["entry"][-1]["resource"]["issue"][0]["code"] == "suppressed"
    # ... while inside the program they are whole.
    episode = in_program(stack, "EpisodeOfCare", episode_id)
    assert episode["status"] == "planned"
    assert episode["patient"]["reference"] == f"Patient/{patient_id}"
    assert episode["referralRequest"][0]["identifier"]["value"] == f"ref-{mrn}"
    plan = in_program(stack, "CarePlan", plan_id)
    assert plan["status"] == "draft"
    # Drafted from the program template for the SUD diagnosis with the inbound depression: the
    # co-occurring disorders program, activities and goals to start from.
    assert plan["activity"] and "F10.20" in plan["description"]
    assert plan["title"].startswith("Co-occurring disorders IOP")
    assert "note" not in plan
    goals = plan_goals(stack, plan)
    # Each goal carries the plan's labels (they say as much as the plan does).
    assert goals and all({s["code"] for s in g["meta"]["security"]} >= {"ETH", "R"} for g in goals)
    history = ehr_history_labels(stack, plan_id)
    assert history == [{"ETH", "R"}]  # labelled from its first version on
    contained = {c["id"]: c for c in plan["contained"] if c["resourceType"] != "Goal"}
    addressed = [contained[a["reference"][1:]] for a in plan["addresses"]]
    assert sorted(c["code"]["coding"][0]["code"] for c in addressed) == ["F10.20", "F32.1"]
    supporting = {s["reference"] for s in plan["supportingInfo"]}
    assert f"EpisodeOfCare/{episode_id}" in supporting
    kinds = sorted(contained[s[1:]]["resourceType"] for s in supporting if s.startswith("#"))
    assert kinds == ["AllergyIntolerance", "MedicationRequest", "MedicationStatement"]
    assert all(
        c["subject" if "subject" in c else "patient"]["reference"] == f"Patient/{patient_id}"
        for c in contained.values()
    )
    # Labels are kept on each copied resource, and the plan carries all of its sources'.
    sud = next(c for c in addressed if c["code"]["coding"][0]["code"] == "F10.20")
    assert {label["code"] for label in sud["meta"]["security"]} == {"ETH", "R"}
    assert {label["code"] for label in plan["meta"]["security"]} >= {"ETH", "R"}
    # The inbound patient is labelled R (restricted): kept, and so withheld from an EHR without
    # the patient's consent (issue 10, defect 11).
    assert ehr.get(f"/Patient/{patient_id}").status_code == 403
    patient = in_program(stack, "Patient", patient_id)
    assert patient["identifier"][0]["value"] == mrn
    assert patient["meta"]["security"][0]["code"] == "R"
    thread = ehr.get("/Communication", params={"patient": patient_id}).json()
    # Messages derived from the labelled plan ("Care plan created ...") are withheld with it
    # (issue 10, defect 10) and counted in an OperationOutcome entry.
    texts = [
        e["resource"]["payload"][0]["contentString"]
        for e in thread.get("entry", [])
        if e["resource"]["resourceType"] == "Communication"
    ]
    assert any("Step-down handoff" in t and f"CarePlan/{plan_id}" in t for t in texts)
    assert not any("Alcohol" in t or "naltrexone" in t for t in texts)  # no clinical content


def test_diagnoses_no_program_template_covers_get_the_general_plan_with_a_note(
    stack: Stack, ehr: httpx.Client
) -> None:
    bundle = discharge_bundle(uuid.uuid4().hex[:10])
    unmatched = iter(["J45.909", "E11.9"])  # asthma, type 2 diabetes: no IOP program's
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "Condition":
            entry["resource"]["code"]["coding"][0]["code"] = next(unmatched)
    result = outcome_of(ehr.post("/$handoff", json=bundle, headers=JSON_HEADERS))
    (plan_id,) = ids(result["created"], "CarePlan")
    plan = in_program(stack, "CarePlan", plan_id)
    # Never an empty plan: the general IOP plan, saying why, with the inbound content.
    assert (plan["status"], plan["title"]) == ("draft", "General IOP")
    assert [n["text"] for n in plan["note"]] == [
        "No program template matched the diagnoses (J45.909, E11.9); the general IOP plan "
        "was used. Review it against the patient's needs."
    ]
    activities = {a["detail"]["code"]["coding"][0]["code"] for a in plan["activity"]}
    assert {"76168009", "75516001", "10197000", "182836005", "737492002"} <= activities
    goals = plan_goals(stack, plan)
    assert sorted(g["target"][0]["measure"]["coding"][0]["code"] for g in goals) == [
        "44261-6",
        "70274-6",
    ]
    addressed = {a["reference"] for a in plan["addresses"]}
    conditions = [c for c in plan["contained"] if c["resourceType"] == "Condition"]
    assert {f"#{c['id']}" for c in conditions} == addressed and len(conditions) == 2


def test_a_handoff_without_an_icd10_diagnosis_gets_the_general_plan_with_activities(
    stack: Stack, ehr: httpx.Client
) -> None:
    """Issue 13 gap: Conditions coded only in SNOMED CT (no ICD-10-CM) once got a plan of its
    own without activities; now the general IOP plan, with the inbound content and labels,
    once under the handoff's request ids."""
    bundle = discharge_bundle(uuid.uuid4().hex[:10])
    snomed = iter([("7200002", "Alcoholism"), ("35489007", "Depressive disorder")])
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "Condition":
            code, display = next(snomed)
            entry["resource"]["code"]["coding"] = [
                {"system": "http://snomed.info/sct", "code": code, "display": display}
            ]
    first = outcome_of(ehr.post("/$handoff", json=bundle, headers=JSON_HEADERS))
    (plan_id,) = ids(first["created"], "CarePlan")
    plan = in_program(stack, "CarePlan", plan_id)
    assert (plan["status"], plan["title"]) == ("draft", "General IOP")
    activities = {a["detail"]["code"]["coding"][0]["code"] for a in plan["activity"]}
    assert {"76168009", "75516001", "10197000", "182836005", "737492002"} <= activities
    assert [n["text"] for n in plan["note"]] == [
        "No ICD-10-CM diagnosis was given; the general IOP plan was used. Review it against "
        "the patient's needs."
    ]
    assert plan_goals(stack, plan)
    conditions = [c for c in plan["contained"] if c["resourceType"] == "Condition"]
    assert sorted(c["code"]["coding"][0]["code"] for c in conditions) == ["35489007", "7200002"]
    assert {a["reference"] for a in plan["addresses"]} == {f"#{c['id']}" for c in conditions}
    assert {label["code"] for label in plan["meta"]["security"]} >= {"ETH", "R"}
    assert ehr_history_labels(stack, plan_id) == [{"ETH", "R"}]
    # The same handoff again: the same plan, not a second one.
    again = outcome_of(ehr.post("/$handoff", json=bundle, headers=JSON_HEADERS))
    assert again == first


def test_a_handoff_with_no_condition_at_all_gets_the_general_plan(
    stack: Stack, ehr: httpx.Client
) -> None:
    bundle = discharge_bundle(uuid.uuid4().hex[:10], labelled=False)
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Condition"]
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "Composition":
            sections = entry["resource"]["section"]
            entry["resource"]["section"] = [s for s in sections if s["title"] != "Problems"]
    result = outcome_of(ehr.post("/$handoff", json=bundle, headers=JSON_HEADERS))
    (plan_id,) = ids(result["created"], "CarePlan")
    plan = in_program(stack, "CarePlan", plan_id)
    assert (plan["status"], plan["title"]) == ("draft", "General IOP")
    assert plan["activity"]
    assert "addresses" not in plan
    kinds = sorted(c["resourceType"] for c in plan["contained"] if c["resourceType"] != "Goal")
    assert kinds == ["AllergyIntolerance", "MedicationRequest", "MedicationStatement"]


def test_a_repeated_handoff_returns_the_first_result(ehr: httpx.Client) -> None:
    bundle = discharge_bundle(uuid.uuid4().hex[:10], labelled=False)
    first = outcome_of(ehr.post("/$handoff", json=bundle, headers=JSON_HEADERS))
    again = outcome_of(ehr.post("/$handoff", json=bundle, headers=JSON_HEADERS))
    assert again == first
    (patient_id,) = ids(first["created"], "Patient")
    assert ehr.get("/EpisodeOfCare", params={"patient": patient_id}).json()["total"] == 1
    assert ehr.get("/CarePlan", params={"patient": patient_id}).json()["total"] == 1


def test_ten_concurrent_repeats_of_a_transaction_make_one_of_everything(
    ehr: httpx.Client,
) -> None:
    mrn = uuid.uuid4().hex[:10]
    bundle = discharge_bundle(mrn, "transaction", labelled=False)
    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(
            pool.map(lambda _: ehr.post("/$handoff", json=bundle, headers=JSON_HEADERS), range(10))
        )
    results = [outcome_of(r) for r in responses]
    assert all(r["created"] == results[0]["created"] for r in results), results
    found = ehr.get("/Patient", params={"identifier": f"{MRN_SYSTEM}|{mrn}"}).json()
    assert found["total"] == 1
    patient_id = found["entry"][0]["resource"]["id"]
    assert ehr.get("/EpisodeOfCare", params={"patient": patient_id}).json()["total"] == 1
    assert ehr.get("/CarePlan", params={"patient": patient_id}).json()["total"] == 1
    thread = ehr.get("/Communication", params={"patient": patient_id}).json()
    notes = [
        e
        for e in thread.get("entry", [])
        if e["resource"]["resourceType"] == "Communication"
        and "Step-down" in e["resource"]["payload"][0]["contentString"]
    ]
    assert len(notes) == 1


def test_a_known_patient_is_matched_not_duplicated(ehr: httpx.Client) -> None:
    mrn = uuid.uuid4().hex[:10]
    registered = ehr.post(
        "/Patient",
        json={"resourceType": "Patient", "identifier": [{"system": MRN_SYSTEM, "value": mrn}]},
        headers=JSON_HEADERS,
    ).json()
    result = outcome_of(ehr.post("/$handoff", json=discharge_bundle(mrn), headers=JSON_HEADERS))
    assert result["matched"] == [f"Patient/{registered['id']}"]
    assert not ids(result["created"], "Patient")


def test_an_invalid_bundle_is_refused_whole_and_writes_nothing(ehr: httpx.Client) -> None:
    mrn = uuid.uuid4().hex[:10]
    bundle = discharge_bundle(mrn)
    bundle["entry"][5]["resource"]["clinicalStatus"] = "active"  # a string, not a CodeableConcept
    response = ehr.post("/$handoff", json=bundle, headers=JSON_HEADERS)
    assert response.status_code == 422, response.text
    expressions = [e for i in response.json()["issue"] for e in i.get("expression", [])]
    assert any("entry" in e and "clinicalStatus" in e for e in expressions), expressions
    assert ehr.get("/Patient", params={"identifier": f"{MRN_SYSTEM}|{mrn}"}).json()["total"] == 0
    for broken, status in (
        ({"resourceType": "Bundle", "type": "searchset"}, 422),
        (
            {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": {"resourceType": "Basic", "code": {"text": "x"}}}],
            },
            422,
        ),
        ({"resourceType": "Patient"}, 400),
    ):
        refused = ehr.post("/$handoff", json=broken, headers=JSON_HEADERS)
        assert refused.status_code == status, refused.text
        assert refused.json()["resourceType"] == "OperationOutcome"


def test_a_read_only_token_cannot_hand_off(stack: Stack) -> None:
    with stack.client(system_token(stack.settings, ["system/*.rs"])) as client:
        response = client.post(
            "/$handoff", json=discharge_bundle(uuid.uuid4().hex[:10]), headers=JSON_HEADERS
        )
    assert response.status_code == 403


def test_official_hl7_bundles(ehr: httpx.Client) -> None:
    folder = hl7_bundle_dir()
    father = json.loads((folder / "Bundle-father.json").read_text())
    # HL7's discharge summary document: its Patient has no identifier, so it cannot be matched
    # or registered; refused with the reason.
    refused = ehr.post("/$handoff", json=father, headers=JSON_HEADERS)
    assert refused.status_code == 422
    assert "identifier" in refused.text
    # With an MRN added it is taken in: its medications and allergy go into the plan.
    father = copy.deepcopy(father)
    for entry in father["entry"]:
        if entry["resource"]["resourceType"] == "Patient":
            entry["resource"]["identifier"] = [{"system": MRN_SYSTEM, "value": uuid.uuid4().hex}]
    father["identifier"]["value"] = f"urn:uuid:{uuid.uuid4()}"
    result = outcome_of(ehr.post("/$handoff", json=father, headers=JSON_HEADERS))
    (plan_id,) = ids(result["created"], "CarePlan")
    plan = ehr.get(f"/CarePlan/{plan_id}").json()
    kinds = sorted(c["resourceType"] for c in plan["contained"] if c["resourceType"] != "Goal")
    assert kinds == ["AllergyIntolerance", "MedicationRequest", "MedicationStatement"]
    # It names no ICD-10-CM diagnosis: the general IOP plan's activities and goals.
    assert plan["title"] == "General IOP" and plan["activity"]
    # HL7's collection with several patients and observations: the first patient is taken in,
    # the observations reported.
    references = json.loads((folder / "Bundle-bundle-references.json").read_text())
    result = outcome_of(ehr.post("/$handoff", json=references, headers=JSON_HEADERS))
    assert ids(result["created"] + result["matched"], "Patient")
    assert sum("Observation" in w for w in result["warnings"]) == 7


def test_handoff_summary_is_a_document_that_withholds_part2_content(ehr: httpx.Client) -> None:
    # A restricted (R) patient: the document is about them, so it is refused as a read would be.
    result = outcome_of(
        ehr.post("/$handoff", json=discharge_bundle(uuid.uuid4().hex[:10]), headers=JSON_HEADERS)
    )
    (episode_id,) = ids(result["created"], "EpisodeOfCare")
    refused = ehr.get(f"/EpisodeOfCare/{episode_id}/$handoff-summary")
    assert refused.status_code == 403 and "suppressed" in refused.text
    # The patient unlabelled, the SUD diagnosis labelled: the document withholds what it taints.
    bundle = discharge_bundle(uuid.uuid4().hex[:10])
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "Patient":
            entry["resource"].pop("meta")
    result = outcome_of(ehr.post("/$handoff", json=bundle, headers=JSON_HEADERS))
    (episode_id,) = ids(result["created"], "EpisodeOfCare")
    response = ehr.get(f"/EpisodeOfCare/{episode_id}/$handoff-summary")
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["type"] == "document"
    composition = document["entry"][0]["resource"]
    assert composition["resourceType"] == "Composition"
    titles = [s["title"] for s in composition["section"]]
    assert "Care team: who to call" in titles and "Withheld" in titles
    resources = [e["resource"] for e in document["entry"]]
    # The plan and the episode carry the SUD label of what they were drawn from: without a
    # consent the gateway can check, they stay in the program.
    assert not any(
        label.get("code") == "ETH"
        for r in resources
        for label in r.get("meta", {}).get("security", [])
    )
    assert "CarePlan" not in {r["resourceType"] for r in resources}


def test_handoff_summary_of_unlabelled_care_carries_plan_and_medications(
    ehr: httpx.Client,
) -> None:
    bundle = discharge_bundle(uuid.uuid4().hex[:10], labelled=False)
    result = outcome_of(ehr.post("/$handoff", json=bundle, headers=JSON_HEADERS))
    (episode_id,) = ids(result["created"], "EpisodeOfCare")
    document = ehr.get(f"/EpisodeOfCare/{episode_id}/$handoff-summary").json()
    types = [e["resource"]["resourceType"] for e in document["entry"]]
    assert types[0] == "Composition"
    assert {
        "Patient",
        "EpisodeOfCare",
        "CarePlan",
        "MedicationRequest",
        "MedicationStatement",
    } <= set(types)
    titles = [s["title"] for s in document["entry"][0]["resource"]["section"]]
    assert "Withheld" not in titles
    assert ehr.get("/EpisodeOfCare/nope/$handoff-summary").status_code == 404


def test_a_handoff_cut_short_by_a_service_outage_completes_when_sent_again(
    stack: Stack, ehr: httpx.Client
) -> None:
    """notes is unreachable during the first post: the patient, stay and plan are made and the
    answer says the note was not posted; the unreachable service is a 503 for plain requests;
    sending the bundle again posts the note and makes nothing twice."""
    from iopcare.devtools.kafka_broker import free_port
    from iopcare.gateway.app import build
    from iopcare.gateway.http import FhirRequest
    from iopcare.gateway.settings import GatewaySettings

    runtimes = stack.runtimes
    _, cut_off = build(
        stack.settings,
        GatewaySettings(
            careplan_address=f"127.0.0.1:{runtimes['careplan'].port}",
            scheduling_address=f"127.0.0.1:{runtimes['scheduling'].port}",
            notes_address=f"127.0.0.1:{free_port()}",  # nothing listens there
            call_timeout_seconds=3,
        ),
        lambda record: None,
    )
    token = system_token(stack.settings, subject="system:st-mary-inpatient")
    bundle = discharge_bundle(uuid.uuid4().hex[:10], labelled=False)

    def post(
        path: str, body: bytes, method: str = "POST", query: list[tuple[str, str]] | None = None
    ) -> Any:
        return cut_off.handle(
            FhirRequest(
                method,
                path,
                query or [],
                {"authorization": f"Bearer {token}", "content-type": FHIR_JSON},
                body,
                "http://gateway.test/fhir",
            )
        )

    try:
        first = post("$handoff", json.dumps(bundle).encode())
        assert first.status == 200, first.body
        parameters = first.body["parameter"]
        created = [p["valueReference"]["reference"] for p in parameters if p["name"] == "created"]
        warnings = [i["diagnostics"] for i in parameters[0]["resource"]["issue"]]
        assert not ids(created, "Communication")
        assert not ids(created, "DocumentReference")
        assert any("note was not posted (503" in w for w in warnings), warnings
        assert any("discharge summary was not taken in (503" in w for w in warnings), warnings
        (patient_id,) = ids(created, "Patient")
        down = post("Communication", b"", "GET", [("patient", patient_id)])
        assert down.status == 503 and down.body["resourceType"] == "OperationOutcome"
    finally:
        cut_off.services.close()
    again = outcome_of(ehr.post("/$handoff", json=bundle, headers=JSON_HEADERS))
    later = ("Communication/", "DocumentReference/")
    assert [r for r in again["created"] if not r.startswith(later)] == created
    assert len(ids(again["created"], "Communication")) == 1
    assert len(ids(again["created"], "DocumentReference")) == 1
    assert ehr.get("/CarePlan", params={"patient": patient_id}).json()["total"] == 1


def test_a_part2_plan_leaves_for_the_ehr_its_consent_names_and_stops_when_revoked(
    stack: Stack, ehr: httpx.Client
) -> None:
    """42 CFR Part 2 (2.31-2.33) for careplan's records, with the rule notes applies to notes:
    withheld without a consent naming the EHR; with one, released with NORDSCLCD and the notice;
    revoked, withheld again."""
    result = outcome_of(
        ehr.post("/$handoff", json=discharge_bundle(uuid.uuid4().hex[:10]), headers=JSON_HEADERS)
    )
    (patient_id,) = ids(result["created"], "Patient")
    (plan_id,) = ids(result["created"], "CarePlan")
    assert ehr.get(f"/CarePlan/{plan_id}").status_code == 403

    def consent(recipient: str) -> dict[str, Any]:
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
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
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
                        # The recipient by its client id (the subject of its tokens).
                        "reference": {
                            "type": "Organization",
                            "identifier": {
                                "system": "https://iopcare.org/fhir/sid/client-id",
                                "value": recipient,
                            },
                        },
                    }
                ],
            },
        }

    # The patient records their consents with their own app's token (42 CFR 2.31: the EHR
    # itself may not record one).
    patient_app = stack.client(
        auth.mint_token(
            stack.settings,
            subject=f"patient:{patient_id}",
            role="patient",
            patient_context=patient_id,
            scopes=["patient/*.cruds"],
        )
    )
    # A consent for another recipient releases nothing to this one.
    other = patient_app.post(
        "/Consent", json=consent("system:another-hospital"), headers=JSON_HEADERS
    )
    assert other.status_code == 201, other.text
    assert ehr.get(f"/CarePlan/{plan_id}").status_code == 403
    mine = patient_app.post(
        "/Consent", json=consent("system:st-mary-inpatient"), headers=JSON_HEADERS
    )
    assert mine.status_code == 201, mine.text
    released = ehr.get(f"/CarePlan/{plan_id}")
    assert released.status_code == 200, released.text
    plan = released.json()
    assert {"ETH", "NORDSCLCD"} <= {s["code"] for s in plan["meta"]["security"]}
    notice = [e for e in plan.get("extension", []) if e["url"].endswith("redisclosure-notice")]
    assert notice and "42 CFR part 2" in notice[0]["valueString"]
    found = ehr.get("/CarePlan", params={"patient": patient_id}).json()
    assert [e["resource"]["id"] for e in found["entry"] if e["search"]["mode"] == "match"] == [
        plan_id
    ]
    # Revoked by the patient: nothing more leaves.
    revoked = {**mine.json(), "status": "inactive"}
    answer = patient_app.put(
        f"/Consent/{revoked['id']}",
        json=revoked,
        headers={**JSON_HEADERS, "If-Match": mine.headers["ETag"]},
    )
    assert answer.status_code == 200, answer.text
    patient_app.close()
    assert ehr.get(f"/CarePlan/{plan_id}").status_code == 403


def test_inbound_medications_are_reconciled_and_the_list_is_served_over_rest(
    stack: Stack, ehr: httpx.Client
) -> None:
    """Issue 12, part 1: the handoff's medications become reconciliation items; once the
    psychiatrist resolves them, the list is MedicationStatements over REST, in $everything and
    in $handoff-summary, and the Part 2 one stays in the program without a consent."""
    from iopcare.careplan.v1 import careplan_service_pb2 as pb
    from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
    from tests.support.gateway import enrol_team, practitioner_token

    bundle = discharge_bundle(uuid.uuid4().hex[:10], labelled=False)
    result = outcome_of(ehr.post("/$handoff", json=bundle, headers=JSON_HEADERS))
    (patient_id,) = ids(result["created"], "Patient")
    (episode_id,) = ids(result["created"], "EpisodeOfCare")
    enrol_team(stack, patient_id)
    psychiatrist = harness.metadata(stack.settings)
    rxnorm = "http://www.nlm.nih.gov/research/umls/rxnorm"

    def taken(rxcui: str, display: str, dose: int) -> str:
        return json.dumps(
            {
                "resourceType": "MedicationStatement",
                "status": "active",
                "medicationCodeableConcept": {
                    "coding": [{"system": rxnorm, "code": rxcui, "display": display}]
                },
                "subject": {"reference": f"Patient/{patient_id}"},
                "effectivePeriod": {"start": "2026-11-27"},
                "dosage": [
                    {
                        "text": f"{dose} mg by mouth once daily",
                        "route": {"text": "oral"},
                        "doseAndRate": [
                            {
                                "doseQuantity": {
                                    "value": dose,
                                    "unit": "mg",
                                    "system": "http://unitsofmeasure.org",
                                    "code": "mg",
                                }
                            }
                        ],
                    }
                ],
            }
        )

    with harness.channel(stack.runtimes["careplan"]) as channel:
        stub = pb_grpc.CarePlanServiceStub(channel)
        found = stub.GetMedicationReconciliation(
            pb.GetMedicationReconciliationRequest(patient_id=patient_id), metadata=psychiatrist
        )
        assert found.reconciliation.unresolved_count == 2
        items = {json.loads(i.fhir_json)["resourceType"]: i for i in found.items}
        # The inbound naltrexone carries no dose: continued as it is, it cannot go on the list.
        with pytest.raises(grpc.RpcError) as caught:
            stub.ResolveReconciliationItem(
                pb.ResolveReconciliationItemRequest(
                    request_id="c0",
                    patient_id=patient_id,
                    id=items["MedicationRequest"].id,
                    decision="continue",
                ),
                metadata=psychiatrist,
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        for kind, rxcui, display, dose in (
            ("MedicationRequest", "1483744", "naltrexone 50 MG Oral Tablet", 50),
            ("MedicationStatement", "312938", "sertraline 50 MG Oral Tablet", 50),
        ):
            stub.ResolveReconciliationItem(
                pb.ResolveReconciliationItemRequest(
                    request_id=f"c-{kind}",
                    patient_id=patient_id,
                    id=items[kind].id,
                    decision="change",
                    reason="dose confirmed with the patient",
                    changed_to_fhir_json=taken(rxcui, display, dose),
                ),
                metadata=psychiatrist,
            )
    search = ehr.get("/MedicationStatement", params={"patient": patient_id}).json()
    listed = [e["resource"] for e in search["entry"] if e["search"]["mode"] == "match"]
    # Naltrexone (alcohol use disorder) is a Part 2 record: withheld without a consent.
    assert [m["medicationCodeableConcept"]["coding"][0]["code"] for m in listed] == ["312938"]
    notices = [e["resource"] for e in search["entry"] if e["search"]["mode"] == "outcome"]
    assert [i["code"] for n in notices for i in n["issue"]] == ["suppressed"], search
    everything = ehr.get(f"/Patient/{patient_id}/$everything").json()
    assert "MedicationStatement" in {e["resource"]["resourceType"] for e in everything["entry"]}
    document = ehr.get(f"/EpisodeOfCare/{episode_id}/$handoff-summary").json()
    section = next(
        s
        for s in document["entry"][0]["resource"]["section"]
        if s["title"] == "Current medications"
    )
    shown = {e["fullUrl"]: e["resource"] for e in document["entry"] if e.get("fullUrl") is not None}
    current = [shown[entry["reference"]] for entry in section["entry"]]
    assert [(m["resourceType"], m["status"]) for m in current] == [
        ("MedicationStatement", "active")
    ]
    # Prescribers record over REST too; a therapist cannot.
    with stack.client(practitioner_token(stack.settings, "therapist", "th-1")) as therapist:
        refused = therapist.post(
            "/MedicationStatement", content=taken("312938", "sertraline", 25), headers=JSON_HEADERS
        )
        assert refused.status_code == 403, refused.text
    with stack.client(practitioner_token(stack.settings, "psychiatrist", "psy-1")) as psy:
        created = psy.post(
            "/MedicationStatement", content=taken("312938", "sertraline", 25), headers=JSON_HEADERS
        )
        assert created.status_code == 201, created.text
        assert psy.get(f"/MedicationStatement/{created.json()['id']}").status_code == 200


# Discharge documents taken in whole (issue 14, part 1; ADR 0030) ---------------------------------

LOINC = "http://loinc.org"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
SNOMED = "http://snomed.info/sct"


def _observation(subject: str, code: str, category: str, **value: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY, "code": category}]}],
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": subject},
        "effectiveDateTime": "2026-11-26T08:00:00Z",
        **value,
    }


def ips_discharge(mrn: str, labelled: bool = False) -> dict[str, Any]:
    """An IPS-like discharge document: the detox discharge with section narratives, vitals, a
    urine drug screen, a PHQ-9, a procedure, an immunization, the hospital as custodian, and two
    Observations careplan does not record (an unknown lab, a SNOMED-coded finding)."""
    bundle = discharge_bundle(mrn, labelled=labelled)
    bundle["identifier"] = {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"}
    composition = bundle["entry"][0]["resource"]
    patient_url = composition["subject"]["reference"]
    mmhg = {"unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}
    added = {
        "bp": _observation(
            patient_url,
            "85354-9",
            "vital-signs",
            component=[
                {
                    "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
                    "valueQuantity": {"value": 128, **mmhg},
                },
                {
                    "code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
                    "valueQuantity": {"value": 82, **mmhg},
                },
            ],
        ),
        "hr": _observation(
            patient_url,
            "8867-4",
            "vital-signs",
            valueQuantity={
                "value": 88,
                "unit": "/min",
                "system": "http://unitsofmeasure.org",
                "code": "/min",
            },
        ),
        "hr-earlier": {
            **_observation(
                patient_url,
                "8867-4",
                "vital-signs",
                valueQuantity={
                    "value": 112,
                    "unit": "/min",
                    "system": "http://unitsofmeasure.org",
                    "code": "/min",
                },
            ),
            "effectiveDateTime": "2026-11-20T08:00:00Z",
        },
        "uds": _observation(
            patient_url,
            "19295-5",
            "laboratory",
            valueCodeableConcept={"coding": [{"system": SNOMED, "code": "260385009"}]},
        ),
        "odd-lab": _observation(
            patient_url,
            "2345-7",  # glucose: not a measure the program records
            "laboratory",
            valueQuantity={"value": 5.4, "unit": "mmol/L"},
        ),
        "snomed": {
            **_observation(patient_url, "x", "exam", valueString="tremor resolved"),
            "code": {"coding": [{"system": SNOMED, "code": "26079004", "display": "Tremor"}]},
        },
        "proc": {
            "resourceType": "Procedure",
            "status": "completed",
            "code": {"text": "Electrocardiogram"},
            "subject": {"reference": patient_url},
            "performedDateTime": "2026-11-20T10:00:00Z",
        },
        "imm": {
            "resourceType": "Immunization",
            "status": "completed",
            "vaccineCode": {"text": "Influenza vaccine 2026-2027"},
            "patient": {"reference": patient_url},
            "occurrenceDateTime": "2026-11-21T10:00:00Z",
        },
        "org": {
            "resourceType": "Organization",
            "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1144221847"}],
            "name": "St Mary's Hospital, withdrawal management unit",
        },
    }
    urls = {name: f"urn:uuid:{uuid.uuid4()}" for name in added}
    bundle["entry"] += [{"fullUrl": urls[n], "resource": r} for n, r in added.items()]
    composition["custodian"] = {"reference": urls["org"]}
    div = '<div xmlns="http://www.w3.org/1999/xhtml">{}</div>'
    composition["section"][0]["text"] = {
        "status": "additional",
        "div": div.format("<p>Admitted for alcohol withdrawal; CIWA-Ar peaked at 18.</p>"),
    }
    composition["section"] += [
        {
            "title": "Vital signs",
            "code": {"coding": [{"system": LOINC, "code": "8716-3"}]},
            "entry": [{"reference": urls["bp"]}, {"reference": urls["hr"]}],
        },
        {
            "title": "Results",
            "code": {"coding": [{"system": LOINC, "code": "30954-2"}]},
            "text": {
                "status": "additional",
                "div": div.format(
                    "<table><tr><td>Urine opiates</td><td>negative</td></tr></table>"
                ),
            },
            "entry": [{"reference": urls["uds"]}, {"reference": urls["odd-lab"]}],
        },
        {
            "title": "History of procedures",
            "entry": [{"reference": urls["proc"]}, {"reference": urls["imm"]}],
        },
        {
            "title": "Hospital course",
            "text": {
                "status": "additional",
                "div": div.format(
                    "<p>Completed a 7-day taper.</p><p>Engaged in groups; motivated for IOP.</p>"
                ),
            },
        },
    ]
    return bundle


def issues_of(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    return [
        issue
        for parameter in response.json()["parameter"]
        if parameter["name"] == "outcome"
        for issue in parameter["resource"]["issue"]
    ]


def test_an_ips_discharge_document_arrives_whole_and_lists_what_it_skips(
    stack: Stack, ehr: httpx.Client
) -> None:
    bundle = ips_discharge(uuid.uuid4().hex[:10])
    response = ehr.post("/$handoff", json=bundle, headers=JSON_HEADERS)
    result = outcome_of(response)
    (patient_id,) = ids(result["created"], "Patient")
    (episode_id,) = ids(result["created"], "EpisodeOfCare")
    (document_id,) = ids(result["created"], "DocumentReference")
    (practitioner_id,) = ids(result["created"], "Practitioner")
    assert len(ids(result["created"], "PractitionerRole")) == 1

    # The narrative: a final discharge summary note of the stay, its sections and entries.
    document = ehr.get(f"/DocumentReference/{document_id}").json()
    assert document["type"]["coding"][0]["code"] == "18842-5"
    assert document["docStatus"] == "final"
    assert document["subject"]["reference"] == f"Patient/{patient_id}"
    assert document["context"]["encounter"] == [{"reference": f"EpisodeOfCare/{episode_id}"}]
    assert document["author"][0]["reference"] == f"Practitioner/{practitioner_id}"
    assert "Lindqvist" in document["author"][0]["display"]
    assert "St Mary's Hospital" in document["author"][0]["display"]
    assert document["masterIdentifier"]["value"] == bundle["identifier"]["value"]
    text = base64.b64decode(document["content"][0]["attachment"]["data"]).decode()
    for expected in (
        "Discharge summary: inpatient withdrawal management",
        "## Problems",
        "Admitted for alcohol withdrawal; CIWA-Ar peaked at 18.",
        "Alcohol dependence, uncomplicated",
        "## Vital signs",
        "Urine opiates | negative",
        "Procedure: Electrocardiogram (2026-11-20T10:00:00Z)",
        "Immunization: Influenza vaccine 2026-2027",
        "Completed a 7-day taper.\nEngaged in groups; motivated for IOP.",
    ):
        assert expected in text, (expected, text)
    assert "<p>" not in text

    # Vitals, the drug screen and the PHQ-9 are the patient's measures.
    measures = ehr.get("/Observation", params={"patient": patient_id}).json()
    codes = sorted(
        e["resource"]["code"]["coding"][0]["code"]
        for e in measures.get("entry", [])
        if e["resource"]["resourceType"] == "Observation"
    )
    assert codes == ["19295-5", "44261-6", "85354-9", "8867-4"]
    (heart_rate,) = [
        e["resource"]
        for e in measures["entry"]
        if e["resource"]["resourceType"] == "Observation"
        and e["resource"]["code"]["coding"][0]["code"] == "8867-4"
    ]
    assert heart_rate["valueQuantity"]["value"] == 88  # the latest reading, not the earlier 112
    assert len(ids(result["created"], "Observation")) == 4

    # Everything else is listed, one issue per entry, with where it is and why.
    skipped = {
        issue["expression"][0]: issue["diagnostics"]
        for issue in issues_of(response)
        if issue["code"] == "not-supported"
    }
    assert all(
        issue["severity"] == "warning"
        for issue in issues_of(response)
        if issue["code"] == "not-supported"
    )
    by_type = {
        entry["resource"]["resourceType"]
        + ":"
        + entry["resource"]["code"]["coding"][0]["code"]
        + entry["resource"]["effectiveDateTime"][:10]
        if entry["resource"]["resourceType"] == "Observation"
        else entry["resource"]["resourceType"]: (f"Bundle.entry[{i}]", entry["fullUrl"])
        for i, entry in enumerate(bundle["entry"])
    }
    expected_skips = {
        "Encounter": "EpisodeOfCare",
        "Procedure": "procedures",
        "Immunization": "immunizations",
        "Observation:2345-72026-11-26": "2345-7 is not a measure the program records",
        "Observation:260790042026-11-26": "LOINC only",
        "Observation:8867-42026-11-20": "records the latest reading of each measure",
    }
    for kind, reason in expected_skips.items():
        where, full_url = by_type[kind]
        assert where in skipped, (kind, skipped)
        assert full_url in skipped[where] and reason in skipped[where], skipped[where]
    assert len(skipped) == len(expected_skips)

    # The team note counts what came, never what it says.
    thread = ehr.get("/Communication", params={"patient": patient_id}).json()
    (note,) = [
        e["resource"]["payload"][0]["contentString"]
        for e in thread.get("entry", [])
        if e["resource"]["resourceType"] == "Communication"
        and "Step-down" in e["resource"]["payload"][0]["contentString"]
    ]
    assert f"discharge summary DocumentReference/{document_id}" in note
    assert "4 measures recorded" in note and "6 entries not taken in" in note
    assert "taper" not in note

    # A replay takes nothing in twice: the same answer, one note, the same measures.
    again = ehr.post("/$handoff", json=bundle, headers=JSON_HEADERS)
    assert outcome_of(again) == result
    assert issues_of(again) == issues_of(response)
    notes = ehr.get("/DocumentReference", params={"patient": patient_id}).json()
    assert [
        e["resource"]["id"]
        for e in notes["entry"]
        if e["resource"]["resourceType"] == ("DocumentReference")
    ] == [document_id]
    measures_again = ehr.get("/Observation", params={"patient": patient_id}).json()
    assert measures_again["total"] == measures["total"]


def test_a_part2_discharge_summary_keeps_its_labels_and_reaches_the_treating_team(
    stack: Stack, ehr: httpx.Client
) -> None:
    from tests.support.gateway import enrol_team

    bundle = ips_discharge(uuid.uuid4().hex[:10], labelled=True)
    bundle["entry"][0]["resource"]["confidentiality"] = "R"
    result = outcome_of(ehr.post("/$handoff", json=bundle, headers=JSON_HEADERS))
    (patient_id,) = ids(result["created"], "Patient")
    (document_id,) = ids(result["created"], "DocumentReference")
    # The SUD diagnosis the Problems section names labels the note: the EHR (not a treating
    # reader) does not get its content ...
    withheld = ehr.get(f"/DocumentReference/{document_id}")
    assert withheld.status_code == 403, withheld.text
    # ... the patient's psychiatrist, once on the care team, reads it in the program, labelled.
    from iopcare.notes.v1 import notes_service_pb2 as notes_pb
    from iopcare.notes.v1 import notes_service_pb2_grpc as notes_grpc
    from tests.support.notes import error_reason

    enrol_team(stack, patient_id)
    with harness.channel(stack.runtimes["notes"]) as channel:
        stub = notes_grpc.NotesServiceStub(channel)

        def readable() -> Any:
            try:
                return stub.GetNote(
                    notes_pb.GetNoteRequest(id=document_id),
                    metadata=harness.metadata(stack.settings),
                ).note
            except grpc.RpcError:
                return None

        note = harness.eventually(readable)
        # Clinicians write their own notes: taking a document in as "from outside" is an EHR's
        # (or the administrator's) act, never a clinician's.
        with pytest.raises(grpc.RpcError) as refused:
            stub.ImportDocument(
                notes_pb.ImportDocumentRequest(
                    request_id=uuid.uuid4().hex,
                    note=notes_pb.NoteInput(
                        patient_id=patient_id, kind="discharge", title="x", text="forged"
                    ),
                ),
                metadata=harness.metadata(stack.settings),
            )
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error_reason(refused.value) == "NOT_AN_IMPORTER"
    assert (note.kind, note.status, note.confidentiality) == ("discharge", "signed", "R")
    assert "ETH" in note.sensitivity
    document = json.loads(note.fhir_json)
    labels = {s["code"] for s in document["meta"]["security"]}
    assert {"R", "ETH"} <= labels, labels
    text = base64.b64decode(document["content"][0]["attachment"]["data"]).decode()
    assert "Alcohol dependence" in text


def test_a_broken_discharge_document_is_refused_and_writes_nothing(ehr: httpx.Client) -> None:
    def refused(bundle: dict[str, Any], expression: str, words: str) -> None:
        response = ehr.post("/$handoff", json=bundle, headers=JSON_HEADERS)
        assert response.status_code == 422, response.text
        (issue,) = response.json()["issue"]
        assert issue["expression"] == [expression] and words in issue["diagnostics"], issue
        patient = (
            next(
                e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
            )
            if any(e["resource"]["resourceType"] == "Patient" for e in bundle["entry"])
            else None
        )
        if patient is not None:
            mrn = patient["identifier"][0]["value"]
            found = ehr.get("/Patient", params={"identifier": f"{MRN_SYSTEM}|{mrn}"}).json()
            assert found["total"] == 0

    # A document whose Composition is not first.
    bundle = ips_discharge(uuid.uuid4().hex[:10])
    bundle["entry"].append(bundle["entry"].pop(0))
    refused(bundle, "Bundle.entry[0]", "starts with its Composition")
    # A section naming an entry the Bundle does not carry.
    bundle = ips_discharge(uuid.uuid4().hex[:10])
    bundle["entry"][0]["resource"]["section"][1]["entry"].append(
        {"reference": "urn:uuid:00000000-0000-4000-8000-000000000000"}
    )
    refused(
        bundle,
        "Bundle.entry[0].resource.section[1].entry[2]",
        "urn:uuid:00000000-0000-4000-8000-000000000000, which is not in the Bundle",
    )
    # No Patient.
    bundle = ips_discharge(uuid.uuid4().hex[:10])
    patient_url = bundle["entry"][0]["resource"]["subject"]["reference"]
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Patient"]
    assert all(e.get("fullUrl") != patient_url for e in bundle["entry"])
    refused(bundle, "Bundle.entry", "needs a Patient")
