"""Who is calling: SMART Backend Services style bearer tokens, verified before anything else.

The token is a JWT signed with ES384 or RS384 (kit.auth.TokenVerifier checks signature,
algorithm, issuer, audience, expiry and issued-at). On top of that the gateway refuses tokens that
live longer than `max_token_lifetime_seconds` (SMART backend tokens are short-lived; a long-lived
bearer token is a standing credential anyone who copies it can use) and parses the SMART scopes.
"""

from __future__ import annotations

from typing import Any

import jwt

from iopcare.gateway import scopes
from iopcare.gateway.client import Caller
from iopcare.gateway.errors import FhirHttpError, Problem
from iopcare.kit.auth import TokenVerifier
from iopcare.kit.errors import Unauthenticated

CHALLENGE = 'Bearer realm="iopcare", error="invalid_token"'


def unauthenticated(message: str) -> FhirHttpError:
    return FhirHttpError(
        401, Problem("login", message), headers={"WWW-Authenticate": CHALLENGE}, reason="TOKEN"
    )


class Authenticator:
    def __init__(self, verifier: TokenVerifier, max_lifetime_seconds: int) -> None:
        self.verifier = verifier
        self.max_lifetime_seconds = max_lifetime_seconds

    def authenticate(self, authorization: str) -> Caller:
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise unauthenticated("a bearer token is required (Authorization: Bearer <JWT>)")
        try:
            principal = self.verifier.verify(token)
        except Unauthenticated as exc:
            raise unauthenticated(exc.message) from None
        # Verified above, so reading the claims again without checking is safe.
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
        lifetime = int(claims.get("exp", 0)) - int(claims.get("iat", 0))
        if lifetime > self.max_lifetime_seconds:
            raise unauthenticated(
                f"the token lives {lifetime} s; at most {self.max_lifetime_seconds} s is accepted"
            )
        return Caller(principal, token, tuple(scopes.parse_scopes(principal.scopes)))
