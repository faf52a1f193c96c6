"""Event payloads encrypted on the topics (IOPCARE_EVENT_ENCRYPTION; issue 10, defect 6).

SASL and ACLs keep strangers off the brokers, but the records still sit in clear on the brokers'
disks, in their backups, and in front of every operator with the super user's password, and a
careplan or scheduling event shows substance-use treatment (42 CFR Part 2) in its plan titles and
session names. With encryption on, each producing service encrypts the value of every event it
publishes with its topic key (AES-256-GCM, a fresh 96-bit nonce per record); only the services
that consume the topic hold that key.

Every payload, not only those labelled: derived records are exactly where labels went missing
(issue 10, defect 10), so a rule based on labels would leak what was mislabelled; the cost, a few
microseconds a record, does not justify the risk. What stays in clear: the key (the patient's id,
needed for partitioning), the CloudEvents headers (event type, subject `CarePlan/{id}/_history/n`)
and the record's size and time.

The nonce and the tag travel with the value (`nonce || ciphertext || tag`), marked by the
`iopcare_enc` header; the associated data binds the ciphertext to the event's id and its producer,
so it cannot be moved into another event. The producer signs the encrypted value (kit.signing):
consumers verify first, then decrypt. A record without the header is accepted when its signature
is valid (a producer that has not turned encryption on yet, or a replayed older record).

Keys: `<service>.topic.key` (32 random bytes, base64) in the event key folder
(`IOPCARE_EVENT_KEYS_DIR`); in development generated under the data folder. Rotation (several
keys, chosen by a key id) is not implemented yet.
"""

from __future__ import annotations

import base64
import os
import secrets
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from iopcare.kit.settings import Settings
from iopcare.kit.signing import SERVICES, keys_dir, link_new_file

#: Header marking an encrypted value, with its algorithm.
ENCRYPTION_HEADER = "iopcare_enc"
ALGORITHM = "A256GCM"
_NONCE_BYTES = 12
_CONTEXT = b"iopcare-event-payload-v1"


class PayloadError(ValueError):
    """An encrypted value that cannot be decrypted (wrong key, altered): never applied."""


@dataclass(frozen=True)
class PayloadCipher:
    """The topic keys this process holds: its own (to encrypt) and those it consumes."""

    #: Raw AES keys: kept out of the repr (logs, tracebacks).
    keys: dict[str, bytes] = field(repr=False)

    def seal(self, service: str, event_id: str, plaintext: bytes) -> bytes:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return nonce + AESGCM(self.keys[service]).encrypt(
            nonce, plaintext, _associated(service, event_id)
        )

    def open(self, service: str, event_id: str, sealed: bytes) -> bytes:
        key = self.keys.get(service)
        if key is None:
            raise PayloadError(f"no topic key for {service}")
        try:
            return AESGCM(key).decrypt(
                sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], _associated(service, event_id)
            )
        except (InvalidTag, ValueError):
            raise PayloadError(f"the value does not decrypt with {service}'s topic key") from None


def _associated(service: str, event_id: str) -> bytes:
    return b"\0".join((_CONTEXT, service.encode(), event_id.encode()))


def cipher_for(settings: Settings) -> PayloadCipher | None:
    """The topic keys, when IOPCARE_EVENT_ENCRYPTION is on (else None: values in clear)."""
    if not settings.event_encryption:
        return None
    folder, development = keys_dir(settings)
    keys: dict[str, bytes] = {}
    for service in SERVICES:
        path = folder / f"{service}.topic.key"
        if development and not path.is_file():
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            link_new_file(path, base64.b64encode(os.urandom(32)) + b"\n", 0o600)
        if not path.is_file():
            # A process holds only the keys of the topics it touches (production mounts those).
            continue
        key = base64.b64decode(path.read_bytes().strip())
        if len(key) != 32:
            raise RuntimeError(f"{path} does not hold a 256-bit key (base64)")
        keys[service] = key
    return PayloadCipher(keys)
