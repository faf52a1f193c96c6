"""The event consumer: applies other services' events exactly once.

For each record, in partition order:
1. decode it (a record that is not a valid event goes to the dead-letter topic at once);
2. in one database transaction, insert its `ce_id` into the inbox and apply its effect; a
   duplicate inbox key means the event was applied before (a redelivery, a replay, a duplicate
   publication), so the transaction is rolled back and the effect is not applied again;
3. after the transaction commits, commit the Kafka offset.

A crash between 2 and 3 redelivers the record, which step 2 absorbs. A database that cannot be
reached stops the partition where it is (the consumer seeks back and retries) instead of skipping
events it could not apply. A handler that keeps failing for another reason sends the record to the
dead-letter topic after `max_attempts`, so one bad event never blocks the patients behind it.

Before anything else, a record must carry a valid signature by the service that owns its topic
(kit.signing): an unsigned or forged record is never applied, whatever the broker let through; it
is dead-lettered with the reason and logged at ERROR (an alert: someone wrote to our topics who
should not have), and counted in `stats.rejected`. The signature is checked before the payload is
parsed, so an attacker's bytes never reach the FHIR parser.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import CommitFailedError, KafkaError, KafkaTimeoutError
from kafka.structs import OffsetAndMetadata
from sqlalchemy import Table, insert
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from iopcare.kit import logcontext, topics, tracing
from iopcare.kit.background import Background
from iopcare.kit.db import Database, UnitOfWork
from iopcare.kit.errors import Aborted, Unavailable
from iopcare.kit.events import PoisonMessage, ReceivedEvent, from_kafka
from iopcare.kit.failpoints import failpoint
from iopcare.kit.payloads import ENCRYPTION_HEADER, PayloadCipher, PayloadError
from iopcare.kit.signing import EventVerifier, SignatureError

log = logging.getLogger(__name__)

Handler = Callable[[UnitOfWork, ReceivedEvent], None]


@dataclass
class ConsumerStats:
    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    skipped: int = 0
    #: Records refused because they were not signed by their topic's owner (forged, or unsigned).
    rejected: int = 0
    #: The ce_ids of the latest redeliveries absorbed by the inbox (for operators and tests).
    recent_duplicates: deque[str] = field(default_factory=lambda: deque(maxlen=1000))


def _transient(exc: BaseException) -> bool:
    """Errors worth retrying without limit: the database is away, or a conflict to redo."""
    if isinstance(exc, (Unavailable, Aborted, OperationalError)):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def _decoded_headers(record: Any) -> dict[str, str]:
    """The record's headers as text; a header that is not UTF-8 is left out (and so is missing
    from what the signature check sees, which then fails)."""
    decoded: dict[str, str] = {}
    for name, raw in record.headers or []:
        try:
            decoded[name] = bytes(raw).decode("utf-8")
        except (UnicodeDecodeError, TypeError):
            continue
    return decoded


class _Retry(Exception):
    """Stop this partition at the current record and retry it after a pause."""


@dataclass(eq=False)
class EventConsumer(Background):
    """Consumes topics for one service; `handlers` maps a `ce_type` to its effect."""

    db: Database
    inbox: Table
    _: KW_ONLY
    name: str
    #: Connection and security options of every client (Settings.kafka_client_options).
    client_options: dict[str, Any] = field(repr=False)  # holds the SASL password
    group_id: str
    topics: list[str]
    handlers: dict[str, Handler]
    #: None only where no record can come from outside (never in a service process).
    verifier: EventVerifier | None
    #: Topic keys to decrypt encrypted values (kit.payloads).
    cipher: PayloadCipher | None = None
    max_attempts: int = 3
    max_message_bytes: int = 1024 * 1024
    on_applied: Callable[[ReceivedEvent], None] | None = None
    stats: ConsumerStats = field(default_factory=ConsumerStats, init=False)
    #: Records not yet handled per (topic, partition), as of the last fetch (kit.metrics).
    lag: dict[tuple[str, int], int] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self._attempts: dict[tuple[str, int, int], int] = {}
        self._consumer: KafkaConsumer | None = None
        self._dlq: KafkaProducer | None = None

    @property
    def thread_name(self) -> str:
        return f"consumer-{self.name}"

    def run(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            try:
                self._consumer = self._connect()
                backoff = 0.2
                while not self._stop.is_set():
                    self.poll_once(timeout_ms=200)
            except KafkaError as exc:
                log.warning("consumer %s: %s; reconnecting", self.name, exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            except Exception:
                log.exception("consumer %s: unexpected error; reconnecting", self.name)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                self._close()

    def _connect(self) -> KafkaConsumer:
        consumer = KafkaConsumer(
            **self.client_options,
            # Fetch a record as large as the producers may publish (one setting for all limits).
            max_partition_fetch_bytes=self.max_message_bytes,
            fetch_max_bytes=max(self.max_message_bytes, 50 * 1024 * 1024),
            group_id=self.group_id,
            client_id=f"{self.group_id}-{self.name}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            allow_auto_create_topics=False,
            max_poll_records=200,
            fetch_max_wait_ms=100,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=1_000,
        )
        # Join the group only once the topics' partitions are known: a member that joins before
        # its metadata arrives is assigned no partitions and may sit idle until the next
        # metadata refresh (minutes), which would look like lost events.
        deadline = time.monotonic() + 30
        while any(not consumer.partitions_for_topic(topic) for topic in self.topics):
            if time.monotonic() > deadline or self._stop.is_set():
                consumer.close(autocommit=False)
                raise KafkaTimeoutError(f"no partition metadata for {self.topics}")
            consumer.poll(timeout_ms=100)  # drives the metadata request without a subscription
        consumer.subscribe(self.topics)
        return consumer

    def _close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            try:
                consumer.close(autocommit=False)
            except Exception:
                log.debug("consumer %s: error on close", self.name, exc_info=True)
        dlq, self._dlq = self._dlq, None
        if dlq is not None:
            try:
                dlq.close(timeout=5)
            except Exception:
                log.debug("consumer %s: error closing DLQ producer", self.name, exc_info=True)

    # One poll ----------------------------------------------------------------------------------
    def poll_once(self, timeout_ms: int = 200) -> int:
        """Polls once, applies what arrived, commits offsets; returns records handled."""
        consumer = self._consumer
        if consumer is None:
            raise RuntimeError("consumer is not connected")
        batches = consumer.poll(timeout_ms=timeout_ms)
        handled = 0
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        retry = False
        for tp, records in batches.items():
            if self._stop.is_set():
                # Stopping: the records not applied yet are delivered again (to this service's
                # next process, or another member of the group) from the last committed offset.
                break
            if records:
                # What was fetched counts as behind until it is handled.
                self._note_lag(consumer, tp, records[0].offset)
            for record in records:
                if self._stop.is_set():
                    break
                failpoint("after_poll_before_effect")
                try:
                    self._handle(record)
                except _Retry:
                    # Rewind to this record so the next poll returns it again; later records of
                    # this partition wait behind it (per-patient order is kept).
                    consumer.seek(tp, record.offset)
                    retry = True
                    break
                handled += 1
                offsets[tp] = OffsetAndMetadata(record.offset + 1, "", -1)
            self._note_lag(consumer, tp, offsets[tp].offset if tp in offsets else None)
        if offsets:
            failpoint("after_effect_before_offset_commit")
            try:
                consumer.commit(offsets)
            except CommitFailedError:
                # The group rebalanced: another member will get these records again, and the
                # inbox makes that harmless.
                log.info("consumer %s: offset commit lost to a rebalance", self.name)
        if retry:
            self._stop.wait(0.5)
        return handled

    def _note_lag(
        self, consumer: KafkaConsumer, tp: TopicPartition, next_offset: int | None
    ) -> None:
        """Records the partition's lag: its high watermark (from the last fetch) minus the next
        offset to handle."""
        highwater = consumer.highwater(tp)
        if highwater is None:
            return
        if next_offset is None:
            # Nothing handled this poll (a retry rewound the partition): as far as it got before.
            next_offset = highwater - self.lag.get((tp.topic, tp.partition), 0)
        self.lag[(tp.topic, tp.partition)] = max(0, highwater - next_offset)

    def _handle(self, record: Any) -> None:
        event_type = next((v for k, v in record.headers or [] if k == "ce_type"), None)
        if event_type is not None and bytes(event_type).decode("utf-8", "replace") not in (
            self.handlers
        ):
            # Event types this service does not act on (or does not know yet: a newer producer)
            # are skipped before their FHIR payload is parsed: valid or not, they are not ours.
            self.stats.skipped += 1
            return
        try:
            value = self._verified_value(record)
        except (SignatureError, PayloadError) as exc:
            # Same last-wins header decoding as from_kafka below: what was verified is what is
            # applied, even if someone appended a second ce_type to a signed record.
            self.stats.rejected += 1
            kind = "forged" if isinstance(exc, SignatureError) else "undecryptable"
            self._dead_letter(record, f"{kind}: {exc}")
            return
        try:
            received = from_kafka(
                record.topic,
                record.partition,
                record.offset,
                record.key,
                value,
                list(record.headers or []),
                max_bytes=self.max_message_bytes,
            )
        except PoisonMessage as exc:
            self._dead_letter(record, f"poison: {exc}")
            return
        self._apply_or_retry(record, received)

    def _verified_value(self, record: Any) -> bytes | None:
        """The record's value once its signature is verified, decrypted if it was encrypted;
        raises SignatureError or PayloadError."""
        headers = _decoded_headers(record)
        value: bytes | None = record.value
        if self.verifier is not None:
            owner = self.verifier.verify(
                record.topic, headers, record.key or b"", record.value or b""
            )
        else:
            owner = headers.get("ce_source", "").removeprefix("/iopcare/")
        if ENCRYPTION_HEADER in headers:
            if self.cipher is None:
                raise PayloadError("the value is encrypted and this service holds no keys")
            value = self.cipher.open(owner, headers.get("ce_id", ""), value or b"")
        return value

    def _apply_or_retry(self, record: Any, received: ReceivedEvent) -> None:
        """Applies a verified event: counts it applied or duplicate, or raises _Retry, or
        dead-letters it after `max_attempts` failures."""
        handler = self.handlers[received.event.type]
        attempt_key = (record.topic, record.partition, record.offset)
        try:
            # A consumer span under the event's trace (kit.tracing); the handler's log lines
            # carry the event's id and trace (kit.logcontext).
            with (
                tracing.span(
                    f"{self.name} apply {received.event.type}",
                    tracing.CONSUMER,
                    received.event.traceparent,
                    {"messaging.destination.name": received.topic, "iopcare.service": self.name},
                ),
                logcontext.bound(
                    received.event.id, logcontext.trace_id_of(received.event.traceparent)
                ),
            ):
                applied = self._apply(handler, received)
        except Exception as exc:
            if _transient(exc):
                # Never skip past an event that could not be applied for a passing reason: the
                # partition waits here (test-matrix A13). Only the type is logged: the message of
                # a database error can quote the statement's parameters.
                log.warning(
                    "consumer %s: %s while applying; will retry", self.name, type(exc).__name__
                )
                raise _Retry from None
            attempts = self._attempts.get(attempt_key, 0) + 1
            self._attempts[attempt_key] = attempts
            if attempts < self.max_attempts:
                log.warning(
                    "consumer %s: handler for %s failed (attempt %d): %s",
                    self.name,
                    received.event.type,
                    attempts,
                    type(exc).__name__,
                )
                raise _Retry from None
            self._attempts.pop(attempt_key, None)
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            self._dead_letter(record, f"handler failed {attempts} times: {detail}")
            return
        self._attempts.pop(attempt_key, None)
        if applied:
            self.stats.applied += 1
            if self.on_applied is not None:
                self.on_applied(received)
        else:
            self.stats.duplicates += 1
            self.stats.recent_duplicates.append(received.event.id)

    def _apply(self, handler: Handler, received: ReceivedEvent) -> bool:
        """Applies the event once; returns False when the inbox shows it was applied before."""
        event = received.event
        with UnitOfWork(self.db) as uow:
            try:
                uow.conn.execute(
                    insert(self.inbox).values(
                        consumer=self.name,
                        event_id=event.id,
                        event_type=event.type,
                        topic=received.topic,
                        partition=received.partition,
                        offset=received.offset,
                        applied_at=datetime.now(UTC),
                    )
                )
            except IntegrityError:
                return False
            handler(uow, received)
            uow.commit()
        return True

    def _dead_letter(self, record: Any, reason: str) -> None:
        """Parks the record on the dead-letter topic with the reason; retries until it is sent."""
        headers = [*list(record.headers or []), ("iopcare_dlq_reason", reason[:1000].encode())]
        origin = f"{record.topic}/{record.partition}/{record.offset}"
        headers.append(("iopcare_dlq_origin", origin.encode()))
        target = topics.dead_letter(record.topic)
        sent = False
        while not self._stop.is_set():
            try:
                if self._dlq is None:
                    self._dlq = KafkaProducer(
                        **self.client_options,
                        max_request_size=self.max_message_bytes,
                        enable_idempotence=True,
                        acks="all",
                        max_block_ms=5_000,
                    )
                self._dlq.send(target, key=record.key, value=record.value, headers=headers).get(
                    timeout=15
                )
                sent = True
                break
            except KafkaError:
                log.warning("consumer %s: dead-letter publish failed; retrying", self.name)
                time.sleep(0.5)
        if not sent:
            raise _Retry  # stopping: leave the offset uncommitted so the record is not lost
        # An alert for operators: poison messages mean a producer is broken.
        log.error(
            "consumer %s: record %s/%d/%d dead-lettered to %s: %s",
            self.name,
            record.topic,
            record.partition,
            record.offset,
            target,
            reason[:200],
        )
        self.stats.dead_lettered += 1
