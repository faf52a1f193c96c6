"""SMART discovery and the embedded authorization server's HTTP endpoints.

- `GET <base>/.well-known/smart-configuration` (SMART App Launch 2.x, §Discovery): where to get a
  token and how to authenticate; served without a token, like `/metadata`.
- `POST /auth/token`: the embedded authorization server (gateway.authserver), when
  `IOPCARE_AUTH_SERVER_ENABLED` (the default).
- `GET /auth/jwks`: the public key its access tokens are signed with.

Every request here is audited like the FHIR requests (one record each; the token endpoint's
names the client and, when refused, the OAuth error).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from iopcare.gateway.authserver import (
    ASSERTION_ALGORITHMS,
    AuthorizationServer,
    OAuthError,
    embedded_enabled,
)
from iopcare.kit.auth import verification_key_path
from iopcare.kit.limits import FairQueue, Throttled
from iopcare.kit.settings import Settings

log = logging.getLogger(__name__)

TOKEN_PATH = "/auth/token"
JWKS_PATH = "/auth/jwks"
#: Largest token request body (a form with one assertion).
MAX_FORM_BYTES = 16 * 1024

#: Scopes advertised: SMART v2 and v1 system scopes of the resource types the gateway serves.
ADVERTISED_SCOPES = (
    "system/*.cruds",
    "system/*.rs",
    "system/*.read",
    "system/*.write",
    "system/Patient.rs",
    "system/CarePlan.rs",
    "system/CarePlan.read",
    "system/CareTeam.rs",
    "system/Goal.rs",
    "system/Appointment.rs",
    "system/DocumentReference.rs",
)

AuditSink = Callable[[dict[str, Any]], None]


#: Scopes advertised for SMART App Launch (EHR launch) when an external issuer with an
#: authorization endpoint is configured.
LAUNCH_SCOPES = (
    "openid",
    "fhirUser",
    "launch",
    "launch/patient",
    "patient/*.rs",
    "patient/*.read",
    "patient/Patient.rs",
    "patient/CarePlan.rs",
    "patient/CarePlan.read",
    # The patient's daily check-in (issue 12): the form, and their own answers.
    "patient/Questionnaire.r",
    "patient/QuestionnaireResponse.cs",
)
#: What SMART App Launch through such an issuer offers (SMART App Launch 2.x, §Capabilities).
LAUNCH_CAPABILITIES = (
    "launch-ehr",
    "context-ehr-patient",
    "context-ehr-encounter",
    "client-public",
    "sso-openid-connect",
    "permission-patient",
)


def smart_configuration(settings: Settings, public_base: str) -> dict[str, Any]:
    """The discovery document; `public_base` is the server's root URL (scheme, host, port).

    The first trusted issuer with an `authorization_endpoint` is advertised for App Launch (its
    authorization and token endpoints, PKCE S256 only); otherwise the embedded authorization
    server, else the first trusted issuer with a token endpoint, for Backend Services."""
    capabilities = ["client-confidential-asymmetric", "permission-v1", "permission-v2"]
    document: dict[str, Any] = {
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "scopes_supported": list(ADVERTISED_SCOPES),
        "capabilities": capabilities,
    }
    launch = next((t for t in settings.token_trusted_issuers if t.authorization_endpoint), None)
    if launch is not None:
        document["issuer"] = launch.issuer
        document["jwks_uri"] = launch.jwks_url
        document["authorization_endpoint"] = launch.authorization_endpoint
        if launch.token_endpoint:
            document["token_endpoint"] = launch.token_endpoint
        document["grant_types_supported"] = ["authorization_code", "client_credentials"]
        document["response_types_supported"] = ["code"]
        document["code_challenge_methods_supported"] = ["S256"]
        document["token_endpoint_auth_methods_supported"] = ["private_key_jwt", "none"]
        document["scopes_supported"] = [*LAUNCH_SCOPES, *ADVERTISED_SCOPES]
        capabilities += [c for c in LAUNCH_CAPABILITIES if c not in capabilities]
    elif embedded_enabled(settings):
        document["issuer"] = settings.token_issuer
        document["jwks_uri"] = f"{public_base}{JWKS_PATH}"
        document["token_endpoint"] = settings.auth_server_token_endpoint or (
            f"{public_base}{TOKEN_PATH}"
        )
    else:
        advertised = next((t for t in settings.token_trusted_issuers if t.token_endpoint), None)
        if advertised is not None:
            document["issuer"] = advertised.issuer
            document["jwks_uri"] = advertised.jwks_url
            document["token_endpoint"] = advertised.token_endpoint
    return document


def _json(body: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")),
        status_code=status,
        media_type="application/json",
        # Tokens must never be cached (RFC 6749 §5.1).
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


def public_base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _audit_entry(
    request: Request, status: int, subject: str, detail: str, started: float
) -> dict[str, object]:
    """The audit record of one request to the SMART endpoints (no patient, no resource)."""
    return {
        "time": datetime.now(UTC).isoformat(),
        "subject": subject,
        "method": request.method,
        "path": request.url.path[:300],
        "status": status,
        "outcome": "success" if status < 400 else "refused",
        "patient": "",
        "resource": "",
        "detail": detail[:200],
        "ms": round((time.monotonic() - started) * 1000, 1),
        "request_id": uuid.uuid4().hex,
    }


async def _token_form(request: Request) -> dict[str, str]:
    """The token request's form, read within MAX_FORM_BYTES; raises OAuthError when it is not
    a UTF-8 form body of at most that size with each parameter at most once."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "the body must be application/x-www-form-urlencoded")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise OAuthError("invalid_request", "the request body is too large", 413)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise OAuthError("invalid_request", "the request body is too large", 413)
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise OAuthError("invalid_request", "the body is not UTF-8") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            # RFC 6749 §3.2: parameters must not be included more than once.
            raise OAuthError("invalid_request", f"{name} is given more than once")
        form[name] = value
    return form


def _public_jwk(settings: Settings) -> dict[str, Any] | None:
    """The token verification key as a JWK, or None if it is neither EC nor RSA."""
    key = serialization.load_pem_public_key(verification_key_path(settings).read_bytes())
    if isinstance(key, ec.EllipticCurvePublicKey):
        text = ECAlgorithm.to_jwk(key)
    elif isinstance(key, rsa.RSAPublicKey):
        text = RSAAlgorithm.to_jwk(key)
    else:
        return None
    entry: dict[str, Any] = json.loads(text)
    entry.update({"use": "sig", "kid": "iopcare-local"})
    return entry


def _throttled(exc: Throttled) -> Response:
    response = _json({"error": "temporarily_unavailable", "error_description": exc.message}, 429)
    response.headers["Retry-After"] = exc.retry_after_header
    return response


def routes(settings: Settings, base_path: str, audit: AuditSink) -> list[Route]:
    """The routes to register before the FHIR catch-all route."""
    # Created on the first token request: a gateway that never issues tokens never creates the
    # client store (its data folder may be read-only).
    servers: list[AuthorizationServer] = []
    admission = FairQueue(
        16,
        settings.auth_server_max_requests_per_client,
        settings.auth_server_max_queued_per_client,
        1.0,
    )

    def record(request: Request, status: int, subject: str, detail: str, started: float) -> None:
        audit(_audit_entry(request, status, subject, detail, started))

    async def configuration(request: Request) -> Response:
        started = time.monotonic()
        response = _json(smart_configuration(settings, public_base(request)))
        record(request, 200, "", "", started)
        return response

    async def jwks(request: Request) -> Response:
        started = time.monotonic()
        entry = _public_jwk(settings)
        if entry is None:
            return _json({"keys": []})
        record(request, 200, "", "", started)
        return _json({"keys": [entry]})

    async def token(request: Request) -> Response:
        started = time.monotonic()
        # Admitted per peer address before the body is read: a client that floods the endpoint
        # (or trickles bodies) holds at most its own share of places.
        peer = f"peer:{request.client.host if request.client else 'unknown'}"
        try:
            await admission.acquire(peer)
        except Throttled as exc:
            record(request, 429, "", "throttled", started)
            return _throttled(exc)
        try:
            return await issue(request, started)
        finally:
            admission.release(peer)

    async def issue(request: Request, started: float) -> Response:
        subject = ""
        try:
            if not embedded_enabled(settings):
                raise OAuthError("invalid_request", "the embedded authorization server is off", 404)
            if not servers:
                servers.append(AuthorizationServer(settings))
            server = servers[0]
            form = await _token_form(request)
            endpoint = f"{public_base(request)}{TOKEN_PATH}"
            answer, subject = await run_in_threadpool(server.token, form, endpoint)
        except OAuthError as exc:
            headers = {}
            record(request, exc.status, subject, exc.error + ": " + exc.description, started)
            response = _json(exc.body(), exc.status)
            if exc.status == 401:
                headers["WWW-Authenticate"] = 'Bearer realm="iopcare", error="invalid_client"'
                response.headers.update(headers)
            return response
        except ClientDisconnect:
            record(request, 400, subject, "the client went away", started)
            return _json({"error": "invalid_request", "error_description": "disconnected"}, 400)
        except Exception:
            log.exception("token endpoint: unexpected error")
            record(request, 500, subject, "internal error", started)
            return _json({"error": "server_error", "error_description": "internal error"}, 500)
        record(request, 200, subject, "token issued: " + answer["scope"], started)
        return _json(answer)

    return [
        Route(f"{base_path}/.well-known/smart-configuration", configuration, methods=["GET"]),
        Route(TOKEN_PATH, token, methods=["POST"]),
        Route(JWKS_PATH, jwks, methods=["GET"]),
    ]
