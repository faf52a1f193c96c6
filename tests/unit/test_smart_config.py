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


def test_discovery_advertises_app_launch_for_an_issuer_with_an_authorization_endpoint() -> None:
    launch = TrustedIssuer(
        issuer="https://idp.test/realms/a",
        jwks_url="https://idp.test/certs",
        token_endpoint="https://idp.test/token",
        authorization_endpoint="https://idp.test/auth",
    )
    document = smart_configuration(
        Settings(dev_mode=True, token_trusted_issuers=[launch]), "https://ehr.test"
    )
    assert document["authorization_endpoint"] == "https://idp.test/auth"
    assert document["token_endpoint"] == "https://idp.test/token"
    assert document["issuer"] == "https://idp.test/realms/a"
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["grant_types_supported"] == ["authorization_code", "client_credentials"]
    assert {"launch-ehr", "context-ehr-patient", "client-public", "permission-v2"} <= set(
        document["capabilities"]
    )
    assert {"launch", "launch/patient", "openid", "fhirUser"} <= set(document["scopes_supported"])
    # The patient's daily check-in (issue 12): the form and their own answers.
    assert {"patient/Questionnaire.r", "patient/QuestionnaireResponse.cs"} <= set(
        document["scopes_supported"]
    )
    # Without one, nothing of App Launch is claimed.
    plain = smart_configuration(Settings(dev_mode=True), "https://ehr.test")
    assert "authorization_endpoint" not in plain
    assert "code_challenge_methods_supported" not in plain
    assert "launch-ehr" not in plain["capabilities"]


def _launch_token(settings: Settings, **context: object) -> str:
    import time

    import jwt

    from iopcare.kit import auth

    now = int(time.time())
    claims = {
        "iss": settings.token_issuer,
        "aud": settings.token_audience,
        "sub": "system:app",
        "iat": now,
        "exp": now + 60,
        "role": "system",
        "scope": "launch patient/CarePlan.rs",
        **context,
    }
    return jwt.encode(claims, auth.signing_key_path(settings).read_bytes(), algorithm="ES384")


def test_the_launch_context_is_read_from_the_token(tmp_path: object) -> None:
    from pathlib import Path

    from iopcare.kit.auth import TokenVerifier
    from iopcare.kit.errors import Unauthenticated

    settings = Settings(dev_mode=True, data_dir=Path(str(tmp_path)))
    verifier = TokenVerifier(settings)
    principal = verifier.verify(_launch_token(settings, patient="p-1", encounter="enc-9"))
    assert (principal.patient_context, principal.encounter_context) == ("p-1", "enc-9")
    # A relative reference names the same patient (some providers send it so).
    referenced = verifier.verify(_launch_token(settings, patient="Patient/p-1"))
    assert (referenced.patient_context, referenced.encounter_context) == ("p-1", None)
    # A context that is not a FHIR id is refused, never read as "no limit".
    for bad in ({"patient": ["p-1"]}, {"patient": "p 1/x"}, {"encounter": "Patient/p-1"}):
        with pytest.raises(Unauthenticated):
            verifier.verify(_launch_token(settings, **bad))
