"""The embedded authorization server: SMART Backend Services for the laptop and small programs.

A client is registered once (`iopcare client register --jwks-url URL | --jwks-file FILE --scope
...`) with its public keys and the scopes it may ever get. It then asks `POST /auth/token` for an
access token with `grant_type=client_credentials` and a `private_key_jwt` client assertion
(SMART App Launch 2.x, Backend Services; RFC 7523): a JWT signed with one of its keys (RS384 or
ES384), `iss` = `sub` = its client_id, `aud` = the token endpoint's URL, `exp` at most five
minutes ahead and a `jti` never used before (assertion ids are kept in the store until they
expire, so a replay is refused even after a restart).

The access token is signed with the local issuer's key (`kit.auth.mint_token`), role `system`,
for the requested scopes the registration allows (never more), and lives
`IOPCARE_AUTH_SERVER_TOKEN_LIFETIME_SECONDS` (five minutes). Errors are OAuth 2.0 error JSON
(RFC 6749 §5.2): `invalid_request`, `invalid_client`, `unsupported_grant_type`, `invalid_scope`.

The store is one SQLite file under the data folder (`<data_dir>/auth/auth-server.db`, mode 0600):
registered clients and used assertion ids. It is the gateway's own, not a service database.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from iopcare.kit import files
from iopcare.kit.auth import JwksCache, fetch_json, mint_token, parse_jwks
from iopcare.kit.errors import Unauthenticated
from iopcare.kit.scopes import parse_scope
from iopcare.kit.settings import Settings

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Client assertion algorithms (SMART: RS384 and ES384 must be supported).
ASSERTION_ALGORITHMS = ("RS384", "ES384")
#: Longest lifetime of a client assertion (SMART Backend Services: at most five minutes).
MAX_ASSERTION_SECONDS = 300
LEEWAY_SECONDS = 30

_SCHEMA = """
CREATE TABLE IF NOT EXISTS clients (
    client_id TEXT PRIMARY KEY,
    jwks_url TEXT,
    jwks TEXT,
    scopes TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS used_assertions (
    client_id TEXT NOT NULL,
    jti TEXT NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (client_id, jti)
);
"""


def embedded_enabled(settings: Settings) -> bool:
    """Whether the embedded server issues tokens: switched on and able to sign (development mode,
    or `IOPCARE_TOKEN_PRIVATE_KEY_FILE` set; production keys never come from the data folder)."""
    return settings.auth_server_enabled and (
        settings.dev_mode or settings.token_private_key_file is not None
    )


class OAuthError(Exception):
    """An OAuth 2.0 error response (RFC 6749 §5.2)."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


@dataclass(frozen=True)
class Client:
    client_id: str
    scopes: tuple[str, ...]
    jwks_url: str | None = None
    jwks: dict[str, Any] | None = None


class ClientStore:
    """Registered clients and used assertion ids, in one SQLite file only its owner can read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        files.private_dir(path.parent)
        with self._connect() as conn:
            conn.executescript(_SCHEMA)
        files.tighten(path)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        try:
            yield conn
        finally:
            conn.close()

    def register(
        self,
        scopes: list[str],
        *,
        jwks_url: str | None = None,
        jwks: dict[str, Any] | None = None,
        client_id: str | None = None,
    ) -> Client:
        if (jwks_url is None) == (jwks is None):
            raise ValueError("give exactly one of a JWKS URL or a JWKS")
        if jwks is not None and not parse_jwks(jwks):
            raise ValueError("the JWKS holds no signature key with a kid (RSA or EC)")
        if jwks_url is not None and not jwks_url.startswith(("https://", "http://")):
            raise ValueError("the JWKS URL must be http(s)")
        bad = [s for s in scopes if parse_scope(s) is None or not s.startswith("system/")]
        if not scopes or bad:
            raise ValueError(
                "scopes must be SMART system scopes such as system/CarePlan.rs"
                + (f" (not {', '.join(bad)})" if bad else "")
            )
        client = Client(client_id or str(uuid.uuid4()), tuple(scopes), jwks_url, jwks)
        with self._connect() as conn:
            if conn.execute(
                "SELECT 1 FROM clients WHERE client_id = ?", (client.client_id,)
            ).fetchone():
                raise ValueError(f"client {client.client_id} is already registered")
            conn.execute(
                "INSERT INTO clients (client_id, jwks_url, jwks, scopes, created)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    client.client_id,
                    jwks_url,
                    json.dumps(jwks) if jwks is not None else None,
                    " ".join(scopes),
                    time.time(),
                ),
            )
        return client

    def client(self, client_id: str) -> Client | None:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT client_id, jwks_url, jwks, scopes FROM clients WHERE client_id = ?",
                (client_id,),
            ).fetchone()
        if row is None:
            return None
        return Client(row[0], tuple(row[3].split()), row[1], json.loads(row[2]) if row[2] else None)

    def use_assertion(self, client_id: str, jti: str, expires: float) -> bool:
        """Records an assertion id; False when it was used before (a replay)."""
        with self._connect() as conn:
            conn.execute("DELETE FROM used_assertions WHERE expires < ?", (time.time(),))
            try:
                conn.execute(
                    "INSERT INTO used_assertions (client_id, jti, expires) VALUES (?, ?, ?)",
                    (client_id, jti, expires),
                )
            except sqlite3.IntegrityError:
                return False
        return True


class AuthorizationServer:
    def __init__(self, settings: Settings, store: ClientStore | None = None) -> None:
        self.settings = settings
        self.store = store or ClientStore(settings.auth_server_db_path)
        self._jwks_caches: dict[str, JwksCache] = {}
        self._lock = threading.Lock()

    def token(self, form: dict[str, str], endpoint_url: str) -> tuple[dict[str, Any], str]:
        """The token response for a token request's form, and the client it was issued to."""
        grant_type = form.get("grant_type", "")
        if not grant_type:
            raise OAuthError("invalid_request", "grant_type is required")
        if grant_type != "client_credentials":
            raise OAuthError(
                "unsupported_grant_type", "only grant_type=client_credentials is supported"
            )
        if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
            raise OAuthError(
                "invalid_request",
                f"client_assertion_type must be {CLIENT_ASSERTION_TYPE} (private_key_jwt)",
            )
        assertion = form.get("client_assertion", "")
        if not assertion:
            raise OAuthError("invalid_request", "client_assertion is required")
        requested = form.get("scope", "").split()
        if not requested:
            raise OAuthError("invalid_request", "scope is required")
        client = self._authenticate(
            assertion, self.settings.auth_server_token_endpoint or endpoint_url
        )
        allowed = set(client.scopes)
        granted = [s for s in dict.fromkeys(requested) if s in allowed]
        if not granted:
            raise OAuthError(
                "invalid_scope", "none of the requested scopes is registered for this client"
            )
        lifetime = self.settings.auth_server_token_lifetime_seconds
        access_token = mint_token(
            self.settings,
            subject=client.client_id,
            role="system",
            scopes=granted,
            lifetime_seconds=lifetime,
        )
        return (
            {
                "access_token": access_token,
                "token_type": "bearer",
                "expires_in": lifetime,
                "scope": " ".join(granted),
            },
            client.client_id,
        )

    def _authenticate(self, assertion: str, endpoint_url: str) -> Client:
        try:
            header = jwt.get_unverified_header(assertion)
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise OAuthError("invalid_client", "client_assertion is not a JWT", 401) from None
        client_id = unverified.get("iss") if isinstance(unverified, dict) else None
        if not isinstance(client_id, str) or not client_id:
            raise OAuthError("invalid_client", "the assertion names no client (iss)", 401)
        client = self.store.client(client_id)
        if client is None:
            raise OAuthError("invalid_client", "unknown client", 401)
        if header.get("alg") not in ASSERTION_ALGORITHMS:
            raise OAuthError(
                "invalid_client",
                f"the assertion must be signed with {' or '.join(ASSERTION_ALGORITHMS)}",
                401,
            )
        key = self._client_key(client, header.get("kid"))
        try:
            claims: dict[str, Any] = jwt.decode(
                assertion,
                key,
                algorithms=list(ASSERTION_ALGORITHMS),
                audience=endpoint_url,
                issuer=client_id,
                leeway=LEEWAY_SECONDS,
                options={"require": ["iss", "sub", "aud", "exp", "jti"]},
            )
        except jwt.PyJWTError as exc:
            raise OAuthError("invalid_client", f"invalid client assertion: {exc}", 401) from None
        if claims["sub"] != client_id:
            raise OAuthError("invalid_client", "the assertion's sub must equal its iss", 401)
        now = time.time()
        if float(claims["exp"]) > now + MAX_ASSERTION_SECONDS + LEEWAY_SECONDS:
            raise OAuthError(
                "invalid_client",
                f"the assertion's exp is more than {MAX_ASSERTION_SECONDS} s ahead",
                401,
            )
        jti = claims["jti"]
        if not isinstance(jti, str) or not jti or len(jti) > 255:
            raise OAuthError("invalid_client", "the assertion's jti is not a usable id", 401)
        if not self.store.use_assertion(client_id, jti, float(claims["exp"]) + LEEWAY_SECONDS):
            raise OAuthError("invalid_client", "the assertion was used before (jti replay)", 401)
        return client

    def _client_key(self, client: Client, kid: Any) -> Any:
        if client.jwks is not None:
            keys = parse_jwks(client.jwks)
            if isinstance(kid, str) and kid in keys:
                return keys[kid].key
            raise OAuthError("invalid_client", "the assertion's kid is not a registered key", 401)
        assert client.jwks_url is not None
        if not isinstance(kid, str) or not kid:
            raise OAuthError("invalid_client", "the assertion must name its key (kid)", 401)
        with self._lock:
            cache = self._jwks_caches.get(client.jwks_url)
            if cache is None:
                cache = JwksCache(
                    client.jwks_url,
                    max_age=self.settings.token_jwks_max_age_seconds,
                    min_refetch=self.settings.token_jwks_refetch_seconds,
                )
                self._jwks_caches[client.jwks_url] = cache
        try:
            return cache.key(kid).key
        except Unauthenticated:
            raise OAuthError(
                "invalid_client", "the assertion's kid is not in the client's JWKS", 401
            ) from None


def load_jwks_file(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def check_jwks_url(url: str) -> None:
    """Registration fails early when the URL serves no usable key."""
    if not parse_jwks(fetch_json(url)):
        raise ValueError(f"{url} serves no signature key with a kid")
