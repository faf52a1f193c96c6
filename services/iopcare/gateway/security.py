"""Who is calling: SMART Backend Services style bearer tokens, verified before anything else.

The token is a JWT signed with ES384 or RS384 (kit.auth.TokenVerifier checks signature,
algorithm, issuer, audience, expiry, issued-at and the longest lifetime,
`IOPCARE_TOKEN_MAX_LIFETIME_SECONDS`, the same as the services apply). The gateway parses the
SMART scopes with the kit's implementation, which the services apply again to the same token.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import jwt

from iopcare.gateway.client import Caller
from iopcare.gateway.errors import FhirHttpError, Problem
from iopcare.kit.auth import TokenVerifier
from iopcare.kit.errors import Unauthenticated

CHALLENGE = 'Bearer realm="iopcare", error="invalid_token"'


def unauthenticated(message: str) -> FhirHttpError:
    return FhirHttpError(
        401, Problem("login", message), headers={"WWW-Authenticate": CHALLENGE}, reason="TOKEN"
    )


#: Verified tokens remembered (an EHR sends the same token with every request for its lifetime;
#: an ES384 verification costs more than the rest of a read in the gateway).
CACHE_SIZE = 1024


class Authenticator:
    def __init__(self, verifier: TokenVerifier) -> None:
        self.verifier = verifier
        self._verified: dict[str, tuple[float, Caller]] = {}
        self._lock = threading.Lock()

    def authenticate(self, authorization: str) -> Caller:
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise unauthenticated("a bearer token is required (Authorization: Bearer <JWT>)")
        with self._lock:
            cached = self._verified.get(token)
        # Only a token that verified before and has not expired since is taken from the cache;
        # the expiry is checked on every use (with the verifier's leeway, as it would).
        if cached is not None and time.time() < cached[0]:
            return cached[1]
        caller, expires = self._verify(token)
        with self._lock:
            if len(self._verified) >= CACHE_SIZE:
                self._verified.clear()
            self._verified[token] = (expires, caller)
        return caller

    def _verify(self, token: str) -> tuple[Caller, float]:
        try:
            principal = self.verifier.verify(token)
        except Unauthenticated as exc:
            raise unauthenticated(exc.message) from None
        # Verified above, so reading the claims again without checking is safe.
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
        expires = float(claims["exp"]) + self.verifier.settings.token_leeway_seconds
        caller = Caller(principal, token, tuple(principal.parsed_scopes), principal.patient_context)
        return caller, expires
