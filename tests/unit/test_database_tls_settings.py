"""The database TLS settings (kit.settings.ServiceSettings, kit.db.with_tls): how they join the
URL, what is refused, and the refusal of an unprotected PostgreSQL URL outside development mode.
The connections themselves are tested against a TLS server in
tests/security/test_postgres_tls.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from iopcare.kit.db import tls_parameters, uses_tcp, with_tls
from iopcare.kit.settings import ConfigurationError, ServiceSettings, Settings

URL = "postgresql+psycopg://careplan@db.example:5432/careplan"


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\n")
    return path


def test_the_settings_are_added_to_the_url_as_libpq_parameters(ca: Path) -> None:
    service = ServiceSettings(
        database_url=URL, database_sslmode="verify-full", database_sslrootcert=ca
    )
    parsed = make_url(service.database_url)
    assert parsed.query == {"sslmode": "verify-full", "sslrootcert": str(ca)}
    assert (parsed.host, parsed.database, parsed.username) == ("db.example", "careplan", "careplan")
    assert tls_parameters(service.database_url) == {
        "sslmode": "verify-full",
        "sslrootcert": str(ca),
    }


def test_parameters_in_the_url_are_kept_and_may_be_repeated_with_the_same_value(ca: Path) -> None:
    url = f"{URL}?sslmode=verify-full&sslrootcert={ca}"
    assert ServiceSettings(database_url=url).database_url == url
    again = ServiceSettings(database_url=url, database_sslmode="verify-full")
    assert tls_parameters(again.database_url)["sslmode"] == "verify-full"


def test_a_setting_contradicting_the_url_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"sslmode=require.*verify-full"):
        ServiceSettings(database_url=f"{URL}?sslmode=require", database_sslmode="verify-full")


def test_a_missing_certificate_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="database_sslkey: no such file"):
        ServiceSettings(
            database_url=URL, database_sslmode="verify-full", database_sslkey=tmp_path / "k.pem"
        )
    # libpq's "system" stands for the operating system's roots, not a file.
    system = ServiceSettings(database_url=URL, database_sslrootcert=Path("system"))
    assert tls_parameters(system.database_url) == {"sslrootcert": "system"}


def test_tls_settings_without_a_postgresql_url_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="PostgreSQL only"):
        ServiceSettings(database_url=f"sqlite:///{tmp_path}/x.db", database_sslmode="require")
    with pytest.raises(ConfigurationError, match="DATABASE_URL is not"):
        ServiceSettings(database_sslmode="verify-full")


def test_an_unknown_parameter_is_a_programming_error() -> None:
    with pytest.raises(TypeError):
        with_tls(URL, sslcompression="1")


def test_outside_development_mode_a_tcp_url_without_sslmode_is_refused(
    monkeypatch: pytest.MonkeyPatch, ca: Path
) -> None:
    production = Settings(dev_mode=False)
    monkeypatch.setenv("IOPCARE_NOTES_DATABASE_URL", URL.replace("careplan", "notes"))
    with pytest.raises(ConfigurationError, match="IOPCARE_NOTES_DATABASE_SSLMODE=verify-full"):
        ServiceSettings.for_service("notes", production)
    # Development mode allows it (the tests' and `make run`'s local servers).
    assert ServiceSettings.for_service("notes", Settings(dev_mode=True)).database_url.endswith(
        "/notes"
    )
    monkeypatch.setenv("IOPCARE_NOTES_DATABASE_SSLMODE", "verify-full")
    monkeypatch.setenv("IOPCARE_NOTES_DATABASE_SSLROOTCERT", str(ca))
    tls = ServiceSettings.for_service("notes", production)
    assert tls_parameters(tls.database_url)["sslmode"] == "verify-full"
    # An explicit choice is the operator's (a sidecar or a socket protects the connection).
    monkeypatch.setenv("IOPCARE_NOTES_DATABASE_SSLMODE", "disable")
    monkeypatch.delenv("IOPCARE_NOTES_DATABASE_SSLROOTCERT")
    assert "sslmode=disable" in ServiceSettings.for_service("notes", production).database_url


@pytest.mark.parametrize("mode", ["allow", "prefer"])
def test_outside_development_mode_a_mode_that_may_fall_back_to_plaintext_is_refused(
    monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    production = Settings(dev_mode=False)
    monkeypatch.setenv("IOPCARE_NOTES_DATABASE_URL", URL.replace("careplan", "notes"))
    monkeypatch.setenv("IOPCARE_NOTES_DATABASE_SSLMODE", mode)
    with pytest.raises(ConfigurationError, match=f"sslmode={mode}.*IOPCARE_NOTES_DATABASE_SSLMODE"):
        ServiceSettings.for_service("notes", production)
    # The same in the URL itself.
    monkeypatch.delenv("IOPCARE_NOTES_DATABASE_SSLMODE")
    monkeypatch.setenv("IOPCARE_NOTES_DATABASE_URL", URL + f"?sslmode={mode}")
    with pytest.raises(ConfigurationError, match=f"sslmode={mode}"):
        ServiceSettings.for_service("notes", production)
    # Development mode allows it.
    assert ServiceSettings.for_service("notes", Settings(dev_mode=True))


@pytest.mark.parametrize("mode", ["disable", "require", "verify-ca", "verify-full"])
def test_outside_development_mode_the_documented_modes_are_accepted(
    monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.setenv("IOPCARE_NOTES_DATABASE_URL", URL + f"?sslmode={mode}")
    loaded = ServiceSettings.for_service("notes", Settings(dev_mode=False))
    assert tls_parameters(loaded.database_url)["sslmode"] == mode


def test_sockets_and_sqlite_need_no_tls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    production = Settings(dev_mode=False, data_dir=tmp_path)
    assert not uses_tcp("postgresql+psycopg://careplan@/careplan?host=/run/postgresql")
    assert not uses_tcp("postgresql+psycopg://careplan@/careplan")
    assert uses_tcp(URL)
    assert uses_tcp("postgresql+psycopg://careplan@/careplan?host=db.example")
    monkeypatch.setenv(
        "IOPCARE_CAREPLAN_DATABASE_URL",
        "postgresql+psycopg://careplan@/careplan?host=/run/postgresql",
    )
    ServiceSettings.for_service("careplan", production)
    monkeypatch.delenv("IOPCARE_CAREPLAN_DATABASE_URL")
    assert ServiceSettings.for_service("careplan", production).database_url.startswith("sqlite")
