"""SMART Backend Services at the gateway (issue 15, item 1): discovery, the embedded
authorization server (private_key_jwt client_credentials) and tokens of a trusted external
issuer whose keys are fetched from its JWKS over HTTP, at the gateway and at the services."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.gateway.authserver import AuthorizationServer, ClientStore, OAuthError
from iopcare.kit.rpc import bearer
from iopcare.kit.settings import TrustedIssuer
from tests.support import harness
from tests.support.gateway import FHIR_JSON, SERVICE_NAMES, Stack, running_stack
from tests.support.smart import (
    JwksServer,
    KeyPair,
    assertion,
    jwks,
    serving_jwks,
    token_request,
)

EXTERNAL_ISSUER = "https://idp.hospital.test/realms/ehr"
AUDIENCE = "iopcare"


@pytest.fixture(scope="module")
def idp_keys() -> dict[str, KeyPair]:
    return {"k1": KeyPair.new("RS384", "k1"), "k2": KeyPair.new("RS384", "k2")}


@pytest.fixture(scope="module")
def idp(idp_keys: dict[str, KeyPair]) -> Iterator[JwksServer]:
    with serving_jwks(jwks(idp_keys["k1"])) as server:
        yield server


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str, idp: JwksServer
) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("smart")
    settings = harness.settings_for(
        folder, kafka_bootstrap, harness.isolated_topics(kafka_bootstrap)
    ).model_copy(
        update={
            "token_trusted_issuers": [
                TrustedIssuer(issuer=EXTERNAL_ISSUER, jwks_url=idp.url, audience=AUDIENCE)
            ],
            "token_jwks_refetch_seconds": 0.5,
        }
    )
    urls = {name: f"sqlite:///{folder / name}.db" for name in SERVICE_NAMES}
    with running_stack(settings, urls) as running:
        yield running


def root(stack: Stack) -> str:
    return stack.base_url.removesuffix("/fhir")


def token_url(stack: Stack) -> str:
    return f"{root(stack)}/auth/token"


def register(stack: Stack, key: KeyPair, scopes: list[str], **kwargs: Any) -> str:
    store = ClientStore(stack.settings.auth_server_db_path)
    if "jwks_url" not in kwargs:
        kwargs["jwks"] = jwks(key)
    return store.register(scopes, **kwargs).client_id


def external_token(
    key: KeyPair,
    *,
    issuer: str = EXTERNAL_ISSUER,
    audience: str = AUDIENCE,
    scope: str = "system/Patient.cruds system/CarePlan.rs",
    lifetime: int = 300,
    **extra: Any,
) -> str:
    now = int(time.time())
    return key.sign(
        {
            "iss": issuer,
            "aud": audience,
            "sub": "service-account-ehr",
            "azp": "hospital-ehr",
            "iat": now,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
            "scope": scope,
            **extra,
        }
    )


def create_patient(stack: Stack, token: str) -> Any:
    with stack.client(token) as client:
        return client.post(
            "/Patient",
            json={
                "resourceType": "Patient",
                "identifier": [
                    {"system": "urn:oid:2.16.840.1.113883.19.5", "value": uuid.uuid4().hex}
                ],
                "name": [{"family": "Okafor"}],
            },
            headers={"Content-Type": FHIR_JSON},
        )


# -- discovery ------------------------------------------------------------------------------


def test_smart_configuration_is_served_without_a_token(stack: Stack) -> None:
    with stack.client() as client:
        response = client.get("/.well-known/smart-configuration")
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["token_endpoint"] == token_url(stack)
    assert document["jwks_uri"] == f"{root(stack)}/auth/jwks"
    assert document["issuer"] == stack.settings.token_issuer
    assert document["grant_types_supported"] == ["client_credentials"]
    assert document["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert set(document["token_endpoint_auth_signing_alg_values_supported"]) == {
        "RS384",
        "ES384",
    }
    assert "client-confidential-asymmetric" in document["capabilities"]
    assert "system/CarePlan.rs" in document["scopes_supported"]
    assert response.headers["cache-control"] == "no-store"


def test_the_published_jwks_verifies_the_tokens_the_server_issues(stack: Stack) -> None:
    import jwt

    key = KeyPair.new("ES384")
    client_id = register(stack, key, ["system/Patient.rs"])
    response = token_request(
        token_url(stack), assertion(key, client_id, token_url(stack)), "system/Patient.rs"
    )
    assert response.status_code == 200, response.text
    with stack.client() as client:
        published = client.get(f"{root(stack)}/auth/jwks").json()
    (entry,) = published["keys"]
    claims = jwt.decode(
        response.json()["access_token"],
        jwt.PyJWK(entry).key,
        algorithms=["ES384"],
        audience=stack.settings.token_audience,
    )
    assert claims["sub"] == client_id and claims["role"] == "system"


# -- the embedded authorization server ------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["ES384", "RS384"])
def test_a_registered_client_gets_a_token_for_its_scopes_and_uses_the_gateway(
    stack: Stack, algorithm: str
) -> None:
    key = KeyPair.new(algorithm)
    client_id = register(stack, key, ["system/Patient.cruds", "system/CarePlan.rs"])
    response = token_request(
        token_url(stack),
        assertion(key, client_id, token_url(stack)),
        "system/Patient.cruds system/Goal.cruds",
    )
    assert response.status_code == 200, response.text
    body = response.json()
    # Only the registered scopes among those asked for (Goal was not registered).
    assert body["scope"] == "system/Patient.cruds"
    assert body["token_type"] == "bearer"
    assert 0 < body["expires_in"] <= 300
    assert response.headers["cache-control"] == "no-store"
    created = create_patient(stack, body["access_token"])
    assert created.status_code == 201, created.text
    with stack.client(body["access_token"]) as client:
        read = client.get(f"/Patient/{created.json()['id']}")
        # A type the token was not granted stays closed.
        goals = client.get("/Goal")
    assert read.status_code == 200
    assert goals.status_code == 403, goals.text
    audited = [r for r in stack.audit if r["path"] == "/auth/token" and r["subject"] == client_id]
    assert audited and audited[-1]["outcome"] == "success"


def test_a_client_registered_with_a_jwks_url_is_verified_against_it(stack: Stack) -> None:
    key = KeyPair.new("RS384")
    with serving_jwks(jwks(key)) as client_keys:
        client_id = register(stack, key, ["system/Patient.rs"], jwks_url=client_keys.url)
        response = token_request(
            token_url(stack), assertion(key, client_id, token_url(stack)), "system/Patient.rs"
        )
    assert response.status_code == 200, response.text
    assert client_keys.requests >= 1


def test_a_replayed_assertion_is_refused(stack: Stack) -> None:
    key = KeyPair.new("ES384")
    client_id = register(stack, key, ["system/Patient.rs"])
    signed = assertion(key, client_id, token_url(stack))
    first = token_request(token_url(stack), signed, "system/Patient.rs")
    again = token_request(token_url(stack), signed, "system/Patient.rs")
    assert first.status_code == 200, first.text
    assert again.status_code == 401
    assert again.json()["error"] == "invalid_client"
    assert "replay" in again.json()["error_description"]
    refused = [r for r in stack.audit if r["path"] == "/auth/token" and r["outcome"] == "refused"]
    assert any("replay" in r["detail"] for r in refused)


def test_a_replay_is_refused_after_a_restart_of_the_authorization_server(
    stack: Stack, tmp_path: Path
) -> None:
    settings = stack.settings.model_copy(update={"data_dir": tmp_path})
    key = KeyPair.new("ES384")
    endpoint = "https://iopcare.test/auth/token"
    client_id = (
        ClientStore(settings.auth_server_db_path)
        .register(["system/Patient.rs"], jwks=jwks(key))
        .client_id
    )
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion(key, client_id, endpoint),
        "scope": "system/Patient.rs",
    }
    AuthorizationServer(settings).token(form, endpoint)
    # A new server (a restarted gateway) on the same store.
    with pytest.raises(OAuthError) as refused:
        AuthorizationServer(settings).token(form, endpoint)
    assert refused.value.error == "invalid_client"
    assert settings.auth_server_db_path.stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"audience": "https://elsewhere.test/auth/token"}, "invalid_client"),
        ({"lifetime": 900}, "invalid_client"),
        ({"lifetime": -120}, "invalid_client"),
        ({"sub": "someone-else"}, "invalid_client"),
        ({"scope": "system/Goal.rs"}, "invalid_scope"),
        ({"grant_type": "password"}, "unsupported_grant_type"),
        ({"client_assertion_type": "urn:other"}, "invalid_request"),
        ({"scope": ""}, "invalid_request"),
        ({"other_key": True}, "invalid_client"),
        ({"unknown_client": True}, "invalid_client"),
    ],
)
def test_bad_token_requests_get_oauth_errors(
    stack: Stack, change: dict[str, Any], error: str
) -> None:
    key = KeyPair.new("ES384")
    client_id = register(stack, key, ["system/Patient.rs"])
    signer = KeyPair.new("ES384", key.kid) if change.get("other_key") else key
    issuer = "not-registered" if change.get("unknown_client") else client_id
    extra = {"sub": change["sub"]} if "sub" in change else {}
    signed = assertion(
        signer,
        issuer,
        change.get("audience", token_url(stack)),
        lifetime=change.get("lifetime", 240),
    )
    if extra:
        signed = assertion(signer, issuer, token_url(stack), **extra)
    overrides = {k: change[k] for k in ("grant_type", "client_assertion_type") if k in change}
    response = token_request(
        token_url(stack), signed, change.get("scope", "system/Patient.rs"), **overrides
    )
    assert response.status_code in (400, 401), response.text
    assert response.json()["error"] == error
    assert "access_token" not in response.json()


def test_a_form_body_is_required(stack: Stack) -> None:
    import httpx

    response = httpx.post(token_url(stack), json={"grant_type": "client_credentials"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_the_cli_registers_a_client(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    import json

    from iopcare import cli

    key = KeyPair.new("RS384")
    jwks_file = tmp_path / "client.jwks"
    jwks_file.write_text(json.dumps(jwks(key)))
    monkeypatch.setenv("IOPCARE_DATA_DIR", str(stack.settings.data_dir))
    code = cli.main(
        ["client", "register", "--jwks-file", str(jwks_file), "--scope", "system/Patient.rs"]
    )
    assert code == 0
    client_id = capsys.readouterr().out.strip()
    response = token_request(
        token_url(stack), assertion(key, client_id, token_url(stack)), "system/Patient.rs"
    )
    assert response.status_code == 200, response.text
    assert cli.main(["client", "register", "--jwks-file", str(jwks_file), "--scope", "x"]) == 2
    with serving_jwks(jwks(key)) as served:
        url_args = ["client", "register", "--jwks-url", served.url, "--scope", "system/*.rs"]
        assert cli.main(url_args) == 0
        assert served.requests == 1  # checked at registration
    with serving_jwks({"keys": []}) as empty:
        assert (
            cli.main(["client", "register", "--jwks-url", empty.url, "--scope", "system/*.rs"]) == 2
        )


# -- a trusted external issuer ----------------------------------------------------------------


def test_a_token_of_a_trusted_issuer_is_accepted_at_the_gateway_and_the_services(
    stack: Stack, idp_keys: dict[str, KeyPair]
) -> None:
    token = external_token(idp_keys["k1"])
    created = create_patient(stack, token)
    assert created.status_code == 201, created.text
    # The services verify the same token themselves (kit.auth is shared).
    with harness.channel(stack.runtimes["careplan"]) as channel:
        patient = pb_grpc.CarePlanServiceStub(channel).GetPatient(
            pb.GetPatientRequest(id=created.json()["id"]), metadata=bearer(token)
        )
    assert patient.patient.fhir_json
    audited = [r for r in stack.audit if r["subject"].endswith(f"@{EXTERNAL_ISSUER}")]
    assert audited and audited[-1]["outcome"] == "success"


def test_an_external_token_cannot_claim_a_role(stack: Stack, idp_keys: dict[str, KeyPair]) -> None:
    # The role comes from our configuration (system: worth exactly its scopes), not the token.
    token = external_token(
        idp_keys["k1"], scope="system/Patient.rs", role="admin", break_glass=True
    )
    assert create_patient(stack, token).status_code == 403


def test_the_launch_patient_of_an_external_token_limits_patient_scopes(
    stack: Stack, idp_keys: dict[str, KeyPair]
) -> None:
    writer = external_token(idp_keys["k1"])
    mine = create_patient(stack, writer).json()["id"]
    other = create_patient(stack, writer).json()["id"]
    token = external_token(idp_keys["k1"], scope="patient/Patient.rs", patient=mine)
    with stack.client(token) as client:
        assert client.get(f"/Patient/{mine}").status_code == 200
        assert client.get(f"/Patient/{other}").status_code in (403, 404)


@pytest.mark.parametrize(
    "kind", ["unknown issuer", "unknown kid", "wrong audience", "expired", "too long", "no kid"]
)
def test_bad_external_tokens_are_refused_and_audited(
    stack: Stack, idp_keys: dict[str, KeyPair], kind: str
) -> None:
    key = idp_keys["k1"]
    if kind == "unknown issuer":
        token = external_token(key, issuer="https://evil.test/realms/ehr")
    elif kind == "unknown kid":
        token = external_token(KeyPair.new("RS384", "forged"))
    elif kind == "wrong audience":
        token = external_token(key, audience="somebody-else")
    elif kind == "expired":
        now = int(time.time())
        token = external_token(key, iat=now - 900, exp=now - 600)
    elif kind == "too long":
        token = external_token(key, lifetime=86_400)
    else:
        import jwt

        now = int(time.time())
        token = jwt.encode(
            {"iss": EXTERNAL_ISSUER, "aud": AUDIENCE, "sub": "x", "iat": now, "exp": now + 60},
            key.private,
            algorithm="RS384",
        )
    path = f"/fhir/Patient/{uuid.uuid4().hex}"
    with stack.client(token) as client:
        response = client.get(path.removeprefix("/fhir"))
    assert response.status_code == 401, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "login"
    assert response.headers["www-authenticate"].startswith("Bearer")
    (record,) = [r for r in stack.audit if r["path"] == path]
    assert record["outcome"] == "refused" and record["status"] == 401
    # And at the services: UNAUTHENTICATED.
    with (
        harness.channel(stack.runtimes["careplan"]) as channel,
        pytest.raises(grpc.RpcError) as refused,
    ):
        pb_grpc.CarePlanServiceStub(channel).GetPatient(
            pb.GetPatientRequest(id="x"), metadata=bearer(token)
        )
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_key_rotation_at_the_issuer_is_followed_and_the_old_key_refused(
    stack: Stack, idp: JwksServer, idp_keys: dict[str, KeyPair]
) -> None:
    old_token = external_token(idp_keys["k1"], scope="system/Patient.rs")
    assert create_patient(stack, external_token(idp_keys["k1"])).status_code == 201
    # The issuer rotates: k2 signs from now on, k1 is withdrawn.
    idp.document = jwks(idp_keys["k2"])
    time.sleep(0.6)  # past the least interval between two fetches
    try:
        assert create_patient(stack, external_token(idp_keys["k2"])).status_code == 201
        with stack.client(old_token) as client:
            response = client.get("/Patient")
        assert response.status_code == 401, response.text
    finally:
        idp.document = jwks(idp_keys["k1"], idp_keys["k2"])
        time.sleep(0.6)


def test_unknown_kids_refetch_the_jwks_at_most_once_per_interval() -> None:
    from iopcare.kit.auth import JwksCache
    from iopcare.kit.errors import Unauthenticated

    key = KeyPair.new("ES384", "current")
    with serving_jwks(jwks(key)) as server:
        cache = JwksCache(server.url, max_age=300, min_refetch=60)
        assert cache.key("current").key_id == "current"
        for _ in range(20):
            with pytest.raises(Unauthenticated):
                cache.key(uuid.uuid4().hex)
        # A flood of forged kids made no further request to the identity provider.
        assert server.requests == 1
        rotated = KeyPair.new("ES384", "next")
        server.document = jwks(rotated)
        fresh = JwksCache(server.url, max_age=300, min_refetch=0)
        assert fresh.key("next").key_id == "next"
        with pytest.raises(Unauthenticated):
            fresh.key("current")


def test_a_token_signed_with_another_algorithm_than_its_keys_is_refused(
    stack: Stack, idp: JwksServer, idp_keys: dict[str, KeyPair]
) -> None:
    odd = KeyPair.new("RS384", "declared-rs512")
    published = odd.public_jwk()
    published["alg"] = "RS512"
    idp.document = {"keys": [*jwks(idp_keys["k1"], idp_keys["k2"])["keys"], published]}
    time.sleep(0.6)
    try:
        with stack.client(external_token(odd)) as client:
            response = client.get("/Patient")
        assert response.status_code == 401, response.text
        assert "algorithm" in response.json()["issue"][0]["diagnostics"]
    finally:
        idp.document = jwks(idp_keys["k1"], idp_keys["k2"])
        time.sleep(0.6)


def test_a_client_flooding_the_token_endpoint_gets_429_and_others_are_not_starved(
    stack: Stack,
) -> None:
    import socket
    from urllib.parse import urlsplit

    settings = stack.settings
    held = settings.auth_server_max_requests_per_client + settings.auth_server_max_queued_per_client
    address = urlsplit(root(stack))
    sockets = []
    try:
        # Requests whose bodies never finish: they hold (or wait for) this peer's places.
        for _ in range(held):
            sock = socket.create_connection((address.hostname, address.port), timeout=30)
            sock.sendall(
                b"POST /auth/token HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n"
                b"grant_type=client"
            )
            sockets.append(sock)
        time.sleep(1.0)
        key = KeyPair.new("ES384")
        client_id = register(stack, key, ["system/Patient.rs"])
        refused = token_request(
            token_url(stack), assertion(key, client_id, token_url(stack)), "system/Patient.rs"
        )
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"] == "temporarily_unavailable"
        assert int(refused.headers["retry-after"]) >= 1
    finally:
        for sock in sockets:
            sock.close()
    # The places come back once the stalled requests are gone.
    key = KeyPair.new("ES384")
    client_id = register(stack, key, ["system/Patient.rs"])

    def admitted() -> bool | None:
        response = token_request(
            token_url(stack), assertion(key, client_id, token_url(stack)), "system/Patient.rs"
        )
        return True if response.status_code == 200 else None

    assert harness.eventually(admitted, timeout=30, interval=0.5)
