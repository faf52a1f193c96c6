"""A notes service running in the test process next to careplan, and helpers to talk to it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from iopcare.kit.runtime import ServiceRuntime
from iopcare.kit.settings import Settings
from iopcare.notes.v1 import notes_service_pb2 as nt
from iopcare.notes.v1 import notes_service_pb2_grpc as nt_grpc
from tests.support import harness


def notes_database(database_url: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database of its own for notes, of the kind under test (a service never shares one)."""
    if database_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'notes.db'}"
    server = request.getfixturevalue("postgres_server")
    return str(server.create_database(f"notes_{uuid.uuid4().hex[:8]}"))


@contextmanager
def running_notes(settings: Settings, url: str) -> Iterator[ServiceRuntime]:
    runtime = harness.build("notes", settings, url)
    runtime.start()
    try:
        yield runtime
    finally:
        runtime.stop(grace=0.2)


def as_(settings: Settings, role: str, practitioner: str, **extra: Any) -> list[tuple[str, str]]:
    """Call metadata for a practitioner in a role (break_glass=True for emergency access)."""
    from iopcare.kit import auth
    from iopcare.kit.rpc import bearer

    return bearer(
        auth.mint_token(
            settings,
            subject=f"practitioner:{practitioner}",
            role=role,
            practitioner_id=practitioner,
            **extra,
        )
    )


def service_identity(settings: Settings, name: str = "gateway") -> list[tuple[str, str]]:
    from iopcare.kit import auth
    from iopcare.kit.rpc import bearer

    return bearer(auth.service_token(settings, name))


def wait_for_team(stub: nt_grpc.NotesServiceStub, settings: Settings, patient: str) -> None:
    """Waits until notes has projected the patient's care team (the psychiatrist gets in)."""

    def projected() -> bool:
        try:
            stub.ListThread(
                nt.ListThreadRequest(patient_id=patient),
                metadata=as_(settings, "psychiatrist", "psy-1"),
            )
            return True
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.PERMISSION_DENIED:
                raise
            return False

    harness.eventually(projected, timeout=30)


def error_reason(exc: grpc.RpcError) -> str:
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return str(info.reason)
    return ""


def field_violations(exc: grpc.RpcError) -> list[str]:
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    assert status is not None
    fields: list[str] = []
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            fields += [v.field for v in bad.field_violations]
    return fields
