"""Attacks on the gateway's release rule (issue 10, defects 3, 8, 10, 11 and the history
hardening item): an outside EHR without the patient's consent tries to get labelled content out of
the program through every response path that is not a plain read, or to overwrite what it may not
read. Each test plays the EHR against the real services, gateway and broker (SQLite).

The labels are the HL7 v3 ones a Part 2 program uses: ETH (substance abuse information, 42 CFR
Part 2) from v3-ActCode, R and V from v3-Confidentiality."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from iopcare.careplan.v1 import careplan_service_pb2 as cp
from iopcare.careplan.v1 import careplan_service_pb2_grpc as cp_grpc
from tests.support import harness
from tests.support.gateway import (
    ACT_CODE,
    CONFIDENTIALITY,
    FHIR_JSON,
    Stack,
    enrol_team,
    in_program,
    practitioner_token,
    stack_for,
    system_token,
)
from tests.support.notes import as_
from tests.support.plans import iop_plan

pytestmark = pytest.mark.integration

JSON_HEADERS = {"Content-Type": FHIR_JSON}
MRN_SYSTEM = "urn:oid:2.16.840.1.113883.3.72.5.20"
ETH = {"system": ACT_CODE, "code": "ETH", "display": "substance abuse information sensitivity"}
R = {"system": CONFIDENTIALITY, "code": "R", "display": "restricted"}
V = {"system": CONFIDENTIALITY, "code": "V", "display": "very restricted"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Iterator[Stack]:
    with stack_for("sqlite", tmp_path_factory, kafka_bootstrap, "release-attacks") as running:
        yield running


@pytest.fixture(scope="module")
def ehr(stack: Stack) -> Iterator[httpx.Client]:
    """An outside EHR's backend token (no consent of any patient names it)."""
    with stack.client(system_token(stack.settings, subject="system:outside-ehr")) as client:
        yield client


@pytest.fixture(scope="module")
def therapist(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client(practitioner_token(stack.settings, "therapist", "th-1")) as client:
        yield client


def codes_of(resource: dict[str, Any]) -> set[str]:
    return {str(s.get("code")) for s in resource.get("meta", {}).get("security", [])}


def outcome_text(response: httpx.Response) -> str:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    return " ".join(str(i.get("diagnostics", "")) for i in body["issue"])


def enrolled(
    stack: Stack, ehr: httpx.Client, therapist: httpx.Client, **patient: Any
) -> tuple[str, str]:
    """A registered patient whose care team (th-1 a therapist on it) notes has projected:
    (patient id, team id)."""
    body = {
        "resourceType": "Patient",
        "identifier": [{"system": MRN_SYSTEM, "value": uuid.uuid4().hex}],
        "name": [{"family": "Okafor", "given": ["Jordan"]}],
        **patient,
    }
    created = ehr.post("/Patient", json=body, headers=JSON_HEADERS)
    assert created.status_code == 201, created.text
    patient_id = str(created.headers["location"].split("/Patient/")[1].split("/")[0])
    team = enrol_team(stack, patient_id)
    harness.eventually(
        lambda: (
            therapist.get("/Communication", params={"patient": patient_id}).status_code == 200
            or None
        )
    )
    return patient_id, str(team["id"])


def labelled_plan(ehr: httpx.Client, patient_id: str, team_id: str, *labels: dict[str, str]) -> str:
    """An SUD treatment plan carrying `labels`, created by the EHR (a referral's plan); its id."""
    plan = iop_plan(patient_id, team_id)
    plan["title"] = "Adult substance use disorder IOP"
    plan["meta"] = {"security": list(labels)}
    created = ehr.post("/CarePlan", json=plan, headers=JSON_HEADERS)
    assert created.status_code == 201, created.text
    # What the EHR sent is stored, labels and all; it gets no representation back.
    return str(created.headers["location"].split("/CarePlan/")[1].split("/")[0])


def withheld_count(bundle: dict[str, Any]) -> int:
    for entry in bundle.get("entry", []):
        resource = entry["resource"]
        if resource["resourceType"] == "OperationOutcome":
            for issue in resource["issue"]:
                if issue.get("code") == "suppressed":
                    return int(str(issue["diagnostics"]).split()[0])
    return 0


def clinical(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        e["resource"]
        for e in bundle.get("entry", [])
        if e["resource"]["resourceType"] != "OperationOutcome"
    ]


# -- defect 3: create responses bypass withholding --------------------------------------------


def test_conditional_create_matching_a_labelled_plan_does_not_return_it(
    stack: Stack, ehr: httpx.Client, therapist: httpx.Client
) -> None:
    patient_id, team_id = enrolled(stack, ehr, therapist)
    plan_id = labelled_plan(ehr, patient_id, team_id, ETH)
    assert ehr.get(f"/CarePlan/{plan_id}").status_code == 403

    probe = iop_plan(patient_id, team_id)
    matched = ehr.post(
        "/CarePlan",
        json=probe,
        headers={**JSON_HEADERS, "If-None-Exist": f"patient={patient_id}"},
    )
    # The same answer as the read: 403 suppressed, no plan content.
    assert matched.status_code == 403, matched.text
    assert "substance use" not in matched.text and "activity" not in matched.text
    assert "42 CFR" in outcome_text(matched)

    # The same through a batch entry.
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "resource": probe,
                "request": {
                    "method": "POST",
                    "url": "CarePlan",
                    "ifNoneExist": f"patient={patient_id}",
                },
            },
            {"request": {"method": "GET", "url": f"CarePlan/{plan_id}"}},
            {"request": {"method": "GET", "url": f"CarePlan/{plan_id}/_history/1"}},
        ],
    }
    answered = ehr.post("", json=batch, headers=JSON_HEADERS)
    assert answered.status_code == 200, answered.text
    assert "substance use" not in answered.text
    for entry in answered.json()["entry"]:
        assert "resource" not in entry, entry
        assert entry["response"]["status"].startswith("403")


def test_registering_a_known_mrn_does_not_return_a_labelled_patient(
    stack: Stack, ehr: httpx.Client
) -> None:
    mrn = uuid.uuid4().hex
    patient = {
        "resourceType": "Patient",
        "meta": {"security": [ETH]},
        "identifier": [{"system": MRN_SYSTEM, "value": mrn}],
        "name": [{"family": "Okafor", "given": ["Jordan"]}],
        "birthDate": "1988-04-12",
    }
    first = ehr.post("/Patient", json=patient, headers=JSON_HEADERS)
    assert first.status_code == 201, first.text
    patient_id = first.headers["location"].split("/Patient/")[1].split("/")[0]
    assert "Okafor" not in first.text  # its representation is withheld, its location is not
    assert ehr.get(f"/Patient/{patient_id}").status_code == 403

    # Another EHR registers the same MRN, without labels: it learns nothing of the stored record
    # (the read's answer), and the stored labels stay.
    with_other = {k: v for k, v in patient.items() if k != "meta"}
    with_other["name"] = [{"family": "Unknown"}]
    again = ehr.post("/Patient", json=with_other, headers=JSON_HEADERS)
    assert again.status_code == 403, again.text
    assert "Okafor" not in again.text and "1988" not in again.text
    searched = ehr.get("/Patient", params={"identifier": f"{MRN_SYSTEM}|{mrn}"}).json()
    assert clinical(searched) == [] and withheld_count(searched) == 1
    assert "ETH" in codes_of(in_program(stack, "Patient", patient_id))


# -- defect 8: updates strip labels; a caller refused the read writes ---------------------------


def test_an_ehr_refused_the_read_cannot_overwrite_a_labelled_plan(
    stack: Stack, ehr: httpx.Client, therapist: httpx.Client
) -> None:
    patient_id, team_id = enrolled(stack, ehr, therapist)
    plan_id = labelled_plan(ehr, patient_id, team_id, ETH)
    stored = in_program(stack, "CarePlan", plan_id)
    overwrite = {k: v for k, v in stored.items() if k != "meta"}
    overwrite["title"] = "Wellness plan"
    refused = ehr.put(
        f"/CarePlan/{plan_id}", json=overwrite, headers={**JSON_HEADERS, "If-Match": 'W/"1"'}
    )
    assert refused.status_code == 403, refused.text
    after = in_program(stack, "CarePlan", plan_id)
    assert after["meta"]["versionId"] == "1" and after["title"] == stored["title"]
    assert "ETH" in codes_of(after)


def test_an_update_without_labels_keeps_the_stored_ones(
    stack: Stack, ehr: httpx.Client, therapist: httpx.Client
) -> None:
    """The root: careplan merges the stored labels into every new version (gRPC here, as a
    clinician on the team; REST goes through the same RPC)."""
    patient_id, team_id = enrolled(stack, ehr, therapist)
    plan_id = labelled_plan(ehr, patient_id, team_id, ETH, R)
    stored = in_program(stack, "CarePlan", plan_id)
    revised = {k: v for k, v in stored.items() if k != "meta"}
    revised["description"] = "Relapse prevention emphasis after week 2."
    with harness.channel(stack.runtimes["careplan"]) as channel:
        answer = cp_grpc.CarePlanServiceStub(channel).UpdateCarePlan(
            cp.UpdateCarePlanRequest(
                id=plan_id,
                expected_version=1,
                fhir_json=json.dumps(revised),
                reason="edited by the therapist",
            ),
            metadata=as_(stack.settings, "therapist", "th-1"),
        )
    assert {"ETH", "R"} <= codes_of(json.loads(answer.care_plan.fhir_json))
    assert {"ETH", "R"} <= codes_of(in_program(stack, "CarePlan", plan_id))


# -- defect 10: derived data carries no label --------------------------------------------------


def test_the_thread_message_about_a_labelled_plan_is_withheld_with_it(
    stack: Stack, ehr: httpx.Client, therapist: httpx.Client
) -> None:
    patient_id, team_id = enrolled(stack, ehr, therapist)
    labelled_plan(ehr, patient_id, team_id, ETH)

    def derived() -> dict[str, Any] | None:
        bundle = ehr.get("/Communication", params={"patient": patient_id}).json()
        texts = json.dumps(clinical(bundle))
        # Before the fix the message came out whole; after it, it is counted as withheld.
        return bundle if "Care plan created" in texts or withheld_count(bundle) else None

    bundle = harness.eventually(derived)
    assert "Care plan created" not in json.dumps(clinical(bundle))
    everything = ehr.get(f"/Patient/{patient_id}/$everything")
    assert everything.status_code == 200, everything.text
    assert "Care plan created" not in everything.text
    assert "substance use" not in everything.text


def test_appointments_of_a_labelled_plan_series_are_withheld_with_it(
    stack: Stack, ehr: httpx.Client, therapist: httpx.Client
) -> None:
    patient_id, team_id = enrolled(stack, ehr, therapist)
    labelled_plan(ehr, patient_id, team_id, ETH)

    def derived() -> dict[str, Any] | None:
        bundle = ehr.get("/Appointment", params={"patient": patient_id}).json()
        return bundle if clinical(bundle) or withheld_count(bundle) else None

    bundle = harness.eventually(derived)
    assert clinical(bundle) == [], [a.get("description") for a in clinical(bundle)]
    everything = ehr.get(f"/Patient/{patient_id}/$everything").text
    assert "Group therapy" not in everything and "relapse" not in everything.lower()


# -- defect 11: R-only and V-only ------------------------------------------------------------


@pytest.mark.parametrize("label", [R, V], ids=["R", "V"])
def test_restricted_and_very_restricted_plans_are_withheld(
    stack: Stack, ehr: httpx.Client, therapist: httpx.Client, label: dict[str, str]
) -> None:
    patient_id, team_id = enrolled(stack, ehr, therapist)
    plan_id = labelled_plan(ehr, patient_id, team_id, label)
    assert ehr.get(f"/CarePlan/{plan_id}").status_code == 403
    assert ehr.get(f"/CarePlan/{plan_id}/_history/1").status_code == 403
    searched = ehr.get("/CarePlan", params={"patient": patient_id}).json()
    assert clinical(searched) == [] and withheld_count(searched) == 1
    assert "substance use" not in ehr.get(f"/Patient/{patient_id}/$everything").text


# -- hardening: versions stored before a label was added ----------------------------------------


def test_versions_stored_before_a_label_was_added_are_withheld(
    stack: Stack, ehr: httpx.Client, therapist: httpx.Client
) -> None:
    patient_id, team_id = enrolled(stack, ehr, therapist)
    plan = iop_plan(patient_id, team_id)
    created = ehr.post("/CarePlan", json=plan, headers=JSON_HEADERS)
    assert created.status_code == 201, created.text
    plan_id = created.json()["id"]
    # The program learns the plan is SUD treatment and labels it (a clinician, over gRPC).
    labelled = {**created.json(), "meta": {"security": [ETH]}}
    with harness.channel(stack.runtimes["careplan"]) as channel:
        cp_grpc.CarePlanServiceStub(channel).UpdateCarePlan(
            cp.UpdateCarePlanRequest(
                id=plan_id,
                expected_version=1,
                fhir_json=json.dumps(labelled),
                reason="labelled as 42 CFR Part 2 record",
            ),
            metadata=as_(stack.settings, "therapist", "th-1"),
        )
    assert ehr.get(f"/CarePlan/{plan_id}").status_code == 403
    old = ehr.get(f"/CarePlan/{plan_id}/_history/1")
    assert old.status_code == 403, old.text
    history = ehr.get(f"/CarePlan/{plan_id}/_history").json()
    assert clinical(history) == [] and withheld_count(history) == 2


def test_a_note_edit_cannot_take_its_part2_label_off(
    stack: Stack, ehr: httpx.Client, therapist: httpx.Client
) -> None:
    """notes' UpdateNote with an update mask on the labels: the author's edit keeps them (labels
    only go up; only a privacy officer lowers them)."""
    from google.protobuf.field_mask_pb2 import FieldMask

    from iopcare.notes.v1 import notes_service_pb2 as nt
    from iopcare.notes.v1 import notes_service_pb2_grpc as nt_grpc

    patient_id, _ = enrolled(stack, ehr, therapist)
    author = as_(stack.settings, "therapist", "th-1")
    with harness.channel(stack.runtimes["notes"]) as channel:
        notes = nt_grpc.NotesServiceStub(channel)
        (draft,) = notes.CreateNote(
            nt.CreateNoteRequest(
                request_id=str(uuid.uuid4()),
                note=nt.NoteInput(
                    patient_id=patient_id,
                    kind="progress",
                    title="Session note",
                    text="Discussed relapse triggers (alcohol).",
                    confidentiality="R",
                    sensitivity=["SUD"],
                ),
            ),
            metadata=author,
        ).notes
        edited = notes.UpdateNote(
            nt.UpdateNoteRequest(
                id=draft.id,
                expected_version=draft.version,
                note=nt.NoteInput(confidentiality="N", sensitivity=[]),
                update_mask=FieldMask(paths=["confidentiality", "sensitivity"]),
            ),
            metadata=author,
        ).note
    assert "SUD" in edited.sensitivity and edited.confidentiality == "R"


# -- issue 14, part 5: Encounters for billing -----------------------------------------------


def test_the_encounter_of_a_labelled_plans_session_is_withheld_with_it(
    stack: Stack, ehr: httpx.Client, therapist: httpx.Client
) -> None:
    """An attended session of a Part 2 plan makes an Encounter carrying the plan's labels: the
    outside EHR finds it neither in the FHIR search nor in the billing CSV."""
    from datetime import timedelta

    from iopcare.kit import auth
    from iopcare.kit.rpc import bearer
    from iopcare.scheduling.v1 import scheduling_service_pb2 as sc
    from iopcare.scheduling.v1 import scheduling_service_pb2_grpc as sc_grpc

    patient_id, team_id = enrolled(stack, ehr, therapist)
    labelled_plan(ehr, patient_id, team_id, ETH)
    program = bearer(auth.service_token(stack.settings, "test"))
    with harness.channel(stack.runtimes["scheduling"]) as channel:
        sched = sc_grpc.SchedulingServiceStub(channel)

        def sessions() -> list[Any] | None:
            found = sched.ListAppointments(
                sc.ListAppointmentsRequest(patient_id=patient_id), metadata=program, timeout=10
            ).appointments
            return list(found) or None

        session = harness.eventually(sessions)[0]
        sched.RecordAttendance(
            sc.RecordAttendanceRequest(
                appointment_id=session.id,
                expected_version=session.version,
                status="fulfilled",
                request_id=str(uuid.uuid4()),
                patient_id=patient_id if session.kind == "group" else "",
            ),
            metadata=program,
            timeout=10,
        )
        made = sched.ListEncounters(
            sc.ListEncountersRequest(patient_id=patient_id), metadata=program, timeout=10
        ).encounters
    assert len(made) == 1
    assert "ETH" in codes_of(json.loads(made[0].fhir_json))

    bundle = ehr.get("/Encounter", params={"patient": patient_id}).json()
    assert clinical(bundle) == [] and withheld_count(bundle) == 1, bundle
    day = session.start_time.ToDatetime().date()
    exported = ehr.get(
        "/Encounter/$export-csv",
        params={
            "start": day.isoformat(),
            "end": (day + timedelta(days=1)).isoformat(),
            "patient": patient_id,
        },
    )
    # The billing CSV cannot carry the redisclosure label and notice: never an EHR's.
    assert exported.status_code == 403, exported.text
    assert patient_id not in exported.text
