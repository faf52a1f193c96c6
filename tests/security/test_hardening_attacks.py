"""Attack tests of issue 10's hardening items: one client exhausting shared capacity, files
created world-readable, production running on generated keys, and the gateway unable to present
a client certificate to services that require mTLS.

No assertion depends on the machine's speed: the flooding client's requests are held in the
gateway by a failpoint (`gateway_request`, a sleep) so that they overlap on any machine, and the
tests assert on statuses (429 for the flooder while another client is served), never on times.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from iopcare.careplan.v1 import careplan_service_pb2_grpc as cp_grpc
from iopcare.devtools.kafka_broker import free_port
from iopcare.devtools.processes import ServiceProcess
from iopcare.kit import failpoints
from iopcare.kit.settings import REPO_ROOT, ConfigurationError, Settings
from iopcare.notes.v1 import notes_service_pb2 as nt
from iopcare.notes.v1 import notes_service_pb2_grpc as nt_grpc
from tests.integration.test_tls import _certificate
from tests.support import harness
from tests.support.gateway import running_stack, system_token
from tests.support.notes import as_, running_notes, wait_for_team

# -- a. one client cannot exhaust shared capacity ------------------------------------------------


def _retry_delay(error: grpc.RpcError) -> float | None:
    """The RetryInfo delay of a refused call, in seconds (None: no RetryInfo detail)."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    return None


class Stream:
    """A WatchThread call held open on its own thread: `opened` once the server accepted it,
    `error` if it refused it."""

    def __init__(self, notes: nt_grpc.NotesServiceStub, md: Any, patient: str) -> None:
        self.call = notes.WatchThread(nt.WatchThreadRequest(patient_id=patient), metadata=md)
        self.error: grpc.RpcError | None = None
        self.ended = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()
        # Initial metadata arrives once the stream is open, or the call ends refused.
        self.call.initial_metadata()
        if self.call.done() and self.call.code() != grpc.StatusCode.OK:
            self.ended.wait(5)
            self.error = self.call  # type: ignore[assignment]

    def _run(self) -> None:
        try:
            for _ in self.call:
                pass
        except grpc.RpcError:
            pass
        finally:
            self.ended.set()

    def cancel(self) -> None:
        self.call.cancel()
        self.ended.wait(5)


@pytest.fixture
def streams() -> Iterator[list[Stream]]:
    opened: list[Stream] = []
    yield opened
    for stream in opened:
        stream.cancel()


def test_one_clinician_cannot_take_every_watch_thread_slot(
    notes: nt_grpc.NotesServiceStub,
    settings: Settings,
    patient: str,
    streams: list[Stream],
) -> None:
    """Attack: psy-1 opens WatchThread streams until the server's places run out, so nobody else
    on the team can watch. Each principal gets at most `notes_watch_max_per_client` (2) streams;
    the third is RESOURCE_EXHAUSTED with RetryInfo, and a colleague still gets a stream."""
    psy = as_(settings, "psychiatrist", "psy-1")
    for _ in range(settings.notes_watch_max_per_client):
        streams.append(Stream(notes, psy, patient))
        assert streams[-1].error is None
    third = Stream(notes, psy, patient)
    streams.append(third)
    assert third.error is not None
    assert third.error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert (_retry_delay(third.error) or 0) > 0
    colleague = Stream(notes, as_(settings, "therapist", "th-1"), patient)
    streams.append(colleague)
    assert colleague.error is None
    # A psy-1 token with another jti is still psy-1: the limit follows the subject, not the token.
    fresh_token = Stream(notes, as_(settings, "psychiatrist", "psy-1"), patient)
    streams.append(fresh_token)
    assert fresh_token.error is not None


def test_one_client_over_its_share_of_a_service_gets_resource_exhausted_with_retry_info(
    settings: Settings,
    notes: nt_grpc.NotesServiceStub,
    patient: str,
    tmp_path: Path,
    streams: list[Stream],
) -> None:
    """Attack: one client keeps every server thread of a service busy (long calls), so nobody
    else's calls run. A per-client concurrency limit in the kit's interceptor chain refuses the
    client's calls beyond its share with RESOURCE_EXHAUSTED and a RetryInfo, while another
    client's calls (and health checks) are served."""
    limited = settings.model_copy(
        update={"rpc_max_calls_per_client": 3, "notes_watch_max_per_client": 10}
    )
    with (
        running_notes(limited, f"sqlite:///{tmp_path / 'limited-notes.db'}") as runtime,
        harness.channel(runtime) as channel,
    ):
        stub = nt_grpc.NotesServiceStub(channel)
        wait_for_team(stub, settings, patient)
        psy = as_(settings, "psychiatrist", "psy-1")
        for _ in range(3):
            streams.append(Stream(stub, psy, patient))
            assert streams[-1].error is None
        with pytest.raises(grpc.RpcError) as caught:
            stub.ListThread(nt.ListThreadRequest(patient_id=patient), metadata=psy, timeout=10)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert (_retry_delay(caught.value) or 0) > 0
        # Another client is served meanwhile.
        stub.ListThread(
            nt.ListThreadRequest(patient_id=patient),
            metadata=as_(settings, "therapist", "th-1"),
            timeout=10,
        )
        # The share comes back when the client's calls end.
        streams[0].cancel()
        harness.eventually(
            lambda: _served(
                lambda: stub.ListThread(
                    nt.ListThreadRequest(patient_id=patient), metadata=psy, timeout=10
                )
            ),
            timeout=10,
        )
        for stream in streams:
            stream.cancel()


def _served(call: Any) -> bool:
    try:
        call()
        return True
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
            raise
        return False


@pytest.fixture
def sqlite_urls(tmp_path: Path) -> dict[str, str]:
    return {n: f"sqlite:///{tmp_path / n}.db" for n in ("careplan", "scheduling", "notes")}


def test_one_client_flooding_the_gateway_gets_429_while_others_and_metadata_are_served(
    data_dir: Path, kafka_bootstrap: str, sqlite_urls: dict[str, str]
) -> None:
    """Attack: one EHR sends many concurrent requests (45 batches once made /metadata wait 18 s).
    Its requests beyond its share (active plus queued) get 429 with Retry-After and an
    OperationOutcome at once; another client's request is served, and so is /metadata."""
    settings = harness.settings_for(
        data_dir, kafka_bootstrap, harness.isolated_topics(kafka_bootstrap)
    )
    limits = {"max_requests_per_client": 2, "max_queued_per_client": 2, "max_active_requests": 4}
    with running_stack(settings, sqlite_urls, **limits) as stack:
        # Every request the gateway admits now takes 3 s: the flood overlaps on any machine.
        failpoints.arm("gateway_request", "sleep(3000)")
        flooder = system_token(settings, subject="system:flooding-ehr")
        other = system_token(settings, subject="system:other-ehr")
        flood_size = 10
        statuses: list[httpx.Response] = []
        lock = threading.Lock()

        def one() -> None:
            with stack.client(flooder) as client:
                answer = client.get(f"/Patient/{uuid.uuid4().hex}")
            with lock:
                statuses.append(answer)

        with ThreadPoolExecutor(flood_size) as pool:
            futures = [pool.submit(one) for _ in range(flood_size)]
            # Refusals come at once: wait for the first, then ask as the other client.
            harness.eventually(
                lambda: any(a.status_code == 429 for a in list(statuses)), timeout=30
            )
            with stack.client() as client:
                metadata = client.get("/metadata")
            assert metadata.status_code == 200
            with stack.client(other) as client:
                served = client.get(f"/Patient/{uuid.uuid4().hex}")
            assert served.status_code == 404, served.text
            for future in futures:
                future.result()
        failpoints.disarm()
    refused = [a for a in statuses if a.status_code == 429]
    admitted = [a for a in statuses if a.status_code != 429]
    # Two active and two queued at most: the other six were refused.
    assert len(admitted) <= 4 and len(refused) >= flood_size - 4
    assert {a.status_code for a in admitted} == {404}
    for answer in refused:
        assert int(answer.headers["Retry-After"]) >= 1
        outcome = answer.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][0]["code"] == "throttled"


# -- b. files are owner-only ---------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_databases_keys_and_logs_are_created_owner_only(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    """Attack: another local user reads the SQLite databases (patient data), the development
    signing key or the audit key, or a service's log, because they were created 0644 under a
    0755 data folder. Files are 0600 and folders 0700 whatever the umask."""
    data = tmp_path / "var"
    old_umask = os.umask(0o022)
    try:
        process = ServiceProcess(
            "careplan",
            free_port(),
            {
                "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
                "IOPCARE_DATA_DIR": str(data),
                "IOPCARE_TOPIC_PREFIX": harness.isolated_topics(kafka_bootstrap),
                "IOPCARE_DEV_MODE": "true",
            },
            data / "logs" / "careplan.log",
        )
        process.start()
        try:
            with grpc.insecure_channel(process.address) as channel:
                # A write, so that the WAL and shared-memory files exist.
                harness.enrol_over_grpc(
                    cp_grpc.CarePlanServiceStub(channel), Settings(data_dir=data), "mode-pat"
                )
            # Checked while the service runs: SQLite removes -wal and -shm at the last close.
            folders = [data, data / "dev-keys", data / "logs"]
            files = [
                data / "careplan.db",
                data / "careplan.db-wal",
                data / "careplan.db-shm",
                data / "dev-keys" / "token-signing.pem",
                data / "dev-keys" / "token-signing.pub.pem",
                data / "dev-keys" / "audit.key",
                data / "logs" / "careplan.log",
            ]
            for folder in folders:
                assert _mode(folder) == 0o700, f"{folder} is {oct(_mode(folder))}"
            for file in files:
                assert _mode(file) == 0o600, f"{file} is {oct(_mode(file))}"
        finally:
            process.stop()
    finally:
        os.umask(old_umask)


def test_an_in_process_sqlite_database_is_owner_only(tmp_path: Path) -> None:
    """The same for a database opened by a library user (the tests, a tool) with a 022 umask."""
    from iopcare.kit.db import Database

    old_umask = os.umask(0o022)
    try:
        folder = tmp_path / "fresh"
        db = Database(f"sqlite:///{folder / 'x.db'}")
        with db.write() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        db.dispose()
    finally:
        os.umask(old_umask)
    assert _mode(folder) == 0o700
    for file in folder.iterdir():
        assert _mode(file) == 0o600, f"{file} is {oct(_mode(file))}"


# -- c. production refuses generated keys --------------------------------------------------------


def _production_env(data: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOPCARE_")}
    env.update({"IOPCARE_DATA_DIR": str(data), "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"})
    env.update(extra)
    return env


@pytest.mark.parametrize("service", ["careplan", "gateway"])
def test_production_refuses_to_start_without_configured_keys(tmp_path: Path, service: str) -> None:
    """Attack: a deployment that forgot the keys runs on a development signing key generated in
    its data folder (tokens anyone with that folder can mint) and seals audit rows with a fresh
    random key per pod. Outside development mode, start-up fails naming the missing setting, and
    no key is generated."""
    answer = subprocess.run(
        [sys.executable, "-m", "iopcare.cli", "serve", service],
        env=_production_env(tmp_path / "var"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert answer.returncode != 0
    assert "IOPCARE_TOKEN_PUBLIC_KEY_FILE" in answer.stderr
    if service != "gateway":
        assert "IOPCARE_AUDIT_KEY_FILE" in answer.stderr
    assert "Traceback" not in answer.stderr
    assert not (tmp_path / "var" / "dev-keys").exists()


def test_production_keys_are_checked_in_process(tmp_path: Path, kafka_bootstrap: str) -> None:
    """The same rule for a composition root built in process; a configured audit key file that
    does not exist is refused rather than created (each pod would seal with its own key)."""
    production = harness.settings_for(tmp_path, kafka_bootstrap).model_copy(
        update={"dev_mode": False}
    )
    with pytest.raises(ConfigurationError, match="IOPCARE_AUDIT_KEY_FILE"):
        harness.build("careplan", production, f"sqlite:///{tmp_path / 'c.db'}")
    dev = harness.settings_for(tmp_path / "dev", kafka_bootstrap)
    from iopcare.kit import auth, signing

    _, public = auth.ensure_dev_keys(dev)
    with pytest.raises(ConfigurationError, match="IOPCARE_EVENT_KEYS_DIR"):
        harness.build(
            "careplan",
            production.model_copy(update={"token_public_key_file": public}),
            f"sqlite:///{tmp_path / 'c.db'}",
        )
    # The operator's event keys: each service's signing key and every public key.
    signing.verifier_for(dev)
    missing_audit_key = production.model_copy(
        update={
            "token_public_key_file": public,
            "audit_key_file": tmp_path / "nowhere.key",
            "event_keys_dir": signing.keys_dir(dev)[0],
        }
    )
    with pytest.raises(ConfigurationError, match="IOPCARE_AUDIT_KEY_FILE"):
        harness.build("careplan", missing_audit_key, f"sqlite:///{tmp_path / 'c.db'}")
    assert not (tmp_path / "nowhere.key").exists()
    with pytest.raises(ConfigurationError, match="IOPCARE_TOKEN_PRIVATE_KEY_FILE"):
        auth.mint_token(production, subject="x", role="admin")
    audit_key = tmp_path / "audit.key"
    audit_key.write_bytes(os.urandom(32))
    configured = missing_audit_key.model_copy(update={"audit_key_file": audit_key})
    runtime = harness.build("careplan", configured, f"sqlite:///{tmp_path / 'c.db'}")
    runtime.stop(grace=0)


def test_deploy_files_set_the_audit_and_token_keys_from_secrets() -> None:
    """Attack: the deploy files start pods without the audit key (each pod would seal with a
    fresh random key). Every service in compose.yaml and in the Kubernetes manifests takes both
    keys from secrets and none runs in development mode."""
    deploy = REPO_ROOT / "deploy"
    compose = (deploy / "compose.yaml").read_text()
    for setting in (
        "IOPCARE_AUDIT_KEY_FILE: /run/secrets/",
        "IOPCARE_TOKEN_PUBLIC_KEY_FILE: /run/secrets/",
    ):
        assert setting in compose
    assert "IOPCARE_DEV_MODE:" not in compose
    assert "IOPCARE_DEV_MODE:" not in (deploy / "k8s" / "config.yaml").read_text()
    for manifest in ("careplan", "scheduling", "notes"):
        text = (deploy / "k8s" / f"{manifest}.yaml").read_text()
        for setting in ("IOPCARE_AUDIT_KEY_FILE", "IOPCARE_TOKEN_PUBLIC_KEY_FILE"):
            assert f"name: {setting}" in text, (manifest, setting)
        assert "secretName: iopcare-audit-key" in text
        assert "name: IOPCARE_DEV_MODE" not in text


# -- d. the gateway presents a client certificate ------------------------------------------------


def test_the_gateway_presents_its_client_certificate_to_services_requiring_mtls(
    tmp_path: Path, data_dir: Path, kafka_bootstrap: str, sqlite_urls: dict[str, str]
) -> None:
    """Attack (of availability): services require client certificates, and the gateway, unable
    to present one, cannot reach them. With IOPCARE_GATEWAY_GRPC_CLIENT_CERT_FILE/_KEY_FILE the
    gateway's calls are accepted; a gateway without a certificate is refused by the services."""
    ca_cert, _, ca, ca_key = _certificate(tmp_path, "ca")
    server_cert, server_key, _, _ = _certificate(tmp_path, "server", (ca, ca_key))
    client_cert, client_key, _, _ = _certificate(tmp_path, "gateway", (ca, ca_key))
    settings = harness.settings_for(
        data_dir, kafka_bootstrap, harness.isolated_topics(kafka_bootstrap)
    ).model_copy(
        update={
            "tls_cert_file": server_cert,
            "tls_key_file": server_key,
            "tls_client_ca_file": ca_cert,
        }
    )
    tls = {"grpc_ca_file": ca_cert, "service_host": "localhost"}
    with running_stack(
        settings,
        sqlite_urls,
        grpc_client_cert_file=client_cert,
        grpc_client_key_file=client_key,
        **tls,
    ) as stack:
        token = system_token(settings)
        with stack.client(token) as client:
            # 404 comes from careplan: the call went through mTLS.
            answer = client.get(f"/Patient/{uuid.uuid4().hex}")
        assert answer.status_code == 404, answer.text
        assert stack.runtimes  # the same services, reached by a gateway without a certificate:
        from iopcare.gateway.app import build as build_gateway
        from iopcare.gateway.settings import GatewaySettings

        ports = {n: r.port for n, r in stack.runtimes.items()}
        _, bare = build_gateway(
            settings,
            GatewaySettings(
                grpc_ca_file=ca_cert,
                careplan_address=f"localhost:{ports['careplan']}",
                scheduling_address=f"localhost:{ports['scheduling']}",
                notes_address=f"localhost:{ports['notes']}",
                call_timeout_seconds=5,
            ),
            lambda _record: None,
        )
        try:
            from iopcare.gateway.http import FhirRequest

            refused = bare.handle(
                FhirRequest(
                    "GET",
                    f"Patient/{uuid.uuid4().hex}",
                    [],
                    {"authorization": f"Bearer {token}", "accept": "application/fhir+json"},
                    b"",
                    "http://localhost/fhir",
                )
            )
        finally:
            bare.services.close()
        assert refused.status == 503


def test_gateway_client_certificate_settings_must_come_in_pairs(tmp_path: Path) -> None:
    from iopcare.gateway.client import Services
    from iopcare.gateway.settings import GatewaySettings

    with pytest.raises(ConfigurationError, match="IOPCARE_GATEWAY_GRPC_CLIENT_KEY_FILE"):
        Services(GatewaySettings(grpc_client_cert_file=tmp_path / "c.crt"))
