"""SMART Backend Services helpers for tests: client key pairs, signed client assertions, a
JWKS served over real HTTP (an identity provider's or a client's), token requests."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class KeyPair:
    kid: str
    algorithm: str
    private: Any

    @classmethod
    def new(cls, algorithm: str = "ES384", kid: str | None = None) -> KeyPair:
        if algorithm.startswith("ES"):
            private: Any = ec.generate_private_key(ec.SECP384R1())
        else:
            private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(kid or uuid.uuid4().hex[:12], algorithm, private)

    def public_jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        text = (
            ECAlgorithm.to_jwk(public)
            if self.algorithm.startswith("ES")
            else RSAAlgorithm.to_jwk(public)
        )
        entry: dict[str, Any] = json.loads(text)
        entry.update({"kid": self.kid, "use": "sig", "alg": self.algorithm})
        return entry

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.private, algorithm=self.algorithm, headers={"kid": self.kid})


def jwks(*keys: KeyPair) -> dict[str, Any]:
    return {"keys": [k.public_jwk() for k in keys]}


def assertion(
    key: KeyPair,
    client_id: str,
    audience: str,
    *,
    lifetime: int = 240,
    jti: str | None = None,
    **extra: Any,
) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "exp": now + lifetime,
        "iat": now,
        "jti": jti or uuid.uuid4().hex,
        **extra,
    }
    return key.sign(claims)


def token_request(
    token_url: str, client_assertion: str, scope: str, **overrides: str
) -> httpx.Response:
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "client_assertion": client_assertion,
        "scope": scope,
        **overrides,
    }
    return httpx.post(token_url, data=form, timeout=30)


@dataclass
class JwksServer:
    """A real HTTP server answering GET with the JWKS it currently holds."""

    document: dict[str, Any] = field(default_factory=lambda: {"keys": []})
    requests: int = 0
    url: str = ""


@contextmanager
def serving_jwks(document: dict[str, Any]) -> Iterator[JwksServer]:
    state = JwksServer(document)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests += 1
            body = json.dumps(state.document).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/jwks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
