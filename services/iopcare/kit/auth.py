"""Bearer tokens: who is calling, in which role, with which scopes.

Tokens are JWTs signed with an asymmetric key (ES384 by default, RS384 accepted) so that services
can verify them but not mint them. The issuer, audience, expiry and algorithm are all checked; an
`alg: none` or HMAC token is refused because only the configured asymmetric algorithms are
accepted. For development a key pair is created under `<data_dir>/dev-keys/` on first use and
`iopcare token` signs with it; production points `IOPCARE_TOKEN_PUBLIC_KEY_FILE` at the identity
provider's key instead.
"""

from __future__ import annotations

import contextvars
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from iopcare.kit import files
from iopcare.kit import scopes as smart
from iopcare.kit.errors import Unauthenticated
from iopcare.kit.settings import ConfigurationError, Settings

#: Roles a practitioner can act in (docs/architecture.md, Security).
ROLES = frozenset(
    {
        "psychiatrist",
        "therapist",
        "group-facilitator",
        "dietitian",
        "physician",
        "nurse",
        "case-manager",
        "admin",
        "service",
        "system",
        # The patient themselves (SMART standalone patient launch): acts only on their own
        # record, named by the token's `patient` claim, e.g. to record their consent (42 CFR 2.31).
        "patient",
    }
)


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request."""

    subject: str
    role: str
    practitioner_id: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)
    token_id: str | None = None
    #: Emergency access outside the care team: granted, flagged and audited, reviewed afterwards.
    break_glass: bool = False
    #: SMART launch context: the token's `patient` claim, the one patient `patient/` scopes open.
    patient_context: str | None = None
    #: Set per call by the auth interceptor from the RPC's scope rule: when the call is allowed
    #: only through a `patient/` scope, the one patient it may touch (`kit.access` refuses any
    #: other); None when the scopes (or the role) open every patient the care team rules allow.
    patient_limit: str | None = None

    @property
    def parsed_scopes(self) -> list[smart.Scope]:
        return smart.parse_scopes(self.scopes)

    @property
    def reference(self) -> str:
        """The FHIR reference of the caller, for `sender`, `author` and Provenance agents."""
        if self.practitioner_id:
            return f"Practitioner/{self.practitioner_id}"
        return f"Device/{self.subject}"


_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "iopcare_principal", default=None
)


def current_principal() -> Principal:
    principal = _current.get()
    if principal is None:
        raise Unauthenticated("no authenticated caller")
    return principal


def set_principal(principal: Principal | None) -> contextvars.Token[Principal | None]:
    return _current.set(principal)


def reset_principal(token: contextvars.Token[Principal | None]) -> None:
    _current.reset(token)


def _dev_key_paths(settings: Settings) -> tuple[Path, Path]:
    return (
        settings.dev_key_dir / "token-signing.pem",
        settings.dev_key_dir / "token-signing.pub.pem",
    )


def ensure_dev_keys(settings: Settings) -> tuple[Path, Path]:
    """Creates the development signing key pair once (P-384 for ES384)."""
    private_path, public_path = _dev_key_paths(settings)
    if private_path.exists() and public_path.exists():
        return private_path, public_path
    files.private_dir(settings.dev_key_dir)
    key = ec.generate_private_key(ec.SECP384R1())
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # Write to temporary names and rename, so two processes starting at once never read half a key.
    tmp_private = private_path.with_suffix(f".{os.getpid()}.tmp")
    tmp_public = public_path.with_suffix(f".{os.getpid()}.tmp")
    files.write_private(tmp_private, private_pem)
    files.write_private(tmp_public, public_pem)
    if not private_path.exists():
        tmp_private.replace(private_path)
        tmp_public.replace(public_path)
    else:
        tmp_private.unlink()
        tmp_public.unlink()
    return private_path, public_path


def verification_key_path(settings: Settings) -> Path:
    """The key tokens are verified with: IOPCARE_TOKEN_PUBLIC_KEY_FILE, or in development mode
    only the generated one. Outside development mode a missing setting (or file) stops the
    process: verifying against a key generated into the pod's own data folder would accept
    tokens anyone who can read that folder could mint."""
    configured = settings.token_public_key_file
    if configured is not None:
        if not configured.is_file():
            raise ConfigurationError(
                f"IOPCARE_TOKEN_PUBLIC_KEY_FILE names {configured}, which is not a readable file"
            )
        return configured
    settings.require_keys(audit_key=False)
    return ensure_dev_keys(settings)[1]


def signing_key_path(settings: Settings) -> Path:
    """The key `mint_token` signs with: IOPCARE_TOKEN_PRIVATE_KEY_FILE, or in development mode
    only the generated one (production tokens come from the identity provider)."""
    if settings.token_private_key_file is not None:
        return settings.token_private_key_file
    if not settings.dev_mode:
        raise ConfigurationError(
            "no signing key outside development mode: set IOPCARE_TOKEN_PRIVATE_KEY_FILE "
            "(or IOPCARE_DEV_MODE=true on a developer's machine)"
        )
    return ensure_dev_keys(settings)[0]


#: How many verified tokens a verifier remembers (`TokenVerifier.verify`).
VERIFIED_TOKENS_KEPT = 4096


class TokenVerifier:
    """Verifies bearer tokens against one public key.

    A token is an immutable signed statement: once its signature and claims have been checked,
    the same token string always yields the same principal, and only the passing of time can
    change the answer (it expires). So a verified token is remembered until its expiry (ADR
    0014); every later use checks the expiry again, and anything not remembered, or no longer
    valid, goes through the full check. The signature check (ECDSA) was a tenth of the CPU of
    a read.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._key = verification_key_path(settings).read_bytes()
        self._verified: dict[str, tuple[Principal, float]] = {}

    def verify(self, token: str) -> Principal:
        known = self._verified.get(token)
        if known is not None:
            principal, expires = known
            if time.time() < expires:
                return principal
            self._verified.pop(token, None)
        principal, expires = self._verify(token)
        if expires > time.time():
            if len(self._verified) >= VERIFIED_TOKENS_KEPT:
                # Forget the oldest remembered token (dicts keep insertion order).
                self._verified.pop(next(iter(self._verified), ""), None)
            self._verified[token] = (principal, expires)
        return principal

    def _verify(self, token: str) -> tuple[Principal, float]:
        """The full check: the principal, and until when the token is valid (0: do not keep)."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key,
                algorithms=list(self.settings.token_algorithms),
                audience=self.settings.token_audience,
                issuer=self.settings.token_issuer,
                leeway=self.settings.token_leeway_seconds,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            # The library's message names the failed check (expired, audience, signature), never
            # the token's content.
            raise Unauthenticated(f"invalid bearer token: {exc}", reason="INVALID_TOKEN") from None
        lifetime = int(claims["exp"]) - int(claims["iat"])
        if lifetime > self.settings.token_max_lifetime_seconds:
            # A long-lived bearer token is a standing credential anyone who copies it can use;
            # the same maximum applies on REST and gRPC (one setting).
            raise Unauthenticated(
                f"the token lives {lifetime} s; at most "
                f"{self.settings.token_max_lifetime_seconds} s is accepted",
                reason="TOKEN_LIFETIME",
            )
        role = str(claims.get("role", ""))
        if role not in ROLES:
            raise Unauthenticated("token carries no known role", reason="INVALID_TOKEN")
        scope = claims.get("scope", "")
        context = claims.get("patient")
        now = time.time()
        # Kept only once valid in every respect but expiry, which each use checks again; a token
        # whose iat or nbf lies ahead (within the leeway) is checked in full each time.
        not_before = max(float(claims["iat"]), float(claims.get("nbf", 0) or 0))
        expires = (
            float(claims["exp"]) + self.settings.token_leeway_seconds if not_before <= now else 0.0
        )
        return Principal(
            subject=str(claims["sub"]),
            role=role,
            practitioner_id=claims.get("practitioner"),
            scopes=frozenset(str(scope).split()) if scope else frozenset(),
            token_id=claims.get("jti"),
            break_glass=claims.get("break_glass") is True,
            patient_context=context if isinstance(context, str) and context else None,
        ), expires


def mint_token(
    settings: Settings,
    *,
    subject: str,
    role: str,
    practitioner_id: str | None = None,
    scopes: list[str] | None = None,
    lifetime_seconds: int = 3600,
    algorithm: str = "ES384",
    break_glass: bool = False,
    patient_context: str | None = None,
) -> str:
    """Signs a token with the development key (or IOPCARE_TOKEN_PRIVATE_KEY_FILE)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(sorted(ROLES))}")
    private_path = signing_key_path(settings)
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.token_issuer,
        "aud": settings.token_audience,
        "sub": subject,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime_seconds,
        "jti": str(uuid.uuid4()),
        "role": role,
    }
    if practitioner_id:
        claims["practitioner"] = practitioner_id
    if scopes:
        claims["scope"] = " ".join(scopes)
    if break_glass:
        claims["break_glass"] = True
    if patient_context:
        # SMART launch context: the one patient `patient/` scopes apply to (the FHIR gateway).
        claims["patient"] = patient_context
    return jwt.encode(claims, private_path.read_bytes(), algorithm=algorithm)


def service_token(settings: Settings, service: str, lifetime_seconds: int = 300) -> str:
    """A token an internal client (a service calling another, the gateway's own calls) uses: its
    own identity, role `service`. Only internal clients hold the signing key's issuer for this
    role; outside EHRs get role `system`, limited to their scopes."""
    return mint_token(
        settings,
        subject=f"service:{service}",
        role="service",
        scopes=["system/*.cruds"],
        lifetime_seconds=lifetime_seconds,
    )
