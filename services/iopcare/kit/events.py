"""The event envelope: CloudEvents 1.0 in Kafka's binary content mode.

An event is one FHIR resource as stored (the Kafka value) with CloudEvents attributes as headers
(`ce_id`, `ce_type`, `ce_source`, `ce_time`, `ce_subject`, `ce_specversion`, `content-type`) and a
W3C `traceparent`. The key is the patient's id, so one patient's events stay on one partition and
in order (docs/events.md).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Table, insert, text

from iopcare.kit import fhir, logcontext
from iopcare.kit.db import as_utc

SPECVERSION = "1.0"
_REQUIRED_HEADERS = ("ce_id", "ce_type", "ce_source", "ce_specversion", "ce_time", "ce_subject")
#: Longest accepted value of each attribute (the inbox and outbox columns' sizes).
_MAX_LENGTH = {"ce_id": 64, "ce_type": 200, "ce_source": 200, "ce_subject": 400, "key": 64}


class PoisonMessage(ValueError):
    """A Kafka record that is not a valid iopcare event; it goes to the dead-letter topic."""


def new_traceparent() -> str:
    """The current span's traceparent (an event written during a call continues its trace,
    kit.tracing), else a new trace."""
    from iopcare.kit import tracing

    return tracing.current_traceparent() or f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def child_traceparent(parent: str | None) -> str:
    """A traceparent in the same trace as `parent` (a new trace when there is none): the current
    span's, when it belongs to that trace (a consumer's span, kit.tracing), so the next hop hangs
    from a span that is recorded."""
    trace = logcontext.trace_id_in(parent)
    if trace:
        from iopcare.kit import tracing

        current = tracing.current_traceparent()
        if current and current[3:35] == trace:
            return current
        return f"00-{trace}-{secrets.token_hex(8)}-01"
    return new_traceparent()


@dataclass(frozen=True)
class Event:
    """One event: what happened (`type`), to what (`subject`), and the resource as it now is."""

    type: str
    source: str
    subject: str
    key: str
    data: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    traceparent: str = field(default_factory=new_traceparent)
    content_type: str = fhir.MEDIA_TYPE

    def headers(self) -> list[tuple[str, bytes]]:
        return [
            ("ce_specversion", SPECVERSION.encode()),
            ("ce_id", self.id.encode()),
            ("ce_type", self.type.encode()),
            ("ce_source", self.source.encode()),
            ("ce_time", _format_time(self.time).encode()),
            ("ce_subject", self.subject.encode()),
            ("content-type", self.content_type.encode()),
            ("traceparent", self.traceparent.encode()),
        ]

    def resource(self) -> fhir.Resource:
        return fhir.parse_resource(self.data)


@dataclass(frozen=True)
class ReceivedEvent:
    """An event read from Kafka, with the parsed resource and where it came from."""

    event: Event
    resource: fhir.Resource
    topic: str
    partition: int
    offset: int


def _format_time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("ce_time has no time zone")
    return parsed


def from_kafka(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    headers: list[tuple[str, bytes]],
    max_bytes: int = fhir.DEFAULT_MAX_BYTES,
) -> ReceivedEvent:
    """Decodes and validates a record; raises PoisonMessage with the reason when it is not ours.

    `max_bytes` is the largest value accepted: the consumers pass the same limit the producers
    publish under (Settings.kafka_max_message_bytes), so what one side sends the other takes.
    """
    decoded: dict[str, str] = {}
    for name, raw in headers or []:
        try:
            decoded[name] = raw.decode("utf-8")
        except (UnicodeDecodeError, AttributeError):
            raise PoisonMessage(f"header {name} is not UTF-8") from None
    missing = [name for name in _REQUIRED_HEADERS if not decoded.get(name)]
    if missing:
        raise PoisonMessage(f"missing CloudEvents headers: {', '.join(missing)}")
    too_long = [n for n, limit in _MAX_LENGTH.items() if len(decoded.get(n, "")) > limit]
    if key is not None and len(key) > _MAX_LENGTH["key"]:
        too_long.append("key")
    if too_long:
        raise PoisonMessage(f"attributes too long: {', '.join(too_long)}")
    if decoded["ce_specversion"] != SPECVERSION:
        raise PoisonMessage(f"unsupported ce_specversion {decoded['ce_specversion']!r}")
    content_type = decoded.get("content-type", "")
    if content_type.split(";")[0].strip() != fhir.MEDIA_TYPE:
        raise PoisonMessage(f"unsupported content-type {content_type!r}")
    if key is None or not key:
        raise PoisonMessage("record has no key (patient id)")
    if value is None:
        raise PoisonMessage("record has no value")
    try:
        time = _parse_time(decoded["ce_time"])
        key_text = key.decode("utf-8")
        resource = fhir.parse_resource(value, max_bytes=max_bytes)
    except (ValueError, fhir.FhirError) as exc:
        raise PoisonMessage(f"invalid event payload: {exc}") from None
    event = Event(
        type=decoded["ce_type"],
        source=decoded["ce_source"],
        subject=decoded["ce_subject"],
        key=key_text,
        data=value.decode("utf-8"),
        id=decoded["ce_id"],
        time=time,
        traceparent=decoded.get("traceparent") or new_traceparent(),
        content_type=content_type,
    )
    return ReceivedEvent(event, resource, topic, partition, offset)


#: The outbox's columns (besides its id, topic and sending state) -> the Event fields they hold.
_OUTBOX_COLUMNS = {
    "event_id": "id",
    "key": "key",
    "event_type": "type",
    "source": "source",
    "subject": "subject",
    "time": "time",
    "traceparent": "traceparent",
    "content_type": "content_type",
    "payload": "data",
}

#: Namespace of the per-key transaction locks below (pg_advisory_xact_lock(int, int)).
_OUTBOX_LOCK_SPACE = 0x10C


def append_to_outbox(conn: Connection, outbox: Table, topic: str, event: Event) -> None:
    """Writes the event in the caller's transaction: it is published if and only if they commit.

    On PostgreSQL the outbox id comes from a sequence when the row is inserted, not when it
    commits: two transactions about one patient could commit in the opposite order of their ids,
    and the relay, publishing by id, would invert them. A transaction lock on the key, taken just
    before the insert and held to commit, makes one patient's outbox rows commit in id order.
    (SQLite has a single writer, so commit order is insert order already.)
    """
    if conn.dialect.name == "postgresql":
        digest = hashlib.blake2b(event.key.encode(), digest_size=4).digest()
        conn.execute(
            text("SELECT pg_advisory_xact_lock(:space, :key)"),
            {"space": _OUTBOX_LOCK_SPACE, "key": int.from_bytes(digest, "big", signed=True)},
        )
    columns = {column: getattr(event, name) for column, name in _OUTBOX_COLUMNS.items()}
    conn.execute(insert(outbox).values(topic=topic, **columns))


def event_from_outbox_row(row: Any) -> Event:
    fields = {name: getattr(row, column) for column, name in _OUTBOX_COLUMNS.items()}
    fields["time"] = as_utc(row.time)
    fields["traceparent"] = row.traceparent or new_traceparent()
    return Event(**fields)
