"""Every cell of the access matrix in `docs/access-matrix.md` (issue 12 item 5), against the real
services and the FHIR gateway, on SQLite and PostgreSQL with the session's Kafka: the program's
workforce reads over gRPC (the services decide), the patient and an outside EHR over REST (the
gateway's release rule applies on top).

The table in the document is the specification: this test reads it, builds one patient's record
with one item of each kind the table names (written by the role that writes it), then reads every
item as every column's caller and checks the answer is the cell's. A change of the rules that
widens what a caller sees fails here until the document says so, and a document that promises
more privacy than the code gives fails too.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from iopcare.careplan.v1 import careplan_service_pb2 as cp
from iopcare.careplan.v1 import careplan_service_pb2_grpc as cp_grpc
from iopcare.kit import auth
from iopcare.kit.settings import Settings
from iopcare.notes.v1 import notes_service_pb2 as nt
from iopcare.notes.v1 import notes_service_pb2_grpc as nt_grpc
from iopcare.scheduling.checkin_form import QUESTIONNAIRE_URL
from iopcare.scheduling.v1 import scheduling_service_pb2 as sc
from iopcare.scheduling.v1 import scheduling_service_pb2_grpc as sc_grpc
from tests.support import harness
from tests.support.gateway import (
    FHIR_JSON,
    Stack,
    enrol_team,
    practitioner_token,
    stack_for,
    system_token,
)
from tests.support.medications import medication_statement
from tests.support.monitoring import blood_pressure, lithium, urine_screen
from tests.support.nutrition import nutrition_order
from tests.support.plans import iop_plan, phq9, phq9_goal
from tests.support.safety import safety_plan

DOC = Path(__file__).resolve().parents[2] / "docs" / "access-matrix.md"
JSON_HEADERS = {"Content-Type": FHIR_JSON}
LOINC = "http://loinc.org"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"

#: The program's workforce (role, practitioner id): they read over gRPC.
CLINICIANS = {
    "psychiatrist": ("psychiatrist", "psy-1"),
    "therapist": ("therapist", "th-1"),
    "dietitian": ("dietitian", "diet-1"),
    "physician": ("physician", "doc-1"),
    "case manager": ("case-manager", "cm-1"),
    "clinician not on the team": ("therapist", "th-9"),
    "admin": ("admin", "adm-1"),
}
ANSWERS = {"yes": True, "no": False}


def read_matrix(path: Path = DOC) -> tuple[list[str], dict[str, dict[str, bool]]]:
    """(columns, {row: {column: may read}}) from the first table under "## The matrix"."""
    text = path.read_text()
    section = text.split("## The matrix", 1)[1]
    table = section[section.index("|") :].split("\n\n", 1)[0]
    lines = table.splitlines()
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    columns = header[1:]
    rows: dict[str, dict[str, bool]] = {}
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        name = re.sub(r"`|\*", "", cells[0])
        rows[name] = {}
        for column, cell in zip(columns, cells[1:], strict=True):
            answer = cell.split()[0].lower().strip(".,;")
            assert answer in ANSWERS, f"{name} / {column}: {cell!r} is not yes or no"
            rows[name][column] = ANSWERS[answer]
    return columns, rows


COLUMNS, MATRIX = read_matrix()


def _labelled(resource: dict[str, Any], label: str) -> dict[str, Any]:
    """The resource with a sensitivity label and the restricted confidentiality it implies."""
    security = [{"system": CONFIDENTIALITY, "code": "R"}, {"system": ACT_CODE, "code": label}]
    return {**resource, "meta": {"security": security}}


def _created(client: httpx.Client, path: str, body: dict[str, Any]) -> str:
    response = client.post(path, json=body, headers=JSON_HEADERS)
    assert response.status_code in (200, 201), f"{path}: {response.status_code} {response.text}"
    # From Location: the gateway answers the write of labelled content with an OperationOutcome.
    return str(response.headers["location"].split(path + "/")[1].split("/")[0])


def _signed(
    notes: nt_grpc.NotesServiceStub,
    settings: Settings,
    author: tuple[str, str],
    patient_id: str,
    kind: str,
    text: str,
    sensitivity: tuple[str, ...] = (),
) -> str:
    """A note drafted and signed by its author over gRPC; its id."""
    metadata = harness.metadata(settings, role=author[0], practitioner=author[1])
    draft = notes.CreateNote(
        nt.CreateNoteRequest(
            request_id=str(uuid.uuid4()),
            note=nt.NoteInput(
                patient_id=patient_id, kind=kind, text=text, sensitivity=list(sensitivity)
            ),
        ),
        metadata=metadata,
    ).notes[0]
    notes.SignNote(
        nt.SignNoteRequest(id=draft.id, expected_version=draft.version), metadata=metadata
    )
    return str(draft.id)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    kafka_bootstrap: str,
) -> Iterator[Stack]:
    server = request.getfixturevalue("postgres_server") if request.param != "sqlite" else None
    with stack_for(
        request.param, tmp_path_factory, kafka_bootstrap, "access-matrix", server
    ) as running:
        yield running


def _patient_token(settings: Settings, patient_id: str) -> str:
    return auth.mint_token(
        settings,
        subject=f"patient:{patient_id}",
        role="patient",
        patient_context=patient_id,
        scopes=["patient/*.rs", "patient/QuestionnaireResponse.cs"],
    )


def _read_over_grpc(
    stack: Stack, role: str, practitioner: str, patient_id: str, reference: str
) -> bool:
    kind, ident = reference.split("/")
    metadata = harness.metadata(stack.settings, role=role, practitioner=practitioner)
    service = {
        "SafetyPlan": "notes",
        "Communication": "notes",
        "DocumentReference": "notes",
        "QuestionnaireResponse": "scheduling",
    }.get(kind, "careplan")
    with harness.channel(stack.runtimes[service]) as channel:
        try:
            if kind == "SafetyPlan":
                nt_grpc.NotesServiceStub(channel).GetSafetyPlan(
                    nt.GetSafetyPlanRequest(id=ident), metadata=metadata
                )
                return True
            if kind == "QuestionnaireResponse":
                # Check-ins are listed per patient (no read by id over gRPC): read = listed.
                listed = sc_grpc.SchedulingServiceStub(channel).ListCheckInResponses(
                    sc.ListCheckInResponsesRequest(patient_id=patient_id), metadata=metadata
                )
                return ident in {json.loads(r.fhir_json)["id"] for r in listed.responses}
            if kind == "DocumentReference":
                nt_grpc.NotesServiceStub(channel).GetNote(
                    nt.GetNoteRequest(id=ident), metadata=metadata
                )
            elif kind == "Communication":
                nt_grpc.NotesServiceStub(channel).GetCommunication(
                    nt.GetCommunicationRequest(id=ident), metadata=metadata
                )
            else:
                stub = cp_grpc.CarePlanServiceStub(channel)
                reads: dict[str, Any] = {
                    "Patient": lambda: stub.GetPatient(
                        cp.GetPatientRequest(id=ident), metadata=metadata
                    ),
                    "CarePlan": lambda: stub.GetCarePlan(
                        cp.GetCarePlanRequest(id=ident), metadata=metadata
                    ),
                    "Goal": lambda: stub.GetGoal(cp.GetGoalRequest(id=ident), metadata=metadata),
                    "Observation": lambda: stub.GetMeasure(
                        cp.GetMeasureRequest(id=ident), metadata=metadata
                    ),
                    "MedicationStatement": lambda: stub.GetMedicationStatement(
                        cp.GetMedicationStatementRequest(id=ident), metadata=metadata
                    ),
                    "NutritionOrder": lambda: stub.GetNutritionOrder(
                        cp.GetNutritionOrderRequest(id=ident), metadata=metadata
                    ),
                    "RelatedPerson": lambda: stub.GetRelatedPerson(
                        cp.GetRelatedPersonRequest(id=ident), metadata=metadata
                    ),
                }
                reads[kind]()
        except grpc.RpcError as exc:
            assert exc.code() in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.NOT_FOUND), (
                f"{reference} as {role} {practitioner}: {exc.code()} {exc.details()}"
            )
            return False
    return True


def _read_over_rest(stack: Stack, token: str, patient_id: str, reference: str) -> bool:
    kind, ident = reference.split("/")
    kind = "QuestionnaireResponse" if kind == "SafetyPlan" else kind
    with stack.client(token) as client:
        if kind == "QuestionnaireResponse":  # searched by patient: read = found
            found = client.get(f"/{kind}", params={"patient": patient_id})
            if found.status_code != 200:
                return False
            return ident in {e["resource"]["id"] for e in found.json().get("entry", [])}
        response = client.get("/" + reference)
    assert response.status_code in (200, 403, 404), (
        f"{reference}: {response.status_code} {response.text}"
    )
    if response.status_code != 200:
        return False
    body = response.json()
    # A read answered with an OperationOutcome (content withheld) is a refusal.
    return bool(body.get("resourceType") == reference.split("/")[0])


def may_read(stack: Stack, column: str, patient_id: str, reference: str) -> bool:
    if column in CLINICIANS:
        return _read_over_grpc(stack, *CLINICIANS[column], patient_id, reference)
    if column == "the patient":
        return _read_over_rest(
            stack, _patient_token(stack.settings, patient_id), patient_id, reference
        )
    if column == "another patient":
        other = f"pat-{uuid.uuid4().hex[:12]}"
        return _read_over_rest(stack, _patient_token(stack.settings, other), patient_id, reference)
    if column == "EHR without consent":
        token = system_token(stack.settings, ["system/*.rs"])
        return _read_over_rest(stack, token, patient_id, reference)
    raise AssertionError(f"unknown column {column!r} in {DOC.name}")


@pytest.fixture(scope="module")
def record(stack: Stack) -> dict[str, str]:
    """One patient's record with an item of each kind the matrix names, each written by the role
    that writes it: {row: "Type/id"}."""
    s = stack.settings
    with stack.client(system_token(s)) as ehr:
        patient_id = _created(
            ehr,
            "/Patient",
            {
                "resourceType": "Patient",
                "identifier": [
                    {"system": "urn:oid:2.16.840.1.113883.19.5", "value": uuid.uuid4().hex}
                ],
                "name": [{"family": "Matrix", "given": ["Avery"]}],
            },
        )
    team = enrol_team(stack, patient_id)
    psychiatrist = stack.client(practitioner_token(s, "psychiatrist", "psy-1"))
    therapist = stack.client(practitioner_token(s, "therapist", "th-1"))
    physician = stack.client(practitioner_token(s, "physician", "doc-1"))
    screen = _labelled(urine_screen(patient_id, "19295-5", positive=False), "SUD")
    with psychiatrist, therapist, physician, harness.channel(stack.runtimes["notes"]) as channel:
        notes = nt_grpc.NotesServiceStub(channel)
        # notes projects the team from its event before it accepts a note or a message.
        harness.eventually(
            lambda: (
                therapist.get("/Communication", params={"patient": patient_id}).status_code == 200
                or None
            )
        )
        plan = iop_plan(patient_id, team["id"])
        message = {
            "resourceType": "Communication",
            "status": "completed",
            "subject": {"reference": f"Patient/{patient_id}"},
            "payload": [{"contentString": "Slept better this week."}],
        }
        therapist_id, psychiatrist_id = ("therapist", "th-1"), ("psychiatrist", "psy-1")
        items = {
            "patient": f"Patient/{patient_id}",
            "CarePlan": "CarePlan/" + _created(psychiatrist, "/CarePlan", plan),
            "PHQ-9 score": "Observation/"
            + _created(therapist, "/Observation", phq9(patient_id, 14)),
            "vital signs": "Observation/"
            + _created(physician, "/Observation", blood_pressure(patient_id, 128, 82)),
            "lab result": "Observation/"
            + _created(physician, "/Observation", lithium(patient_id, 0.8)),
            "urine drug screen (Part 2)": "Observation/"
            + _created(physician, "/Observation", screen),
            "team thread message": "Communication/"
            + _created(therapist, "/Communication", message),
            "therapy note": "DocumentReference/"
            + _signed(notes, s, therapist_id, patient_id, "therapy", "Distress tolerance."),
            "psychiatry note": "DocumentReference/"
            + _signed(notes, s, psychiatrist_id, patient_id, "psychiatric", "Sertraline ok."),
            "nutrition note": "DocumentReference/"
            + _signed(notes, s, ("dietitian", "diet-1"), patient_id, "nutrition", "Three meals."),
            "intake note": "DocumentReference/"
            + _signed(notes, s, therapist_id, patient_id, "intake", "Stepped down."),
            "psychotherapy note": "DocumentReference/"
            + _signed(
                notes, s, therapist_id, patient_id, "therapy", "Process notes.", ("PSYTHPN",)
            ),
            "SUD note (Part 2)": "DocumentReference/"
            + _signed(
                notes, s, therapist_id, patient_id, "therapy", "Relapse prevention.", ("SUD",)
            ),
        }
    psychiatrist = stack.client(practitioner_token(s, "psychiatrist", "psy-1"))
    therapist = stack.client(practitioner_token(s, "therapist", "th-1"))
    dietitian = stack.client(practitioner_token(s, "dietitian", "diet-1"))
    with psychiatrist, therapist, dietitian:
        items["Goal"] = "Goal/" + _created(therapist, "/Goal", phq9_goal(patient_id))
        items["MedicationStatement"] = "MedicationStatement/" + _created(
            psychiatrist, "/MedicationStatement", medication_statement(patient_id)
        )
        items["NutritionOrder"] = "NutritionOrder/" + _created(
            dietitian, "/NutritionOrder", nutrition_order(patient_id)
        )
        # The safety plan is a QuestionnaireResponse too, kept by notes (ADR 0020).
        items["safety plan"] = "SafetyPlan/" + _created(
            therapist, "/QuestionnaireResponse", safety_plan(patient_id)
        )
        items["family member (RelatedPerson)"] = "RelatedPerson/" + _created(
            therapist, "/RelatedPerson", _relative(patient_id)
        )
    with stack.client(_patient_token(s, patient_id)) as patient_app:
        items["daily check-in"] = "QuestionnaireResponse/" + _created(
            patient_app, "/QuestionnaireResponse", _check_in(patient_id)
        )
    return items


def _relative(patient_id: str) -> dict[str, Any]:
    return {
        "resourceType": "RelatedPerson",
        "patient": {"reference": f"Patient/{patient_id}"},
        "relationship": [
            {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "MTH"}
                ]
            }
        ],
        "name": [{"family": "Matrix", "given": ["Dana"]}],
        "telecom": [{"system": "phone", "value": "+1 555 0142", "use": "mobile"}],
    }


def _check_in(patient_id: str) -> dict[str, Any]:
    answers = (
        ("mood", "valueInteger", 6),
        ("craving", "valueInteger", 3),
        ("sleep-hours", "valueDecimal", 7.0),
        ("medication-taken", "valueBoolean", True),
        ("self-harm-thoughts", "valueBoolean", False),
    )
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": QUESTIONNAIRE_URL,
        "status": "completed",
        "subject": {"reference": f"Patient/{patient_id}"},
        "item": [{"linkId": link, "answer": [{kind: value}]} for link, kind, value in answers],
    }


def test_the_document_names_every_item_and_every_column() -> None:
    assert COLUMNS, "the matrix has no columns"
    for row in MATRIX.values():
        assert set(row) == set(COLUMNS)


@pytest.mark.parametrize("row", sorted(MATRIX))
def test_each_cell_is_what_the_matrix_says(stack: Stack, record: dict[str, str], row: str) -> None:
    assert row in record, f"{DOC.name} names {row!r}, which this test does not build"
    patient_id = record["patient"].split("/")[1]
    wrong = [
        f"{column}: {'reads' if allowed else 'refused'}"
        for column in COLUMNS
        if (allowed := may_read(stack, column, patient_id, record[row])) != MATRIX[row][column]
    ]
    assert not wrong, f"{row}: " + "; ".join(wrong)
