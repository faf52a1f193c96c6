"""Every audit row is sealed; a row altered in the database afterwards is found (test-matrix C12),
on SQLite and PostgreSQL, and by `iopcare audit-verify`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from sqlalchemy import select, update

from iopcare.careplan import store
from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.kit import audit
from iopcare.kit.runtime import ServiceRuntime
from iopcare.kit.settings import Settings
from tests.support import harness
from tests.support.plans import iop_plan, new_patient_id


def test_an_audit_row_altered_in_the_database_is_found(
    stub: pb_grpc.CarePlanServiceStub,
    settings: Settings,
    careplan: ServiceRuntime,
    database_url: str,
) -> None:
    patient = new_patient_id()
    team_id = harness.enrol_over_grpc(stub, settings, patient)
    me = harness.metadata(settings)
    plan = stub.CreateCarePlan(
        pb.CreateCarePlanRequest(request_id="p", fhir_json=json.dumps(iop_plan(patient, team_id))),
        metadata=me,
    ).care_plan
    stub.GetCarePlan(pb.GetCarePlanRequest(id=plan.id), metadata=me)
    key = audit.load_key(settings.audit_key_path)
    db = careplan.db
    assert db is not None
    with db.read() as conn:
        rows = conn.execute(
            select(store.audit_log.c.id, store.audit_log.c.seal).where(
                store.audit_log.c.patient_id == patient
            )
        ).all()
        assert len(rows) >= 3 and all(seal for _, seal in rows)
        assert audit.verify(conn, store.audit_log, key) == ([], 0)
    # Someone with database access hides that the plan was read.
    read_row = max(row_id for row_id, _ in rows)
    with db.write() as conn:
        conn.execute(
            update(store.audit_log)
            .where(store.audit_log.c.id == read_row)
            .values(principal="practitioner:someone-else")
        )
    with db.read() as conn:
        assert audit.verify(conn, store.audit_log, key) == ([read_row], 0)
    # The operators' command says so too, and fails.
    env = {
        **os.environ,
        "IOPCARE_DATA_DIR": str(settings.data_dir),
        "IOPCARE_CAREPLAN_DATABASE_URL": database_url,
    }
    result = subprocess.run(
        [sys.executable, "-m", "iopcare.cli", "audit-verify", "careplan"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert f"altered: audit_log.id = {read_row}" in result.stdout
