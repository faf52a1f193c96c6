"""The development broker's `server.properties` (devtools.kafka.config) for each security mode.

tests/security/test_kafka_transport.py and test_kafka_attacks.py run these configurations on a
real broker; this pins what each mode writes, so a change shows here in a second."""

from __future__ import annotations

from pathlib import Path

import pytest

from iopcare.devtools.kafka import config
from iopcare.devtools.kafka.common import BrokerError
from iopcare.devtools.kafka.tls import BrokerTls


def _properties(**kwargs: object) -> dict[str, str]:
    text = config.server_properties(
        broker_port=9092,
        controller_port=9093,
        log_dirs=Path("/data/kraft"),
        max_message_bytes=1024,
        **kwargs,  # type: ignore[arg-type]
    )
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {key.strip(): value for key, value in pairs if not key.lstrip().startswith("#")}


TLS = BrokerTls(
    keystore=Path("/pki/broker.p12"), keystore_password="pw", ca_file=Path("/pki/ca.pem")
)
USERS = {"admin": "a", "careplan": "c"}


def test_the_open_broker_keeps_the_template_listeners() -> None:
    props = _properties(sasl_users=None)
    assert props["listener.security.protocol.map"] == "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    assert "ssl.keystore.location" not in props
    assert "authorizer.class.name" not in props


def test_sasl_without_tls_is_sasl_plaintext_with_the_authorizer() -> None:
    props = _properties(sasl_users=USERS)
    assert (
        props["listener.security.protocol.map"] == "CLIENT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT"
    )
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert "ssl.keystore.location" not in props


def test_sasl_with_tls_is_sasl_ssl_and_an_mtls_listener_requires_certificates() -> None:
    props = _properties(sasl_users=USERS, tls=TLS, mtls_port=9094)
    assert props["listeners"] == (
        "CLIENT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093,MTLS://127.0.0.1:9094"
    )
    assert props["listener.security.protocol.map"] == (
        "CLIENT:SASL_SSL,CONTROLLER:SASL_PLAINTEXT,MTLS:SSL"
    )
    assert props["ssl.client.auth"] == "none"  # SASL authenticates on the client port
    assert props["listener.name.mtls.ssl.client.auth"] == "required"
    assert props["ssl.keystore.type"] == "PKCS12"
    assert props["ssl.truststore.type"] == "PEM"
    assert props["ssl.truststore.location"] == "/pki/ca.pem"
    assert props["ssl.endpoint.identification.algorithm"] == "https"
    assert props["ssl.principal.mapping.rules"].startswith("RULE:^CN=")
    assert props["super.users"] == "User:admin"


def test_tls_alone_is_ssl_and_client_auth_is_required_when_asked() -> None:
    props = _properties(
        sasl_users=None,
        tls=BrokerTls(
            keystore=TLS.keystore, keystore_password="pw", ca_file=TLS.ca_file, client_auth=True
        ),
    )
    assert props["listener.security.protocol.map"] == "CLIENT:SSL,CONTROLLER:PLAINTEXT"
    assert props["ssl.client.auth"] == "required"


def test_a_keystore_password_that_would_break_the_file_is_refused() -> None:
    broken = BrokerTls(keystore=TLS.keystore, keystore_password="pw\nx=1", ca_file=TLS.ca_file)
    with pytest.raises(BrokerError, match="TLS passwords"):
        _properties(sasl_users=None, tls=broken)
