"""SMART App Launch (EHR launch, authorization code with PKCE) against a real Keycloak (issue 15,
item 1).

The realm (`iopcare.devtools.keycloak.smart_launch_realm`) holds a public SMART app client that
must use PKCE with S256, a clinician who is on the patient's care team, the SMART scopes, and the
launch context as token claims. The test plays the EHR (it records the launch context for the
clinician, `Keycloak.set_launch_context`), the browser (it fetches Keycloak's login form and posts
the credentials) and the app (it exchanges the code with its verifier and reads the patient's
plan through the gateway). Everything goes over HTTP to the real Keycloak and the real gateway
and services.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx
import jwt
import pytest

from iopcare.devtools.keycloak import Keycloak, KeycloakError, public_client, smart_launch_realm
from iopcare.kit.auth import TokenVerifier
from iopcare.kit.settings import TrustedIssuer
from tests.support import harness
from tests.support.gateway import (
    FHIR_JSON,
    SERVICE_NAMES,
    Stack,
    enrol_team,
    running_stack,
    system_token,
)
from tests.support.plans import iop_plan

REALM = "hospital-launch"
CLIENT_ID = "iop-plan-viewer"
REDIRECT_URI = "http://127.0.0.1:9/smart-app/callback"
AUDIENCE = "iopcare"
RESOURCE_SCOPES = ("patient/CarePlan.rs", "patient/Patient.rs")
SCOPE = " ".join(("openid", "fhirUser", "launch", "launch/patient", *RESOURCE_SCOPES))
POLICY_ONLY_CLIENT = "policy-only-app"
CLINICIAN = "dr-psy"
#: On every test patient's care team (tests.support.plans.care_team).
PRACTITIONER = "psy-1"
START_TIMEOUT = 900.0


@dataclass
class Launch:
    keycloak: Keycloak
    stack: Stack
    user_id: str
    password: str
    patient: str
    other: str
    plans: dict[str, str]


@pytest.fixture(scope="module")
def keycloak(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keycloak]:
    if shutil.which("java") is None:
        harness.missing("Java is not installed, so Keycloak cannot run")
    realm = smart_launch_realm(
        REALM,
        client_id=CLIENT_ID,
        redirect_uri=REDIRECT_URI,
        audience=AUDIENCE,
        resource_scopes=RESOURCE_SCOPES,
    )
    server = Keycloak(
        realm, tmp_path_factory.mktemp("keycloak-launch"), start_timeout=START_TIMEOUT
    )
    server.start()
    try:
        server.admit_admin_attributes(REALM)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def launch(
    tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str, keycloak: Keycloak
) -> Iterator[Launch]:
    folder = tmp_path_factory.mktemp("smart-launch")
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
                    authorization_endpoint=keycloak.authorization_endpoint,
                )
            ]
        }
    )
    urls = {name: f"sqlite:///{folder / name}.db" for name in SERVICE_NAMES}
    with running_stack(settings, urls) as stack:
        plans: dict[str, str] = {}
        with stack.client(system_token(settings)) as ehr:
            for _ in range(2):
                created = ehr.post(
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
                assert created.status_code == 201, created.text
                patient = str(created.json()["id"])
                team = enrol_team(stack, patient)
                plan = ehr.post(
                    "/CarePlan",
                    json=iop_plan(patient, str(team["id"])),
                    headers={"Content-Type": FHIR_JSON},
                )
                assert plan.status_code == 201, plan.text
                plans[patient] = str(plan.json()["id"])
        patient, other = list(plans)
        password = secrets.token_urlsafe(12)
        user_id = keycloak.create_user(
            REALM, CLINICIAN, password, {"fhirUser": f"Practitioner/{PRACTITIONER}"}
        )
        yield Launch(keycloak, stack, user_id, password, patient, other, plans)


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def cookies(browser: httpx.Client) -> dict[str, str]:
    """The browser's Cookie header. Keycloak marks its login cookies `Secure`; a browser sends
    them to http://127.0.0.1 (a potentially trustworthy origin), Python's cookie jar does not,
    so the test sends what the jar holds itself."""
    jar = "; ".join(f"{c.name}={c.value}" for c in browser.cookies.jar)
    return {"Cookie": jar} if jar else {}


def browse(browser: httpx.Client, response: httpx.Response) -> httpx.Response:
    """Follows Keycloak's own redirects; stops at the app's redirect URI (never fetched)."""
    while response.is_redirect:
        location = urljoin(str(response.url), response.headers["location"])
        if location.startswith(REDIRECT_URI):
            return response
        response = browser.get(location, headers=cookies(browser))
    return response


def authorize(ctx: Launch, browser: httpx.Client, **params: str) -> httpx.Response:
    """GET the authorization endpoint as the app's browser; Keycloak's answer after its own
    redirects (the login form, or a redirect to the app)."""
    query = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": SCOPE,
        "state": secrets.token_urlsafe(12),
        "aud": ctx.stack.base_url,
        **params,
    }
    query = {k: v for k, v in query.items() if v}
    url = f"{ctx.keycloak.authorization_endpoint}?{urlencode(query)}"
    return browse(browser, browser.get(url, headers=cookies(browser)))


def _text(page: httpx.Response) -> str:
    """A Keycloak page's visible text, for a failure's message."""
    return re.sub(r"\s+", " ", re.sub(r"(?s)<script.*?</script>|<[^>]+>", " ", page.text))[:1500]


def log_in(launch: Launch, browser: httpx.Client, form_page: httpx.Response) -> dict[str, str]:
    """Posts the clinician's credentials to the login form; the redirect's query parameters."""
    assert form_page.status_code == 200, form_page.text[:500]
    match = re.search(r'<form[^>]*id="kc-form-login"[^>]*action="([^"]+)"', form_page.text)
    if match is None:
        match = re.search(r'action="([^"]*login-actions/authenticate[^"]*)"', form_page.text)
    assert match is not None, form_page.text[:2000]
    answer = browse(
        browser,
        browser.post(
            html.unescape(match.group(1)),
            data={"username": CLINICIAN, "password": launch.password, "credentialId": ""},
            headers=cookies(browser),
        ),
    )
    assert answer.is_redirect, _text(answer)
    location = answer.headers["location"]
    assert location.startswith(REDIRECT_URI), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def exchange(code: str, verifier: str | None, keycloak: Keycloak) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "client_id": CLIENT_ID,
    }
    if verifier is not None:
        form["code_verifier"] = verifier
    return httpx.post(keycloak.token_endpoint, data=form, timeout=60)


def ehr_launch(launch: Launch, encounter: str = "enc-1") -> tuple[str, str]:
    """The EHR records the launch; the app is launched with its id and asks for a code with a
    PKCE challenge. The code and the verifier."""
    launch_id = uuid.uuid4().hex
    launch.keycloak.set_launch_context(
        REALM,
        launch.user_id,
        {"launch": launch_id, "patient": launch.patient, "encounter": encounter},
    )
    verifier, challenge = pkce_pair()
    with httpx.Client(timeout=60) as browser:
        page = authorize(
            launch,
            browser,
            launch=launch_id,
            code_challenge=challenge,
            code_challenge_method="S256",
        )
        redirect = log_in(launch, browser, page)
    assert "code" in redirect, redirect
    return redirect["code"], verifier


def test_the_discovery_document_advertises_app_launch(launch: Launch) -> None:
    with launch.stack.client() as anonymous:
        document = anonymous.get("/.well-known/smart-configuration").json()
    assert document["authorization_endpoint"] == launch.keycloak.authorization_endpoint
    assert document["token_endpoint"] == launch.keycloak.token_endpoint
    assert document["issuer"] == launch.keycloak.issuer
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert "authorization_code" in document["grant_types_supported"]
    for capability in (
        "launch-ehr",
        "context-ehr-patient",
        "client-public",
        "permission-v2",
        "permission-patient",
    ):
        assert capability in document["capabilities"], capability
    assert {"launch", "launch/patient", "patient/CarePlan.rs"} <= set(document["scopes_supported"])
    # Keycloak's own discovery agrees on the endpoints and on PKCE.
    oidc = httpx.get(f"{launch.keycloak.issuer}/.well-known/openid-configuration").json()
    assert oidc["authorization_endpoint"] == document["authorization_endpoint"]
    assert "S256" in oidc["code_challenge_methods_supported"]


def test_an_ehr_launch_opens_the_launch_patients_plan_and_no_other(launch: Launch) -> None:
    code, verifier = ehr_launch(launch)
    answer = exchange(code, verifier, launch.keycloak)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    token = str(body["access_token"])
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["iss"] == launch.keycloak.issuer
    assert claims["patient"] == launch.patient
    assert claims["encounter"] == "enc-1"
    assert claims["fhirUser"] == f"Practitioner/{PRACTITIONER}"
    assert {"launch", "launch/patient", *RESOURCE_SCOPES} <= set(claims["scope"].split())
    id_claims = jwt.decode(str(body["id_token"]), options={"verify_signature": False})
    assert id_claims["fhirUser"] == f"Practitioner/{PRACTITIONER}"
    # The verifier the gateway and every service run carries the launch context.
    principal = TokenVerifier(launch.stack.settings).verify(token)
    assert (principal.patient_context, principal.encounter_context) == (launch.patient, "enc-1")

    stack = launch.stack
    with stack.client(token) as app:
        plans = app.get("/CarePlan", params={"patient": launch.patient})
        assert plans.status_code == 200, plans.text
        ids = [e["resource"]["id"] for e in plans.json().get("entry", [])]
        assert ids == [launch.plans[launch.patient]]
        read = app.get(f"/CarePlan/{launch.plans[launch.patient]}")
        assert read.status_code == 200, read.text
        assert app.get(f"/Patient/{launch.patient}").status_code == 200

        before = len(stack.audit)
        other = app.get("/CarePlan", params={"patient": launch.other})
        assert other.status_code == 403, other.text
        assert other.json()["resourceType"] == "OperationOutcome"
        refused = [r for r in stack.audit[before:] if r["outcome"] == "refused"]
        assert refused, stack.audit[before:]
        assert refused[-1]["subject"] == f"{CLIENT_ID}@{launch.keycloak.issuer}"
        # A read of the other patient's plan is not served (not found: its existence is not
        # revealed to a token pinned to another patient), and audited as refused too.
        before = len(stack.audit)
        hidden = app.get(f"/CarePlan/{launch.plans[launch.other]}")
        assert hidden.status_code in (403, 404), hidden.text
        assert hidden.json()["resourceType"] == "OperationOutcome"
        assert stack.audit[before:] and stack.audit[-1]["outcome"] != "success"
        # Read scopes do not write.
        write = app.post(
            "/CarePlan",
            json=iop_plan(launch.patient, "t"),
            headers={"Content-Type": FHIR_JSON},
        )
        assert write.status_code == 403, write.text


def test_a_wrong_code_verifier_is_refused_by_keycloak(launch: Launch) -> None:
    code, _ = ehr_launch(launch)
    wrong, _ = pkce_pair()
    answer = exchange(code, wrong, launch.keycloak)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_grant"
    assert "access_token" not in answer.json()


def test_a_code_without_its_verifier_is_refused(launch: Launch) -> None:
    code, _ = ehr_launch(launch)
    answer = exchange(code, None, launch.keycloak)
    assert answer.status_code == 400, answer.text
    assert "access_token" not in answer.json()


@pytest.mark.parametrize(
    "pkce",
    [
        pytest.param({}, id="no-challenge"),
        pytest.param({"code_challenge": "x" * 43, "code_challenge_method": "plain"}, id="plain"),
    ],
)
def test_an_authorization_request_without_s256_pkce_is_refused(
    launch: Launch, pkce: dict[str, str]
) -> None:
    with httpx.Client(timeout=60) as browser:
        answer = authorize(launch, browser, launch=uuid.uuid4().hex, **pkce)
    # Keycloak sends the app back with an error (never a login form, never a code).
    assert answer.is_redirect, answer.text[:1000]
    redirect = parse_qs(urlsplit(answer.headers["location"]).query)
    assert redirect["error"] == ["invalid_request"], redirect
    assert "code" not in redirect


def test_the_realm_client_policy_refuses_a_public_client_without_pkce(launch: Launch) -> None:
    """The realm's client policy (`pkce-enforcer`) holds for every public client: one registered
    without PKCE S256 is refused when registered, so none can ever get a code without PKCE."""
    client = public_client(POLICY_ONLY_CLIENT, REDIRECT_URI, AUDIENCE, ("launch",))
    client["attributes"] = {}
    with pytest.raises(KeycloakError, match="code_challenge_method"):
        launch.keycloak.admin("POST", f"/admin/realms/{REALM}/clients", client)
    clients = launch.keycloak.admin(
        "GET", f"/admin/realms/{REALM}/clients?clientId={POLICY_ONLY_CLIENT}"
    )
    assert clients == []
