"""Event signatures and payload encryption (kit.signing, kit.payloads), without a broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from iopcare.kit import payloads, signing, topics
from iopcare.kit.events import Event
from iopcare.kit.settings import Settings


def _event() -> Event:
    return Event(
        type="iopcare.careplan.careteam.updated.v1",
        source="/iopcare/careplan",
        subject="CareTeam/t1/_history/2",
        key="pat-1",
        data='{"resourceType": "CareTeam", "id": "t1"}',
    )


def _record(settings: Settings, service: str, event: Event) -> dict[str, str]:
    headers = [*event.headers(), *signing.signer_for(settings, service).headers(event)]
    return {name: value.decode() for name, value in headers}


def test_an_event_signed_by_its_topic_owner_verifies(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    event = _event()
    verifier = signing.verifier_for(settings)
    owner = verifier.verify(
        topics.CAREPLAN, _record(settings, "careplan", event), b"pat-1", event.data.encode()
    )
    assert owner == "careplan"


@pytest.mark.parametrize(
    "change",
    [
        {"ce_type": "iopcare.careplan.careteam.created.v1"},
        {"ce_subject": "CareTeam/t1/_history/9999"},
        {"ce_id": "another-id"},
        {"ce_time": "2030-01-01T00:00:00.000000Z"},
    ],
)
def test_any_change_to_a_signed_attribute_breaks_the_signature(
    tmp_path: Path, change: dict[str, str]
) -> None:
    settings = Settings(data_dir=tmp_path)
    event = _event()
    headers = {**_record(settings, "careplan", event), **change}
    with pytest.raises(signing.SignatureError):
        signing.verifier_for(settings).verify(
            topics.CAREPLAN, headers, b"pat-1", event.data.encode()
        )


def test_another_key_or_value_or_topic_breaks_the_signature(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    event = _event()
    headers = _record(settings, "careplan", event)
    verifier = signing.verifier_for(settings)
    with pytest.raises(signing.SignatureError):
        verifier.verify(topics.CAREPLAN, headers, b"pat-2", event.data.encode())
    with pytest.raises(signing.SignatureError):
        verifier.verify(topics.CAREPLAN, headers, b"pat-1", event.data.encode() + b" ")
    # careplan's valid record replayed onto notes' topic: not notes' signature, not notes' source.
    with pytest.raises(signing.SignatureError):
        verifier.verify(topics.NOTES, headers, b"pat-1", event.data.encode())


def test_a_service_cannot_sign_for_another_topic(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    event = _event()
    with pytest.raises(signing.SignatureError, match="signature does not verify"):
        signing.verifier_for(settings).verify(
            topics.CAREPLAN, _record(settings, "notes", event), b"pat-1", event.data.encode()
        )


def test_configured_keys_are_never_generated(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, event_keys_dir=tmp_path / "keys")
    with pytest.raises(RuntimeError, match="cannot load"):
        signing.signer_for(settings, "careplan")


def test_an_encrypted_value_opens_only_with_its_key_and_event(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, event_encryption=True)
    cipher = payloads.cipher_for(settings)
    assert cipher is not None
    sealed = cipher.seal("careplan", "e1", b'{"resourceType": "CarePlan"}')
    assert b"CarePlan" not in sealed
    assert cipher.open("careplan", "e1", sealed) == b'{"resourceType": "CarePlan"}'
    with pytest.raises(payloads.PayloadError):
        cipher.open("careplan", "e2", sealed)  # moved into another event
    with pytest.raises(payloads.PayloadError):
        cipher.open("notes", "e1", sealed)
    assert payloads.cipher_for(Settings(data_dir=tmp_path)) is None
