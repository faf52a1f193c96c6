"""Keycloak as the hospital's identity provider, end to end (issue 15, item 1).

Keycloak comes from its distribution on Maven Central (`iopcare.devtools.keycloak`, downloaded
into .cache/keycloak on first use, as `make keycloak` does) and runs as a real server. A
confidential client authenticates to it with a signed JWT (`client-jwt`, RS384), gets an access
token carrying SMART scopes (Keycloak client scopes) and the gateway's audience, and uses the
gateway and, through it, the services. A token from an issuer the gateway does not trust and a
token signed with a key Keycloak rotated out are refused; so is a replayed client assertion.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from iopcare.devtools.keycloak import Keycloak
from iopcare.kit.settings import TrustedIssuer
from tests.support import harness
from tests.support.gateway import FHIR_JSON, SERVICE_NAMES, Stack, running_stack
from tests.support.smart import KeyPair, assertion, jwks, token_request

REALM = "hospital"
UNTRUSTED_REALM = "elsewhere"
CLIENT_ID = "hospital-ehr"
AUDIENCE = "iopcare"
SCOPES = ("system/Patient.cruds", "system/CarePlan.read", "system/CarePlan.rs")
KEY_PROVIDER = "org.keycloak.keys.KeyProvider"
#: Keycloak starts in 30 to 90 s on a quiet machine; far longer on a loaded one (the first start
#: also builds its configuration).
START_TIMEOUT = 900.0


def key_provider(name: str, priority: int) -> dict[str, Any]:
    return {
        "name": name,
        "providerId": "rsa-generated",
        "config": {
            "priority": [str(priority)],
            "algorithm": ["RS384"],
            "keySize": ["2048"],
            "active": ["true"],
            "enabled": ["true"],
        },
    }


def realm(name: str, client_key: KeyPair) -> dict[str, Any]:
    """A realm with one confidential client that authenticates with a signed JWT."""
    return {
        "realm": name,
        "enabled": True,
        "accessTokenLifespan": 300,
        "defaultSignatureAlgorithm": "RS384",
        "components": {KEY_PROVIDER: [key_provider("rs384-first", 100)]},
        "clientScopes": [
            {
                "name": scope,
                "protocol": "openid-connect",
                "attributes": {
                    "include.in.token.scope": "true",
                    "display.on.consent.screen": "false",
                },
            }
            for scope in SCOPES
        ],
        "clients": [
            {
                "clientId": CLIENT_ID,
                "enabled": True,
                "publicClient": False,
                "serviceAccountsEnabled": True,
                "standardFlowEnabled": False,
                "directAccessGrantsEnabled": False,
                "clientAuthenticatorType": "client-jwt",
                "attributes": {
                    "use.jwks.string": "true",
                    "jwks.string": json.dumps(jwks(client_key)),
                    "token.endpoint.auth.signing.alg": "RS384",
                    "access.token.signed.response.alg": "RS384",
                },
                "defaultClientScopes": [],
                "optionalClientScopes": list(SCOPES),
                "protocolMappers": [
                    {
                        "name": "iopcare-audience",
                        "protocol": "openid-connect",
                        "protocolMapper": "oidc-audience-mapper",
                        "config": {
                            "included.custom.audience": AUDIENCE,
                            "access.token.claim": "true",
                            "id.token.claim": "false",
                        },
                    }
                ],
            }
        ],
    }


@pytest.fixture(scope="module")
def client_key() -> KeyPair:
    return KeyPair.new("RS384")


@pytest.fixture(scope="module")
def keycloak(tmp_path_factory: pytest.TempPathFactory, client_key: KeyPair) -> Iterator[Keycloak]:
    server = Keycloak(
        realm(REALM, client_key), tmp_path_factory.mktemp("keycloak"), start_timeout=START_TIMEOUT
    )
    server.start()
    try:
        server.create_realm(realm(UNTRUSTED_REALM, client_key))
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str, keycloak: Keycloak
) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("smart-keycloak")
    settings = harness.settings_for(
        folder, kafka_bootstrap, harness.isolated_topics(kafka_bootstrap)
    ).model_copy(
        update={
            "token_trusted_issuers": [
                TrustedIssuer(
                    issuer=keycloak.issuer,
                    jwks_url=keycloak.jwks_uri,
                    audience=AUDIENCE,
                    token_endpoint=keycloak.token_endpoint,
                )
            ],
            "token_jwks_refetch_seconds": 0.5,
        }
    )
    urls = {name: f"sqlite:///{folder / name}.db" for name in SERVICE_NAMES}
    with running_stack(settings, urls) as running:
        yield running


def realm_url(keycloak: Keycloak, name: str) -> str:
    return f"{keycloak.base_url}/realms/{name}/protocol/openid-connect/token"


def keycloak_token(
    keycloak: Keycloak, client_key: KeyPair, realm_name: str = REALM, scope: str | None = None
) -> str:
    endpoint = realm_url(keycloak, realm_name)
    response = token_request(
        endpoint,
        assertion(client_key, CLIENT_ID, endpoint, lifetime=120),
        scope or " ".join(SCOPES),
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def create_patient(stack: Stack, token: str) -> httpx.Response:
    with stack.client(token) as client:
        return client.post(
            "/Patient",
            json={
                "resourceType": "Patient",
                "identifier": [
                    {"system": "urn:oid:2.16.840.1.113883.19.5", "value": uuid.uuid4().hex}
                ],
                "name": [{"family": "Mensah"}],
            },
            headers={"Content-Type": FHIR_JSON},
        )


def test_a_keycloak_token_from_a_signed_jwt_assertion_is_accepted(
    stack: Stack, keycloak: Keycloak, client_key: KeyPair
) -> None:
    import jwt

    token = keycloak_token(keycloak, client_key)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["iss"] == keycloak.issuer
    assert AUDIENCE in (claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]])
    assert set(SCOPES) <= set(claims["scope"].split())
    assert jwt.get_unverified_header(token)["alg"] == "RS384"
    created = create_patient(stack, token)
    assert created.status_code == 201, created.text
    with stack.client(token) as client:
        read = client.get(f"/Patient/{created.json()['id']}")
        plans = client.get("/CarePlan", params={"subject": f"Patient/{created.json()['id']}"})
    assert read.status_code == 200, read.text
    assert plans.status_code == 200, plans.text
    audited = [r for r in stack.audit if r["subject"] == f"{CLIENT_ID}@{keycloak.issuer}"]
    assert audited and all(r["outcome"] == "success" for r in audited)


def test_scopes_keycloak_did_not_grant_stay_closed(
    stack: Stack, keycloak: Keycloak, client_key: KeyPair
) -> None:
    token = keycloak_token(keycloak, client_key, scope="system/CarePlan.read")
    assert create_patient(stack, token).status_code == 403


def test_a_token_from_an_issuer_the_gateway_does_not_trust_is_refused(
    stack: Stack, keycloak: Keycloak, client_key: KeyPair
) -> None:
    token = keycloak_token(keycloak, client_key, realm_name=UNTRUSTED_REALM)
    response = create_patient(stack, token)
    assert response.status_code == 401, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    assert "issuer is not trusted" in response.json()["issue"][0]["diagnostics"]
    assert stack.audit[-1]["outcome"] == "refused"


def test_a_replayed_client_assertion_is_refused_by_keycloak(
    keycloak: Keycloak, client_key: KeyPair
) -> None:
    endpoint = realm_url(keycloak, REALM)
    signed = assertion(client_key, CLIENT_ID, endpoint, lifetime=120)
    assert token_request(endpoint, signed, SCOPES[0]).status_code == 200
    again = token_request(endpoint, signed, SCOPES[0])
    assert again.status_code in (400, 401)
    assert again.json()["error"] in ("invalid_client", "unauthorized_client")


def test_a_key_keycloak_rotated_out_is_refused_and_the_new_key_accepted(
    stack: Stack, keycloak: Keycloak, client_key: KeyPair
) -> None:
    assert create_patient(stack, keycloak_token(keycloak, client_key)).status_code == 201
    # Issued under the first key, not yet seen by the gateway.
    old = keycloak_token(keycloak, client_key)
    realm_id = keycloak.admin("GET", f"/admin/realms/{REALM}")["id"]
    providers = keycloak.admin(
        "GET", f"/admin/realms/{REALM}/components?type={KEY_PROVIDER}&name=rs384-first"
    )
    (first,) = [p for p in providers if p["name"] == "rs384-first"]
    keycloak.admin(
        "POST",
        f"/admin/realms/{REALM}/components",
        {**key_provider("rs384-second", 200), "parentId": realm_id, "providerType": KEY_PROVIDER},
    )
    keycloak.admin("DELETE", f"/admin/realms/{REALM}/components/{first['id']}")
    time.sleep(0.6)  # past the gateway's least interval between two JWKS fetches
    new = keycloak_token(keycloak, client_key)
    import jwt

    assert jwt.get_unverified_header(new)["kid"] != jwt.get_unverified_header(old)["kid"]
    assert create_patient(stack, new).status_code == 201
    refused = create_patient(stack, old)
    assert refused.status_code == 401, refused.text
    assert "signing key" in refused.json()["issue"][0]["diagnostics"]


def test_the_smart_configuration_points_at_the_gateways_own_token_endpoint(
    stack: Stack,
) -> None:
    with stack.client() as client:
        document = client.get("/.well-known/smart-configuration").json()
    assert document["token_endpoint"].endswith("/auth/token")
    assert document["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
