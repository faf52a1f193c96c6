"""No secret shows in the repr of a kit object (a repr lands in logs, tracebacks and debuggers):
the Kafka SASL password, the AES topic keys, the event signing key, a database password."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from sqlalchemy import MetaData, Table

from iopcare.kit.consumer import EventConsumer
from iopcare.kit.db import Database
from iopcare.kit.payloads import PayloadCipher
from iopcare.kit.relay import OutboxRelay
from iopcare.kit.signing import EventSigner

_PASSWORD = "kafka-pa55word"
_TOPIC_KEY = bytes(range(32))


def _secrets(signing_key: Ed25519PrivateKey) -> list[str]:
    raw = signing_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return [_PASSWORD, repr(_TOPIC_KEY), _TOPIC_KEY.hex(), repr(raw), raw.hex(), "db-pa55word"]


def _database(tmp_path: Path) -> Database:
    return Database(f"sqlite:///{tmp_path / 'x.db'}")


def test_consumer_and_relay_reprs_hold_no_secret(tmp_path: Path) -> None:
    signing_key = Ed25519PrivateKey.generate()
    cipher = PayloadCipher(keys={"careplan": _TOPIC_KEY})
    consumer = EventConsumer(
        _database(tmp_path),
        Table("inbox", MetaData()),
        name="careplan",
        client_options={"bootstrap_servers": "kafka:9093", "sasl_plain_password": _PASSWORD},
        group_id="careplan",
        topics=["scheduling.events"],
        handlers={},
        verifier=None,
        cipher=cipher,
    )
    relay = OutboxRelay(
        _database(tmp_path),
        Table("outbox", MetaData()),
        lambda: None,  # never called: the relay is not started
        signer=EventSigner("careplan", signing_key),
        cipher=cipher,
    )
    for text in (repr(consumer), repr(relay), repr(cipher), repr(relay.signer)):
        for secret in _secrets(signing_key):
            assert secret not in text, text
    # The reprs still say what the object is.
    assert "careplan" in repr(consumer)
    assert "PayloadCipher" in repr(cipher)


def test_database_repr_holds_no_password() -> None:
    # Creating the engine opens no connection: nothing needs to listen on db:5432.
    database = Database("postgresql+psycopg://careplan:db-pa55word@db:5432/careplan")
    assert "db-pa55word" not in repr(database)
    assert "Database" in repr(database)


def test_service_settings_repr_holds_no_database_password() -> None:
    from iopcare.kit.settings import ServiceSettings

    settings = ServiceSettings(
        name="careplan", database_url="postgresql+psycopg://careplan:db-pa55word@db/careplan"
    )
    assert "db-pa55word" not in repr(settings)
    assert "db-pa55word" not in str(settings)
