"""Event signatures: consumers check who produced an event, independently of the broker.

Broker ACLs decide who may write a topic, but a consumer that trusted them alone would apply
whatever a mis-configured ACL, a leaked broker password or a compromised broker let through: a
forged CareTeam event grants a stranger access to a patient's thread (issue 10, defect 6). So each
service signs every event it publishes with its own Ed25519 key, and every consumer verifies:

- that the record carries a signature (`iopcare_sig`) by the service that owns the topic it was
  read from (a service may only speak on its own topic: careplan's key never validates an event on
  notes' topic);
- that `ce_source` names that same service;
- that the signature covers the CloudEvents attributes that decide what a consumer does with the
  record (`ce_id`, `ce_type`, `ce_source`, `ce_subject`, `ce_time`, `content-type`), the key
  (the patient, hence the partition) and the value.

Ed25519 rather than HMAC: with a shared secret every consumer of careplan's topic could also forge
careplan's events; with public keys a consumer can only verify. Keys live in one folder
(`IOPCARE_EVENT_KEYS_DIR`): `<service>.pem` is the service's private key (only that service's
pods mount it), `<service>.pub.pem` the public keys every consumer reads. Without the setting, a
development folder under the data folder is used, and missing key pairs are generated there.

A signed record keeps its signature through the dead-letter topic, so an operator can replay it
to its topic unchanged; a replayed duplicate is absorbed by the inbox as any other.
"""

from __future__ import annotations

import base64
import contextlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from iopcare.kit import topics
from iopcare.kit.events import Event
from iopcare.kit.settings import ConfigurationError, Settings

#: Header carrying the producer's signature: `ed25519:<base64>`.
SIGNATURE_HEADER = "iopcare_sig"
_SCHEME = "ed25519:"
#: Domain separation: a signature over an event can never be reused for anything else.
_CONTEXT = b"iopcare-event-signature-v1"
#: The attributes signed, in this order (with the key and the value after them).
SIGNED_HEADERS = ("ce_id", "ce_type", "ce_source", "ce_subject", "ce_time", "content-type")

#: Which service owns (produces on) each topic, by logical name.
TOPIC_OWNERS = {topics.CAREPLAN: "careplan", topics.SCHEDULING: "scheduling", topics.NOTES: "notes"}
SERVICES = tuple(TOPIC_OWNERS.values())


class SignatureError(ValueError):
    """The record was not produced by the service that owns its topic; never applied."""


def source_of(service: str) -> str:
    """The `ce_source` of the service's events (`/iopcare/careplan`)."""
    return f"/iopcare/{service}"


def signed_bytes(headers: dict[str, str], key: bytes, value: bytes) -> bytes:
    """The bytes a signature covers; each part length-prefixed, so no two records share them."""
    parts = [
        _CONTEXT,
        *(headers.get(name, "").encode("utf-8") for name in SIGNED_HEADERS),
        key,
        value,
    ]
    return b"".join(len(part).to_bytes(8, "big") + part for part in parts)


@dataclass(frozen=True)
class EventSigner:
    """Signs the events of one service (its relay holds one)."""

    service: str
    private_key: Ed25519PrivateKey = field(repr=False)

    def sign(self, headers: list[tuple[str, bytes]], key: bytes, value: bytes) -> bytes:
        decoded = {name: raw.decode("utf-8") for name, raw in headers}
        signature = self.private_key.sign(signed_bytes(decoded, key, value))
        return (_SCHEME + base64.b64encode(signature).decode("ascii")).encode("ascii")

    def headers(self, event: Event) -> list[tuple[str, bytes]]:
        """The signature header of an event, to append to `event.headers()`."""
        signature = self.sign(event.headers(), event.key.encode("utf-8"), event.data.encode())
        return [(SIGNATURE_HEADER, signature)]


class EventVerifier:
    """Checks that a record was signed by the owner of the topic it was read from."""

    def __init__(self, public_keys: dict[str, Ed25519PublicKey], topic_prefix: str = "") -> None:
        self.public_keys = public_keys
        self._owners = {topics.physical(topic_prefix, t): s for t, s in TOPIC_OWNERS.items()}

    def verify(self, topic: str, headers: dict[str, str], key: bytes, value: bytes) -> str:
        """Returns the producing service; raises SignatureError for anything else."""
        owner = self._owners.get(topic.removesuffix(".dlq"))
        if owner is None:
            raise SignatureError(f"no producer is known for topic {topic}")
        if headers.get("ce_source") != source_of(owner):
            raise SignatureError(
                f"signature check: ce_source {headers.get('ce_source')!r} is not the owner of"
                f" {topic} ({source_of(owner)})"
            )
        raw = headers.get(SIGNATURE_HEADER)
        if not raw:
            raise SignatureError("signature missing: the record is unsigned")
        if not raw.startswith(_SCHEME):
            raise SignatureError("signature has an unknown scheme")
        public_key = self.public_keys.get(owner)
        if public_key is None:
            raise SignatureError(f"signature check: no public key for {owner}")
        try:
            signature = base64.b64decode(raw[len(_SCHEME) :], validate=True)
            public_key.verify(signature, signed_bytes(headers, key, value))
        except (InvalidSignature, ValueError):
            raise SignatureError(f"signature does not verify with {owner}'s key") from None
        return owner


# Keys -------------------------------------------------------------------------------------------
def keys_dir(settings: Settings) -> tuple[Path, bool]:
    """The key folder, and whether it is the development one (where keys may be generated)."""
    if settings.event_keys_dir is not None:
        return Path(settings.event_keys_dir), False
    if not settings.dev_mode:
        # Never generate keys outside development mode (Settings.require_keys says the same at
        # startup; this guards any other way in).
        raise ConfigurationError("set IOPCARE_EVENT_KEYS_DIR (or IOPCARE_DEV_MODE=true)")
    return settings.dev_key_dir / "events", True


def signer_for(settings: Settings, service: str) -> EventSigner:
    """The signer of `service`'s events, from its private key file."""
    folder, development = keys_dir(settings)
    path = folder / f"{service}.pem"
    if development:
        _ensure_dev_keypair(folder, service)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"cannot load the event signing key {path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise RuntimeError(f"{path} is not an Ed25519 private key")
    return EventSigner(service, key)


def verifier_for(settings: Settings) -> EventVerifier:
    """A verifier holding every producer's public key."""
    folder, development = keys_dir(settings)
    public_keys: dict[str, Ed25519PublicKey] = {}
    for service in SERVICES:
        if development:
            _ensure_dev_keypair(folder, service)
        path = folder / f"{service}.pub.pem"
        try:
            key = serialization.load_pem_public_key(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise RuntimeError(f"cannot load the event verification key {path}: {exc}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise RuntimeError(f"{path} is not an Ed25519 public key")
        public_keys[service] = key
    return EventVerifier(public_keys, settings.topic_prefix)


def _ensure_dev_keypair(folder: Path, service: str) -> None:
    """Generates the service's development key pair once. Several processes of one `make run`
    share the folder and may race here: each file is written to a temporary name and linked into
    place, so whoever links first wins and everyone reads the same, complete key."""
    private_path = folder / f"{service}.pem"
    public_path = folder / f"{service}.pub.pem"
    if private_path.is_file() and public_path.is_file():
        return
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not private_path.is_file():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        link_new_file(private_path, pem, 0o600)
    private = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
    assert isinstance(private, Ed25519PrivateKey)
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    link_new_file(public_path, public, 0o644)


def link_new_file(path: Path, content: bytes, mode: int) -> None:
    """Creates `path` with `content` unless it exists, atomically (a reader never sees half)."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        os.write(fd, content)
        os.close(fd)
        # Another process may have been first: its key is the one.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        os.unlink(temporary)
