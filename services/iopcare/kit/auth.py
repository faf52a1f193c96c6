"""Bearer tokens: who is calling, in which role, with which scopes.

Tokens are JWTs signed with an asymmetric key (ES384 by default, RS384 accepted) so that services
can verify them but not mint them. The issuer, audience, expiry and algorithm are all checked; an
`alg: none` or HMAC token is refused because only the configured asymmetric algorithms are
accepted. For development a key pair is created under `<data_dir>/dev-keys/` on first use and
`iopcare token` signs with it; production points `IOPCARE_TOKEN_PUBLIC_KEY_FILE` at the identity
provider's key instead.

Token sources (docs/security.md, Token sources): a token whose `iss` is `IOPCARE_TOKEN_ISSUER` is
verified with that one key (development tokens, the services' own, and the embedded
authorization server's, gateway.authserver); a token whose `iss` is one of
`IOPCARE_TOKEN_TRUSTED_ISSUERS` is verified with the key its `kid` names in that issuer's JWKS,
fetched over HTTP and cached (`JwksCache`); any other issuer is refused. The same verifier runs at
the gateway and in every service, so both accept and refuse the same tokens.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import threading
import time
import urllib.error
import urllib.request
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
from iopcare.kit.settings import ConfigurationError, Settings, TrustedIssuer

log = logging.getLogger(__name__)

#: A FHIR id (R4 `id` datatype).
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")

#: Roles a practitioner can act in (docs/architecture.md, Access).
ROLES = frozenset(
    {
        "psychiatrist",
        "therapist",
        "group-facilitator",
        "dietitian",
        "physician",
        "nurse",
        "case-manager",
        # The program's billing staff: they read Encounters for billing (scheduling), nothing
        # else of a patient's record.
        "billing",
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
    #: SMART launch context: the token's `encounter` claim (EHR launch), carried for the record;
    #: it opens nothing by itself (access follows the scopes and `patient_context`).
    encounter_context: str | None = None
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


#: Largest JWKS document read from an identity provider.
MAX_JWKS_BYTES = 256 * 1024


class JwksCache:
    """The signing keys of one JWKS URL, by `kid`.

    The set is fetched on first use and again after `max_age` seconds; a `kid` it does not hold
    makes it fetch the set again (the provider rotated its keys), but not sooner than
    `min_refetch` seconds after the last fetch. A fetch replaces the whole set, so a key the
    provider removed is refused from then on. A failed fetch keeps the keys known so far.
    """

    def __init__(
        self,
        url: str,
        *,
        max_age: float = 300,
        min_refetch: float = 10,
        timeout: float = 5,
    ) -> None:
        self.url = url
        self.max_age = max_age
        self.min_refetch = min_refetch
        self.timeout = timeout
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = threading.Lock()
        #: Fetches made (for tests and metrics).
        self.fetches = 0

    def key(self, kid: str) -> jwt.PyJWK:
        with self._lock:
            now = time.monotonic()
            stale = self._fetched_at is None or now - self._fetched_at >= self.max_age
            if stale or (
                kid not in self._keys
                and (self._fetched_at is None or now - self._fetched_at >= self.min_refetch)
            ):
                self._refresh(now)
            found = self._keys.get(kid)
        if found is None:
            raise Unauthenticated(
                "the token's signing key (kid) is not among the issuer's current keys",
                reason="UNKNOWN_KEY",
            )
        return found

    def _refresh(self, now: float) -> None:
        self._fetched_at = now
        self.fetches += 1
        try:
            self._keys = parse_jwks(fetch_json(self.url, self.timeout))
        except (OSError, ValueError) as exc:
            # Keep what we had: an identity provider that is briefly down must not lock every
            # caller out; tokens under keys we never saw stay refused.
            log.warning("fetching JWKS %s failed: %s", self.url, exc)


def fetch_json(url: str, timeout: float = 5) -> Any:
    """GET a JSON document (a JWKS) of bounded size."""
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"not an http(s) URL: {url}")
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = response.read(MAX_JWKS_BYTES + 1)
    if len(body) > MAX_JWKS_BYTES:
        raise ValueError(f"the JWKS at {url} exceeds {MAX_JWKS_BYTES} bytes")
    return json.loads(body)


def parse_jwks(document: Any) -> dict[str, jwt.PyJWK]:
    """The signature keys of a JWKS by `kid`; encryption keys, keys without a `kid` and keys of
    types we do not verify with are left out."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS (no 'keys' list)")
    keys: dict[str, jwt.PyJWK] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or not kid or entry.get("kty") not in ("RSA", "EC"):
            continue
        try:
            keys[kid] = jwt.PyJWK(entry)
        except jwt.PyJWTError:
            continue
    return keys


#: How many verified tokens a verifier remembers (`TokenVerifier.verify`).
VERIFIED_TOKENS_KEPT = 4096


class TokenVerifier:
    """Verifies bearer tokens: the local issuer's against its one public key, a trusted external
    issuer's against its JWKS.

    A token is an immutable signed statement: once its signature and claims have been checked,
    the same token string always yields the same principal, and only the passing of time can
    change the answer (it expires). So a verified token of the local issuer is remembered until
    its expiry (ADR 0014); every later use checks the expiry again, and anything not remembered,
    or no longer valid, goes through the full check. The signature check (ECDSA) was a tenth of
    the CPU of a read. External issuers' tokens are checked in full on every use, so a key their
    provider withdraws is refused at once.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._key = verification_key_path(settings).read_bytes()
        self._trusted: dict[str, tuple[TrustedIssuer, JwksCache]] = {
            trusted.issuer: (
                trusted,
                JwksCache(
                    trusted.jwks_url,
                    max_age=settings.token_jwks_max_age_seconds,
                    min_refetch=settings.token_jwks_refetch_seconds,
                ),
            )
            for trusted in settings.token_trusted_issuers
        }
        self._verified: dict[str, tuple[Principal, float]] = {}

    def jwks(self, issuer: str) -> JwksCache | None:
        found = self._trusted.get(issuer)
        return found[1] if found else None

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
            unverified = jwt.decode(token, options={"verify_signature": False})
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid bearer token: {exc}", reason="INVALID_TOKEN") from None
        issuer = unverified.get("iss") if isinstance(unverified, dict) else None
        if issuer == self.settings.token_issuer:
            return self._verify_local(token), self._keep_until(unverified)
        if isinstance(issuer, str) and issuer in self._trusted:
            return self._verify_external(token, header, *self._trusted[issuer]), 0.0
        # The issuer's name is not echoed: it is the caller's text.
        raise Unauthenticated("the token's issuer is not trusted", reason="UNTRUSTED_ISSUER")

    def _keep_until(self, claims: dict[str, Any]) -> float:
        """Until when a verified token may be remembered: its expiry (plus the leeway), or 0 for
        a token whose iat or nbf lies ahead (checked in full each time)."""
        not_before = max(float(claims.get("iat", 0) or 0), float(claims.get("nbf", 0) or 0))
        if not_before > time.time():
            return 0.0
        return float(claims["exp"]) + self.settings.token_leeway_seconds

    def _decode(
        self, token: str, key: Any, audience: str, issuer: str, required: list[str]
    ) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=list(self.settings.token_algorithms),
                audience=audience,
                issuer=issuer,
                leeway=self.settings.token_leeway_seconds,
                options={"require": required},
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
        return claims

    def _verify_local(self, token: str) -> Principal:
        claims = self._decode(
            token,
            self._key,
            self.settings.token_audience,
            self.settings.token_issuer,
            ["exp", "iat", "iss", "aud", "sub"],
        )
        role = str(claims.get("role", ""))
        if role not in ROLES:
            raise Unauthenticated("token carries no known role", reason="INVALID_TOKEN")
        return Principal(
            subject=str(claims["sub"]),
            role=role,
            practitioner_id=claims.get("practitioner"),
            scopes=_scopes(claims),
            token_id=claims.get("jti"),
            break_glass=claims.get("break_glass") is True,
            patient_context=_context(claims, "patient"),
            encounter_context=_context(claims, "encounter"),
        )

    def _verify_external(
        self, token: str, header: dict[str, Any], trusted: TrustedIssuer, keys: JwksCache
    ) -> Principal:
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthenticated(
                "a token from an external issuer must name its key (kid)", reason="UNKNOWN_KEY"
            )
        if header.get("alg") not in self.settings.token_algorithms:
            raise Unauthenticated(
                "the token's algorithm is not accepted "
                f"(one of {', '.join(self.settings.token_algorithms)})",
                reason="INVALID_TOKEN",
            )
        jwk = keys.key(kid)
        declared = jwk._jwk_data.get("alg")
        if declared and declared != header.get("alg"):
            # A key published for one algorithm is not used with another (RFC 7517 §4.4).
            raise Unauthenticated("the token's algorithm is not its key's", reason="INVALID_TOKEN")
        claims = self._decode(
            token,
            jwk.key,
            trusted.audience or self.settings.token_audience,
            trusted.issuer,
            ["exp", "iat", "iss", "aud"],
        )
        # The caller is the client the provider authenticated (`azp`/`client_id`), else `sub`.
        client = claims.get("client_id") or claims.get("azp") or claims.get("sub")
        if not isinstance(client, str) or not client:
            raise Unauthenticated("token names no client or subject", reason="INVALID_TOKEN")
        # Role, break-glass and practitioner come from our configuration, never from the
        # external token: another issuer cannot make its clients practitioners or admins.
        return Principal(
            subject=f"{client}@{trusted.issuer}"[:300],
            role=trusted.role,
            scopes=_scopes(claims),
            token_id=claims.get("jti"),
            patient_context=_context(claims, "patient"),
            encounter_context=_context(claims, "encounter"),
        )


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    scope = claims.get("scope", "")
    return frozenset(str(scope).split()) if scope else frozenset()


def _context(claims: dict[str, Any], name: str) -> str | None:
    """A launch context claim (`patient`, `encounter`): a FHIR id, or a relative reference
    `Patient/<id>` as some providers send it, read as the id. Anything else is refused rather
    than ignored: a token whose launch patient cannot be read must not fall back to no limit
    (its `patient/` scopes then open nobody, which is what a missing context does)."""
    context = claims.get(name)
    if context is None or context == "":
        return None
    if not isinstance(context, str):
        raise Unauthenticated(f"the token's {name} claim is not a string", reason="INVALID_TOKEN")
    prefix = "Patient/" if name == "patient" else "Encounter/"
    if context.startswith(prefix):
        context = context[len(prefix) :]
    if not _FHIR_ID.match(context):
        raise Unauthenticated(f"the token's {name} claim is not a FHIR id", reason="INVALID_TOKEN")
    return context


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
