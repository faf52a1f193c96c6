"""SMART pieces without I/O: JWKS parsing, trusted issuer settings, the discovery document."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from iopcare.gateway.smart import smart_configuration
from iopcare.kit.auth import parse_jwks
from iopcare.kit.settings import Settings, TrustedIssuer
from tests.support.smart import KeyPair, jwks


def test_parse_jwks_keeps_signature_keys_with_a_kid() -> None:
    rsa_key, ec_key = KeyPair.new("RS384", "r"), KeyPair.new("ES384", "e")
    document = jwks(rsa_key, ec_key)
    document["keys"].append({**rsa_key.public_jwk(), "kid": "enc", "use": "enc"})
    no_kid = ec_key.public_jwk()
    del no_kid["kid"]
    document["keys"].append(no_kid)
    document["keys"].append({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"})
    assert sorted(parse_jwks(document)) == ["e", "r"]


@pytest.mark.parametrize("document", [{}, {"keys": "x"}, [], "keys"])
def test_parse_jwks_refuses_what_is_not_a_jwks(document: object) -> None:
    with pytest.raises(ValueError):
        parse_jwks(document)


def test_an_external_issuer_cannot_be_given_the_internal_service_role() -> None:
    with pytest.raises(ValidationError):
        TrustedIssuer(issuer="https://idp.test", jwks_url="https://idp.test/jwks", role="service")


def test_trusted_issuers_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "IOPCARE_TOKEN_TRUSTED_ISSUERS",
        '[{"issuer": "https://idp.test/realms/a", "jwks_url": "https://idp.test/certs"}]',
    )
    (trusted,) = Settings().token_trusted_issuers
    assert trusted.issuer == "https://idp.test/realms/a"
    assert trusted.role == "system" and trusted.audience == ""


def test_discovery_names_the_embedded_server_or_the_external_one() -> None:
    embedded = smart_configuration(Settings(dev_mode=True), "https://ehr.test")
    assert embedded["token_endpoint"] == "https://ehr.test/auth/token"
    assert embedded["jwks_uri"] == "https://ehr.test/auth/jwks"
    assert embedded["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert embedded["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert embedded["grant_types_supported"] == ["client_credentials"]
    external = smart_configuration(
        Settings(
            auth_server_enabled=False,
            token_trusted_issuers=[
                TrustedIssuer(
                    issuer="https://idp.test/realms/a",
                    jwks_url="https://idp.test/certs",
                    token_endpoint="https://idp.test/token",
                )
            ],
        ),
        "https://ehr.test",
    )
    assert external["token_endpoint"] == "https://idp.test/token"
    assert external["issuer"] == "https://idp.test/realms/a"


def test_the_embedded_server_is_not_advertised_when_it_cannot_sign() -> None:
    # Outside development mode it signs only with a configured key.
    document = smart_configuration(Settings(dev_mode=False), "https://ehr.test")
    assert "token_endpoint" not in document
