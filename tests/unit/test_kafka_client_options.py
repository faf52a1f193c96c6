"""`Settings.kafka_client_options`: the one place the Kafka security settings become kafka-python
options (relay, consumers, dead-letter producer, readiness check, topic creation), and its clear
refusals of an incomplete setting. tests/security/test_kafka_transport.py proves the options
against a real SASL_SSL / mTLS broker."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from iopcare.kit.settings import ConfigurationError, Settings


def _files(tmp_path: Path) -> dict[str, Path]:
    files = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key")}
    for path in files.values():
        path.write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "password").write_text("s3cret\n")
    return files


def test_sasl_ssl_with_a_password_file_and_mtls_files(tmp_path: Path) -> None:
    files = _files(tmp_path)
    settings = Settings(
        kafka_bootstrap_servers="kafka:9093",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="careplan",
        kafka_sasl_password_file=tmp_path / "password",
        kafka_ssl_cafile=files["ca"],
        kafka_ssl_certfile=files["cert"],
        kafka_ssl_keyfile=files["key"],
    )
    assert settings.kafka_client_options() == {
        "bootstrap_servers": "kafka:9093",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "careplan",
        "sasl_plain_password": "s3cret",
        "ssl_check_hostname": True,
        "ssl_cafile": str(files["ca"]),
        "ssl_certfile": str(files["cert"]),
        "ssl_keyfile": str(files["key"]),
    }


def test_the_environment_names_of_the_operations_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = _files(tmp_path)
    for name, value in {
        "IOPCARE_KAFKA_SECURITY_PROTOCOL": "SSL",
        "IOPCARE_KAFKA_SSL_CAFILE": str(files["ca"]),
        "IOPCARE_KAFKA_SSL_CERTFILE": str(files["cert"]),
        "IOPCARE_KAFKA_SSL_KEYFILE": str(files["key"]),
    }.items():
        monkeypatch.setenv(name, value)
    options = Settings().kafka_client_options()
    assert options["security_protocol"] == "SSL"
    assert options["ssl_certfile"] == str(files["cert"])
    assert "sasl_plain_username" not in options  # SSL alone: the certificate is the identity


def test_plaintext_carries_no_security_options() -> None:
    options = Settings(kafka_security_protocol="PLAINTEXT").kafka_client_options()
    assert set(options) == {"bootstrap_servers", "security_protocol"}


@pytest.mark.parametrize(
    ("update", "named"),
    [
        ({"kafka_security_protocol": "SASL_SSL"}, "IOPCARE_KAFKA_SASL_USERNAME"),
        (
            {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_username": "careplan"},
            "IOPCARE_KAFKA_SASL_PASSWORD",
        ),
        (
            {
                "kafka_security_protocol": "SASL_PLAINTEXT",
                "kafka_sasl_username": "careplan",
                "kafka_sasl_password_file": Path("/nonexistent/password"),
            },
            "IOPCARE_KAFKA_SASL_PASSWORD_FILE=/nonexistent/password cannot be read",
        ),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_certfile": Path("/tmp")},
            "IOPCARE_KAFKA_SSL_CERTFILE and IOPCARE_KAFKA_SSL_KEYFILE come together",
        ),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_cafile": Path("/nonexistent/ca.pem")},
            "IOPCARE_KAFKA_SSL_CAFILE=/nonexistent/ca.pem is not a readable file",
        ),
    ],
)
def test_an_incomplete_security_setting_is_refused_by_name(
    update: dict[str, object], named: str
) -> None:
    settings = Settings(**update)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=named):
        settings.kafka_client_options()


def test_an_inline_password_is_accepted_instead_of_a_file() -> None:
    settings = Settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_username="notes",
        kafka_sasl_password=SecretStr("pw"),
    )
    assert settings.kafka_client_options()["sasl_plain_password"] == "pw"


# -- no TLS outside development mode (review of issue 10) -----------------------------------------
@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SASL_PLAINTEXT"])
@pytest.mark.parametrize(
    "servers", ["kafka:9092", "127.0.0.1:9092,kafka-2:9092", "10.0.0.5:9092", "[2001:db8::1]:9092"]
)
def test_outside_development_mode_a_remote_broker_without_tls_is_refused(
    protocol: str, servers: str
) -> None:
    settings = Settings(
        dev_mode=False,
        kafka_bootstrap_servers=servers,
        kafka_security_protocol=protocol,  # type: ignore[arg-type]
        kafka_sasl_username="careplan",
        kafka_sasl_password=SecretStr("pw"),
    )
    with pytest.raises(ConfigurationError, match=f"IOPCARE_KAFKA_SECURITY_PROTOCOL={protocol}"):
        settings.kafka_client_options()
    # The same in development mode is the developer's choice.
    assert settings.model_copy(update={"dev_mode": True}).kafka_client_options()


@pytest.mark.parametrize(
    "servers", ["127.0.0.1:9092", "localhost:9092,127.0.0.2:9093", "[::1]:9092", "LOCALHOST"]
)
def test_outside_development_mode_a_loopback_broker_may_be_plaintext(servers: str) -> None:
    settings = Settings(
        dev_mode=False, kafka_bootstrap_servers=servers, kafka_security_protocol="PLAINTEXT"
    )
    assert settings.kafka_client_options()["bootstrap_servers"] == servers


def test_outside_development_mode_tls_to_a_remote_broker_is_accepted() -> None:
    settings = Settings(
        dev_mode=False, kafka_bootstrap_servers="kafka:9093", kafka_security_protocol="SSL"
    )
    assert settings.kafka_client_options()["security_protocol"] == "SSL"


@pytest.mark.parametrize("dev_mode", [True, False])
def test_sasl_plain_without_tls_is_always_refused(dev_mode: bool) -> None:
    settings = Settings(
        dev_mode=dev_mode,
        kafka_bootstrap_servers="127.0.0.1:9092",
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="careplan",
        kafka_sasl_password=SecretStr("pw"),
    )
    with pytest.raises(ConfigurationError, match="IOPCARE_KAFKA_SASL_MECHANISM=PLAIN"):
        settings.kafka_client_options()
    # PLAIN under TLS is fine: the password travels encrypted.
    tls = settings.model_copy(update={"kafka_security_protocol": "SASL_SSL"})
    assert tls.kafka_client_options()["sasl_mechanism"] == "PLAIN"
