"""Probes (scratch)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.kit.runtime import ServiceRuntime
from iopcare.kit.settings import Settings
from iopcare.notes.v1 import notes_service_pb2 as nt
from iopcare.notes.v1 import notes_service_pb2_grpc as nt_grpc
from tests.support import harness
from tests.support.notes import (
    as_,
    error_reason,
    field_violations,
    notes_database,
    running_notes,
    wait_for_team,
)
from tests.support.plans import new_patient_id


@pytest.fixture
def notes_runtime(
    settings: Settings, database_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[ServiceRuntime]:
    with running_notes(settings, notes_database(database_url, request, tmp_path)) as runtime:
        yield runtime


@pytest.fixture
def notes(notes_runtime: ServiceRuntime) -> Iterator[nt_grpc.NotesServiceStub]:
    with harness.channel(notes_runtime) as channel:
        yield nt_grpc.NotesServiceStub(channel)


@pytest.fixture
def patient(
    stub: pb_grpc.CarePlanServiceStub, notes: nt_grpc.NotesServiceStub, settings: Settings
) -> str:
    patient_id = new_patient_id()
    harness.enrol_over_grpc(stub, settings, patient_id)
    wait_for_team(notes, settings, patient_id)
    return patient_id


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
