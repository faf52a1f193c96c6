"""TLS to PostgreSQL (issue 17, item 4): a service reaches its database with
`sslmode=verify-full` and a client certificate, and every weaker or wrong connection is refused.

The server is the distribution's PostgreSQL started by the test with `ssl=on`, a certificate for
`localhost` signed by a CA made here, and a pg_hba that takes TCP clients over TLS with a client
certificate only (tests/support/postgres.py). The service is careplan, built from its
environment variables as `iopcare serve careplan` builds it; it migrates its schema and answers
real RPCs over that connection.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from iopcare.careplan import app
from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.kit.db import Database
from iopcare.kit.errors import Unavailable
from iopcare.kit.rpc import wait_serving
from iopcare.kit.settings import ServiceSettings, Settings
from tests.support import harness
from tests.support.plans import new_patient_id
from tests.support.postgres import (
    PkiFiles,
    PostgresServer,
    local_server_unavailable,
    make_certificates,
)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return make_certificates(tmp_path_factory.mktemp("pg-tls"), clients=("careplan",))


@pytest.fixture(scope="module")
def tls_server(certificates: PkiFiles) -> Iterator[PostgresServer]:
    reason = local_server_unavailable()
    if reason is not None:
        harness.missing(reason)
    # A server of its own even when IOPCARE_TEST_POSTGRES_URL names one: the test decides its
    # certificates and its pg_hba.
    server = PostgresServer(tls=certificates.server)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def careplan_url(tls_server: PostgresServer) -> str:
    """A fresh database owned by the role `careplan` (the client certificate's CN); the URL
    names `localhost` and carries no TLS parameter of its own."""
    return tls_server.create_database(f"tls_{uuid.uuid4().hex[:10]}", owner="careplan")


def _tls_env(
    monkeypatch: pytest.MonkeyPatch,
    url: str,
    certificates: PkiFiles,
    *,
    rootcert: Path | None = None,
    sslmode: str = "verify-full",
) -> ServiceSettings:
    cert, key = certificates.clients["careplan"]
    for name, value in {
        "URL": url,
        "SSLMODE": sslmode,
        "SSLROOTCERT": str(rootcert or certificates.ca_file),
        "SSLCERT": str(cert),
        "SSLKEY": str(key),
    }.items():
        monkeypatch.setenv(f"IOPCARE_CAREPLAN_DATABASE_{name}", value)
    monkeypatch.setenv("IOPCARE_CAREPLAN_HOST", "127.0.0.1")
    monkeypatch.setenv("IOPCARE_CAREPLAN_PORT", "0")
    monkeypatch.setenv("IOPCARE_CAREPLAN_CONSUMER_GROUP", f"test-tls-{uuid.uuid4().hex[:8]}")
    return ServiceSettings.for_service("careplan", Settings())


def _refusal(url: str) -> str:
    """The database's refusal of `url`, as the service sees it: Unavailable, libpq's reason in
    its cause."""
    db = Database(url)
    try:
        with pytest.raises(Unavailable) as refused, db.read() as conn:
            conn.execute(text("SELECT 1"))
    finally:
        db.dispose()
    return str(refused.value.__cause__)


def test_careplan_migrates_and_serves_over_verify_full(
    monkeypatch: pytest.MonkeyPatch,
    careplan_url: str,
    certificates: PkiFiles,
    data_dir: Path,
    kafka_bootstrap: str,
) -> None:
    service = _tls_env(monkeypatch, careplan_url, certificates)
    assert "sslmode=verify-full" in service.database_url
    settings = harness.settings_for(
        data_dir, kafka_bootstrap, harness.isolated_topics(kafka_bootstrap)
    )
    runtime = app.build(settings, service)  # migrates over TLS
    runtime.start()
    try:
        # Readiness probes the database over the same connection settings.
        wait_serving(f"127.0.0.1:{runtime.port}", timeout=30)
        with harness.channel(runtime) as channel:
            stub = pb_grpc.CarePlanServiceStub(channel)
            patient = new_patient_id()
            team_id = harness.enrol_over_grpc(stub, settings, patient)
            read = stub.GetCareTeam(
                pb.GetCareTeamRequest(id=team_id),
                metadata=harness.metadata(settings, role="case-manager", practitioner="cm-1"),
                timeout=10,
            )
        assert json.loads(read.care_team.fhir_json)["subject"]["reference"] == f"Patient/{patient}"
        # The server's view of the service's own connection: TLS, and the client certificate
        # that authenticated it.
        with runtime.db.read() as conn:
            ssl, version, client_dn = conn.execute(
                text("SELECT ssl, version, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            ).one()
            tables = conn.execute(
                text("SELECT count(*) FROM information_schema.tables WHERE table_name = 'outbox'")
            ).scalar_one()
        assert ssl is True
        assert version.startswith("TLSv1.")
        assert client_dn == "/CN=careplan"
        assert tables == 1
    finally:
        runtime.stop(grace=0.5)


def test_a_server_certificate_from_another_ca_is_refused(
    monkeypatch: pytest.MonkeyPatch, careplan_url: str, certificates: PkiFiles
) -> None:
    service = _tls_env(monkeypatch, careplan_url, certificates, rootcert=certificates.other_ca_file)
    assert "certificate verify failed" in _refusal(service.database_url)
    # The service does not start on it either (its migration is the first connection).
    settings = Settings(data_dir=Path(str(certificates.ca_file.parent)), dev_mode=True)
    with pytest.raises(Exception, match="certificate verify failed"):
        app.build(settings, service)


def test_a_hostname_mismatch_is_refused_under_verify_full(
    monkeypatch: pytest.MonkeyPatch, careplan_url: str, certificates: PkiFiles
) -> None:
    # The certificate names localhost; the same server reached as 127.0.0.1 is not it.
    by_address = careplan_url.replace("@localhost:", "@127.0.0.1:")
    full = _tls_env(monkeypatch, by_address, certificates)
    assert 'does not match host name "127.0.0.1"' in _refusal(full.database_url)
    # verify-ca checks the chain only and connects: what verify-full adds is the name check.
    only_ca = _tls_env(monkeypatch, by_address, certificates, sslmode="verify-ca")
    db = Database(only_ca.database_url)
    try:
        with db.read() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        db.dispose()


def test_the_server_refuses_a_connection_without_tls(careplan_url: str) -> None:
    # sslmode=disable: the client offers no TLS; pg_hba has only hostssl lines for TCP.
    reason = _refusal(careplan_url + "?sslmode=disable")
    assert "pg_hba.conf rejects connection" in reason
    assert "no encryption" in reason


def test_the_server_refuses_tls_without_a_client_certificate(
    careplan_url: str, certificates: PkiFiles
) -> None:
    reason = _refusal(f"{careplan_url}?sslmode=verify-full&sslrootcert={certificates.ca_file}")
    assert "requires a valid client certificate" in reason
