"""Secure transport to Kafka (issue 17, item 4), against a real broker of its own.

One broker (devtools.kafka, with a throwaway CA made here) offers SASL_SSL (SCRAM-SHA-512 over
TLS) on its client port and SSL requiring a client certificate (mTLS) on a second port, with the
StandardAuthorizer and the services' ACLs as `make run` grants them. Every client below is built
from `Settings.kafka_client_options()`, the one function every producer, consumer and admin client
of a service is built with (relay, consumers, dead-letter producer, readiness check, topic
creation), so the settings are what is proven:

- careplan and notes exchange an event over SASL_SSL, each as its own principal (the relay
  publishes, notes' consumer applies), and their readiness checks pass over it;
- a wrong password, an untrusted CA, a plaintext client and a SASL client without TLS are all
  refused on the SASL_SSL port;
- over mTLS the certificate is the identity: careplan publishes with its certificate and notes
  applies the event; no certificate, or one from another CA, is refused; the certificate's
  principal gets only its own ACLs (notes' certificate cannot write careplan's topic).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer
from kafka.errors import KafkaError, TopicAuthorizationFailedError

from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.devtools.kafka import KafkaBroker, create_topics, dev_sasl_users, grant_service_acls
from iopcare.devtools.kafka.admin import open_admin
from iopcare.devtools.kafka.tls import ThrowawayPki, make_test_pki
from iopcare.kit import topics
from iopcare.kit.health import BrokerCheck
from iopcare.kit.settings import Settings
from iopcare.notes.v1 import notes_service_pb2_grpc as nt_grpc
from tests.support import harness
from tests.support.notes import wait_for_team
from tests.support.plans import new_patient_id

SERVICES = ("careplan", "notes")
#: A client that does not speak TLS, as the broker's TLS listener logs it.
NOT_TLS = "SSL handshake failed"


@dataclass
class SecureBroker:
    broker: KafkaBroker
    pki: ThrowawayPki
    credentials: Path  # <user>.password files (0600)


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    folder = tmp_path_factory.mktemp("kafka-tls")
    pki = make_test_pki(folder / "pki", clients=("admin", *SERVICES))
    credentials = folder / "credentials"
    users = dev_sasl_users(credentials)
    broker = KafkaBroker(
        data_dir=folder / "kafka", sasl_users=users, tls=pki.broker_tls(), mtls_port=0
    )
    broker.start(timeout=120)
    try:
        admin = broker.client_options()
        create_topics(
            broker.bootstrap_servers, topics.all_topics(), topics.PARTITIONS, client_options=admin
        )
        grant_service_acls(broker.bootstrap_servers, admin)
        yield SecureBroker(broker, pki, credentials)
    finally:
        broker.stop()


def _sasl_ssl(secure: SecureBroker, base: Settings, service: str) -> Settings:
    """The settings an operator gives a service on a SASL_SSL cluster (environment names in
    docs/operations.md): protocol, CA, its SCRAM user and the file holding its password."""
    return base.model_copy(
        update={
            "kafka_bootstrap_servers": secure.broker.bootstrap_servers,
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_mechanism": "SCRAM-SHA-512",
            "kafka_sasl_username": service,
            "kafka_sasl_password_file": secure.credentials / f"{service}.password",
            "kafka_ssl_cafile": secure.pki.ca_file,
        }
    )


def _mtls(secure: SecureBroker, base: Settings, service: str) -> Settings:
    """A service on an SSL cluster that authenticates clients by certificate."""
    cert, key = secure.pki.clients[service]
    return base.model_copy(
        update={
            "kafka_bootstrap_servers": secure.broker.mtls_bootstrap_servers,
            "kafka_security_protocol": "SSL",
            "kafka_ssl_cafile": secure.pki.ca_file,
            "kafka_ssl_certfile": cert,
            "kafka_ssl_keyfile": key,
        }
    )


def _connects(options: dict[str, Any]) -> bool:
    """Whether an admin client with these options gets the cluster's metadata (3 s at most)."""
    try:
        admin = open_admin(
            options["bootstrap_servers"], 3, "transport-test", client_options=options
        )
    except KafkaError:
        return False
    try:
        admin.describe_cluster()
        return True
    except KafkaError:
        return False
    finally:
        admin.close()


def _assert_refused(
    caplog: pytest.LogCaptureFixture,
    broker: KafkaBroker,
    good: Settings,
    cases: dict[str, tuple[dict[str, Any], str]],
) -> None:
    """Each case (`good` with one change) fails to connect, for the reason its pattern names in
    kafka-python's log or the broker's, not merely by timing out; `good` connects (the control)."""
    assert _connects(good.kafka_client_options())
    assert broker.log_file is not None
    for case, (update, reason) in cases.items():
        caplog.clear()
        offset = broker.log_file.stat().st_size
        with caplog.at_level(logging.INFO, logger="kafka"):
            connected = _connects(good.model_copy(update=update).kafka_client_options())
        assert not connected, case
        with broker.log_file.open("rb") as log:
            log.seek(offset)
            logged = caplog.text + log.read().decode("utf-8", errors="replace")
        assert re.search(reason, logged), f"{case}: no {reason!r} in\n{logged[-3000:]}"


def _exchange(settings: dict[str, Settings], tmp_path: Path) -> None:
    """careplan enrols a patient; waits until notes has applied the care team event."""
    runtimes = {
        name: harness.build(
            name,
            settings[name],
            f"sqlite:///{tmp_path / (name + '.db')}",
            # The groups the ACLs grant (iopcare-<service>*), fresh for this test.
            group=f"iopcare-{name}-{uuid.uuid4().hex[:8]}",
        )
        for name in SERVICES
    }
    for runtime in runtimes.values():
        runtime.start()
    try:
        patient = new_patient_id()
        with harness.channel(runtimes["careplan"]) as channel:
            harness.enrol_over_grpc(
                pb_grpc.CarePlanServiceStub(channel), settings["careplan"], patient
            )
        with harness.channel(runtimes["notes"]) as channel:
            wait_for_team(nt_grpc.NotesServiceStub(channel), settings["notes"], patient)
    finally:
        for runtime in runtimes.values():
            runtime.stop(grace=0.2)


@pytest.fixture
def base(tmp_path: Path) -> Settings:
    (tmp_path / "data").mkdir()
    return harness.settings_for(tmp_path / "data", "unused:9")


def test_the_services_exchange_events_over_sasl_ssl_each_as_its_own_principal(
    secure: SecureBroker, base: Settings, tmp_path: Path
) -> None:
    settings = {name: _sasl_ssl(secure, base, name) for name in SERVICES}
    for name in SERVICES:
        # The readiness probe's admin client (kit.health) goes over the same transport.
        check = BrokerCheck(settings[name].kafka_client_options(), f"{name}-readiness")
        try:
            check()
        finally:
            check.close()
    _exchange(settings, tmp_path)


def test_the_sasl_ssl_port_refuses_a_wrong_password_an_untrusted_ca_and_plaintext(
    secure: SecureBroker, base: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "wrong").write_text("not-the-password\n")
    stranger_ca = make_test_pki(tmp_path / "stranger", clients=()).ca_file
    # The broker's log says why it refused a SCRAM login.
    sasl_refused = "invalid credentials with SASL mechanism SCRAM-SHA-512"
    _assert_refused(
        caplog,
        secure.broker,
        _sasl_ssl(secure, base, "careplan"),
        {
            "wrong password": ({"kafka_sasl_password_file": tmp_path / "wrong"}, sasl_refused),
            "another user's password": (
                {"kafka_sasl_password_file": secure.credentials / "notes.password"},
                sasl_refused,
            ),
            "untrusted CA": ({"kafka_ssl_cafile": stranger_ca}, "CERTIFICATE_VERIFY_FAILED"),
            "plaintext": ({"kafka_security_protocol": "PLAINTEXT"}, NOT_TLS),
            "SASL without TLS": ({"kafka_security_protocol": "SASL_PLAINTEXT"}, NOT_TLS),
        },
    )


def test_over_mtls_the_certificate_is_the_identity(
    secure: SecureBroker, base: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # careplan publishes with its certificate alone; notes reads over SASL_SSL.
    settings = {
        "careplan": _mtls(secure, base, "careplan"),
        "notes": _sasl_ssl(secure, base, "notes"),
    }
    assert "sasl_plain_username" not in settings["careplan"].kafka_client_options()
    _exchange(settings, tmp_path)

    stranger = make_test_pki(tmp_path / "stranger", clients=("careplan",))
    _assert_refused(
        caplog,
        secure.broker,
        _mtls(secure, base, "careplan"),
        {
            "no client certificate": (
                {"kafka_ssl_certfile": None, "kafka_ssl_keyfile": None},
                "BAD_CERTIFICATE|CERTIFICATE_REQUIRED",
            ),
            "a certificate from another CA": (
                {
                    "kafka_ssl_certfile": stranger.clients["careplan"][0],
                    "kafka_ssl_keyfile": stranger.clients["careplan"][1],
                },
                "CERTIFICATE_UNKNOWN|BAD_CERTIFICATE|UNKNOWN_CA",
            ),
            "plaintext": ({"kafka_security_protocol": "PLAINTEXT"}, NOT_TLS),
        },
    )

    # The certificate's principal (CN=notes is User:notes) has notes' ACLs and no more: it
    # cannot forge careplan's events.
    producer = KafkaProducer(
        **_mtls(secure, base, "notes").kafka_client_options(), acks="all", max_block_ms=5_000
    )
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            producer.send(topics.CAREPLAN, key=b"pat-x", value=b"{}").get(10)
    finally:
        producer.close()
