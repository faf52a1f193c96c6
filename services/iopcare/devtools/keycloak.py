"""Run a real Keycloak (the external identity provider of the SMART tests) from Maven Central.

The distribution is ``org.keycloak:keycloak-quarkus-dist:<version>:zip``, fetched with
``mvn dependency:copy`` and unpacked under ``<repo>/.cache/keycloak/<version>`` (the same cache
pattern as the Kafka jars, see :func:`iopcare.devtools.kafka.ensure_jars`). A
:class:`Keycloak` owns one ``kc.sh start-dev`` process with a realm imported from a JSON file.

Command line (downloads only)::

    python -m iopcare.devtools.keycloak
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

from iopcare.devtools import downloads
from iopcare.devtools.kafka import free_port, repo_root
from iopcare.devtools.lifetime import StartStop, log_tail

__all__ = [
    "KEYCLOAK_VERSION",
    "LAUNCH_CONTEXT",
    "Keycloak",
    "KeycloakError",
    "ensure_keycloak",
    "public_client",
    "smart_launch_realm",
]

KEYCLOAK_VERSION = "26.4.0"
HOME_ENV = "IOPCARE_KEYCLOAK_HOME"
_ARTIFACT = "org.keycloak:keycloak-quarkus-dist:{version}:zip"


class KeycloakError(RuntimeError):
    """Keycloak could not be downloaded or started."""


def ensure_keycloak(version: str = KEYCLOAK_VERSION, cache_dir: Path | None = None) -> Path:
    """Return Keycloak's home folder (holding ``bin/kc.sh``), downloading it with Maven if needed.

    ``IOPCARE_KEYCLOAK_HOME`` names an installed Keycloak to use as is.
    """
    override = os.environ.get(HOME_ENV, "").strip()
    if override and cache_dir is None:
        home = Path(override).expanduser().resolve()
        if not (home / "bin" / "kc.sh").is_file():
            raise KeycloakError(f"{HOME_ENV}={override} holds no bin/kc.sh")
        return home
    base = cache_dir or repo_root() / ".cache" / "keycloak"
    home = base.resolve() / version
    return downloads.ensure_installed(home, lambda staging: _download(version, staging), version)


def _download(version: str, staging: Path) -> Path:
    output = downloads.mvn(
        [
            "dependency:copy",
            f"-Dartifact={_ARTIFACT.format(version=version)}",
            f"-DoutputDirectory={staging}",
        ],
        KeycloakError,
        HOME_ENV,
        timeout=1800,
        cwd=staging,
    )
    zips = list(staging.glob("keycloak-quarkus-dist-*.zip"))
    if not zips:
        raise KeycloakError(f"mvn copied no keycloak zip:\n{output}")
    with zipfile.ZipFile(zips[0]) as archive:
        archive.extractall(staging)
    zips[0].unlink()
    tops = [p for p in staging.iterdir() if p.is_dir() and (p / "bin" / "kc.sh").is_file()]
    if len(tops) != 1:
        raise KeycloakError(f"unexpected layout of the Keycloak zip in {staging}")
    unpacked = tops[0]
    # zipfile does not keep the executable bit.
    for script in (unpacked / "bin").glob("*.sh"):
        script.chmod(0o755)
    return unpacked


class Keycloak(StartStop):
    """One ``kc.sh start-dev`` process on a free port, with ``realm`` (a realm representation)
    created through the admin REST API."""

    def __init__(
        self, realm: dict[str, Any], data_dir: Path, *, start_timeout: float = 300.0
    ) -> None:
        self.realm = realm
        self.data_dir = Path(data_dir)
        self.start_timeout = start_timeout
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path = self.data_dir / "keycloak.log"
        self._admin_password = secrets.token_urlsafe(16)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return f"{self.base_url}/realms/{self.realm['realm']}"

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/token"

    @property
    def authorization_endpoint(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/auth"

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/certs"

    def start(self) -> None:
        home = ensure_keycloak()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["KC_BOOTSTRAP_ADMIN_USERNAME"] = "admin"
        env["KC_BOOTSTRAP_ADMIN_PASSWORD"] = self._admin_password
        # An in-memory database: the (shared, cached) distribution folder keeps no state of a run,
        # and the realm is created through the admin API once the server answers.
        command = [
            str(home / "bin" / "kc.sh"),
            "start-dev",
            f"--http-port={self.port}",
            "--http-host=127.0.0.1",
            "--hostname-strict=false",
            "--db=dev-mem",
            "--http-management-port=0",
        ]
        with self._log_path.open("wb") as log:
            self._process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.data_dir,
                start_new_session=True,
            )
        try:
            self._wait_ready()
            self.create_realm(self.realm)
        except BaseException:
            self.stop()
            raise

    def _admin_token(self) -> str:
        body = urllib.parse.urlencode(
            {
                "grant_type": "password",
                "client_id": "admin-cli",
                "username": "admin",
                "password": self._admin_password,
            }
        ).encode()
        url = f"{self.base_url}/realms/master/protocol/openid-connect/token"
        with urllib.request.urlopen(url, data=body, timeout=30) as response:
            return str(json.load(response)["access_token"])

    def create_realm(self, realm: dict[str, Any]) -> None:
        """Creates a realm from its representation (the admin REST API)."""
        self.admin("POST", "/admin/realms", realm)

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        """One admin REST API call as the bootstrap admin; the decoded JSON answer, if any."""
        request = urllib.request.Request(
            f"{self.base_url}{path}",
            data=json.dumps(body).encode() if body is not None else None,
            headers={
                "Authorization": f"Bearer {self._admin_token()}",
                "Content-Type": "application/json",
            },
            method=method,
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                text = response.read()
        except urllib.error.HTTPError as exc:
            raise KeycloakError(f"{method} {path} answered {exc.code}: {exc.read()!r}") from None
        return json.loads(text) if text.strip() else None

    def create_user(
        self, realm: str, username: str, password: str, attributes: dict[str, str]
    ) -> str:
        """A user who can log in with `password` (no required action pending); their id.

        Keycloak 26 keeps only the attributes its user profile declares unless the realm admits
        unmanaged ones (:meth:`admit_admin_attributes`), which the launch context needs."""
        self.admin(
            "POST",
            f"/admin/realms/{realm}/users",
            {
                "username": username,
                "enabled": True,
                "email": f"{username}@example.org",
                "emailVerified": True,
                "firstName": username,
                "lastName": "Test",
                "attributes": {name: [value] for name, value in attributes.items()},
                "credentials": [{"type": "password", "value": password, "temporary": False}],
                "requiredActions": [],
            },
        )
        (found,) = self.admin(
            "GET", f"/admin/realms/{realm}/users?username={urllib.parse.quote(username)}&exact=true"
        )
        return str(found["id"])

    def admit_admin_attributes(self, realm: str) -> None:
        """Lets administrators (the EHR, through the admin API) set attributes the user profile
        does not declare, such as the launch context; users cannot see or edit them."""
        profile = self.admin("GET", f"/admin/realms/{realm}/users/profile")
        profile["unmanagedAttributePolicy"] = "ADMIN_EDIT"
        self.admin("PUT", f"/admin/realms/{realm}/users/profile", profile)

    def set_launch_context(self, realm: str, user_id: str, context: dict[str, str]) -> None:
        """The EHR's side of an EHR launch: records the context (`launch`, `patient`,
        `encounter`) of the launch it is about to make for this user (see
        :func:`smart_launch_realm`)."""
        user = self.admin("GET", f"/admin/realms/{realm}/users/{user_id}")
        attributes = dict(user.get("attributes") or {})
        attributes.update({name: [value] for name, value in context.items()})
        self.admin(
            "PUT", f"/admin/realms/{realm}/users/{user_id}", {**user, "attributes": attributes}
        )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        url = f"{self.base_url}/realms/master/.well-known/openid-configuration"
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                code = self._process.returncode
                raise KeycloakError(f"Keycloak exited ({code}):\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(1.0)
        self.stop()
        raise KeycloakError(f"Keycloak not ready after {self.start_timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self._log_path, lines)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


#: The launch context claims, each from the user attribute of the same name, and the client scope
#: that releases it into the access token (SMART App Launch 2.x, §Launch context).
LAUNCH_CONTEXT = {"patient": "launch/patient", "encounter": "launch", "fhirUser": "fhirUser"}


def _claim_mapper(claim: str) -> dict[str, Any]:
    """A user attribute as a string claim of the same name in the access and ID tokens."""
    return {
        "name": f"smart-{claim}",
        "protocol": "openid-connect",
        "protocolMapper": "oidc-usermodel-attribute-mapper",
        "config": {
            "user.attribute": claim,
            "claim.name": claim,
            "jsonType.label": "String",
            "access.token.claim": "true",
            "id.token.claim": "true",
            "userinfo.token.claim": "false",
            "introspection.token.claim": "true",
        },
    }


def smart_launch_realm(
    name: str,
    *,
    client_id: str,
    redirect_uri: str,
    audience: str,
    resource_scopes: tuple[str, ...],
) -> dict[str, Any]:
    """A realm for SMART App Launch (EHR launch, authorization code with PKCE).

    - ``client_id`` is a public client (no secret: a browser or native SMART app) allowed the
      standard flow only, to ``redirect_uri`` only. PKCE with S256 is required twice over: the
      client's ``pkce.code.challenge.method`` attribute and a realm client policy (the
      ``pkce-enforcer`` executor for every public client), so an authorization request without
      a code challenge is refused and the code is exchanged only with its verifier.
    - The SMART scopes are optional client scopes: ``launch``, ``launch/patient``, ``fhirUser``
      and ``resource_scopes`` (e.g. ``patient/CarePlan.rs``); ``openid`` is Keycloak's own.
      Each is put in the token's ``scope`` only when asked for and granted.
    - The launch context: Keycloak does not implement SMART's ``launch`` parameter (it keeps it
      as an unused request parameter). The EHR launch is simulated honestly at the identity
      provider instead: before launching the app, the EHR records the launch context on the
      clinician's user (attributes ``launch``, ``patient``, ``encounter``, through the admin
      API: :meth:`Keycloak.set_launch_context`) and hands the app the opaque ``launch`` id. The
      ``launch/patient`` scope releases the ``patient`` claim, ``launch`` the ``encounter``
      claim, ``fhirUser`` the ``fhirUser`` claim, each from the attribute of the same name. The
      app cannot choose the patient: it only asks for the scopes. The limit: one pending launch
      per user, and Keycloak does not compare the ``launch`` value the app sends with the
      recorded one (a production deployment needs a SMART launch extension in Keycloak or the
      EHR's own authorization server).
    - An audience mapper puts ``audience`` (the gateway's) in the access token's ``aud``.
    """
    mappers: dict[str, list[dict[str, Any]]] = {
        scope: [] for scope in ("launch", "launch/patient", "fhirUser")
    }
    for claim, scope in LAUNCH_CONTEXT.items():
        mappers[scope].append(_claim_mapper(claim))
    scope_names = ("launch", "launch/patient", "fhirUser", *resource_scopes)
    return {
        "realm": name,
        "enabled": True,
        "accessTokenLifespan": 300,
        # RS384: a SMART algorithm the gateway accepts (IOPCARE_TOKEN_ALGORITHMS).
        "defaultSignatureAlgorithm": "RS384",
        "components": {"org.keycloak.keys.KeyProvider": [_rs384_key()]},
        "clientScopes": [
            {
                "name": scope,
                "protocol": "openid-connect",
                "attributes": {
                    "include.in.token.scope": "true",
                    "display.on.consent.screen": "false",
                },
                "protocolMappers": mappers.get(scope, []),
            }
            for scope in scope_names
        ],
        **_pkce_policy(),
        "clients": [public_client(client_id, redirect_uri, audience, scope_names)],
    }


def _rs384_key() -> dict[str, Any]:
    return {
        "name": "rs384",
        "providerId": "rsa-generated",
        "config": {
            "priority": ["100"],
            "algorithm": ["RS384"],
            "keySize": ["2048"],
            "active": ["true"],
            "enabled": ["true"],
        },
    }


def _pkce_policy() -> dict[str, Any]:
    """A realm client policy: every public client must use PKCE with S256 (`pkce-enforcer`)."""
    return {
        "clientProfiles": {
            "profiles": [
                {
                    "name": "smart-public-pkce",
                    "description": "SMART public apps: PKCE with S256",
                    "executors": [
                        {"executor": "pkce-enforcer", "configuration": {"auto-configure": "false"}}
                    ],
                }
            ]
        },
        "clientPolicies": {
            "policies": [
                {
                    "name": "smart-public-pkce",
                    "enabled": True,
                    "conditions": [
                        {"condition": "client-access-type", "configuration": {"type": ["public"]}}
                    ],
                    "profiles": ["smart-public-pkce"],
                }
            ]
        },
    }


def public_client(
    client_id: str, redirect_uri: str, audience: str, scopes: tuple[str, ...]
) -> dict[str, Any]:
    """A public SMART app: the standard flow to its one redirect URI only, PKCE S256, the SMART
    scopes optional, the gateway's audience in its access tokens."""
    return {
        "clientId": client_id,
        "enabled": True,
        "publicClient": True,
        "standardFlowEnabled": True,
        "implicitFlowEnabled": False,
        "directAccessGrantsEnabled": False,
        "serviceAccountsEnabled": False,
        "consentRequired": False,
        "redirectUris": [redirect_uri],
        "webOrigins": [],
        "fullScopeAllowed": False,
        "attributes": {"pkce.code.challenge.method": "S256"},
        "defaultClientScopes": [],
        "optionalClientScopes": list(scopes),
        "protocolMappers": [
            {
                "name": "iopcare-audience",
                "protocol": "openid-connect",
                "protocolMapper": "oidc-audience-mapper",
                "config": {
                    "included.custom.audience": audience,
                    "access.token.claim": "true",
                    "id.token.claim": "false",
                },
            }
        ],
    }


if __name__ == "__main__":
    print(ensure_keycloak())
