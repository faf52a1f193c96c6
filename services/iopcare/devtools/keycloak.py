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

__all__ = ["KEYCLOAK_VERSION", "Keycloak", "KeycloakError", "ensure_keycloak"]

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


if __name__ == "__main__":
    print(ensure_keycloak())
