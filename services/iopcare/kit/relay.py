"""The outbox relay: publishes committed outbox rows to Kafka, then marks them sent.

Order of operations, and why:
1. read unsent rows by id (commit order);
2. send them all with an idempotent producer (`acks=all`) and wait for every acknowledgement;
3. mark the acknowledged rows sent.

A crash before 2 loses nothing: the rows are still unsent and go out after restart. A crash
between 2 and 3 publishes them again after restart: a duplicate on the topic, which consumers
absorb through their inbox. A broker that is down makes step 2 fail; the relay closes its
producer (dropping anything half-sent), backs off and retries the same rows, so API writes, which
only touch the database, keep succeeding while the backlog waits.

A record the brokers can never take (larger than `kafka_max_message_bytes`, refused as invalid)
would otherwise be retried forever and stop every event behind it (issue 10, defect 7). Such a
row is **parked** instead: marked with `parked_at` and the error, logged at ERROR and counted
(`OutboxRelay.parked`), and skipped from then on; `iopcare outbox parked|retry SERVICE` lists and
releases parked rows. Per-patient order is kept: while a key has a parked row, that key's later
rows are held back (not published, not parked), since a consumer that saw a patient's later
events without the earlier one could apply them in an order nobody wrote. Other patients' rows
flow. Transient errors (broker away) still stop the whole batch and retry it, as before.

Every record is signed with the service's event key (kit.signing), so consumers can tell it
came from the topic's owner.

Only one relay may publish a database's outbox at a time, or two could interleave one patient's
events. On PostgreSQL the relay holds a session-level advisory lock while it publishes, and
replicas that do not hold it stand by; on SQLite the processes of a service (ADR 0026) do the same
with a file lock (`flock` on `<database>.relay.lock`).

**Taking over** (ADR 0018). A relay killed between 2 and 3 leaves its last batch unmarked. With a
`reader_factory`, the relay that next takes the lease (another replica, or the same service
restarted) first reads the tail of the topic's partitions back (the last `batch_size` records of
each: only this service's relay writes there, and its last batch was at most that many) and marks
the unsent rows whose event id it finds there as sent, so the takeover publishes none of them a
second time. Before reading it waits `settle_seconds`, for the produce requests a dead relay had
already sent to land; one that lands later still is published again (a duplicate, never a
loss), so "once on the topic" is the usual outcome, not a guarantee. What this does not
cover either: a relay that is still alive (paused, or cut off from PostgreSQL) when another
takes over may still publish a batch the new one has published; consumers' inboxes absorb such a
copy, as before.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import (
    InvalidRecordError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    TopicAuthorizationFailedError,
)
from sqlalchemy import Connection, Table, and_, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from iopcare.kit import topics
from iopcare.kit.background import Background
from iopcare.kit.db import Database
from iopcare.kit.errors import IopcareError
from iopcare.kit.events import event_from_outbox_row
from iopcare.kit.failpoints import failpoint
from iopcare.kit.payloads import ALGORITHM, ENCRYPTION_HEADER, PayloadCipher
from iopcare.kit.settings import Settings
from iopcare.kit.signing import SIGNATURE_HEADER, TOPIC_OWNERS, EventSigner

log = logging.getLogger(__name__)

ProducerFactory = Callable[[], KafkaProducer]
ReaderFactory = Callable[[], KafkaConsumer]


#: Errors about one record that no retry can cure: the record is parked, not retried.
PERMANENT_RECORD_ERRORS: tuple[type[KafkaError], ...] = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    InvalidRecordError,
)


def make_reader(settings: Settings, client_id: str) -> KafkaConsumer:
    """A group-less consumer the relay reads its own topic's tail with when it takes over."""
    return KafkaConsumer(
        **settings.kafka_client_options(),
        client_id=client_id,
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=settings.kafka_max_message_bytes + 64 * 1024,
        fetch_max_bytes=max(52_428_800, settings.kafka_max_message_bytes + 64 * 1024),
        request_timeout_ms=10_000,
    )


def make_producer(settings: Settings, client_id: str) -> KafkaProducer:
    return KafkaProducer(
        **settings.kafka_client_options(),
        client_id=client_id,
        # The same limit as the broker's and the topics' (settings.kafka_max_message_bytes), so
        # the producer itself refuses a record the broker would refuse, before anything is sent.
        max_request_size=settings.kafka_max_message_bytes,
        # Idempotence: the broker drops a retried batch it already has, so the producer's own
        # retries never duplicate (the relay's re-publication after a crash still can).
        enable_idempotence=True,
        acks="all",
        linger_ms=2,
        max_block_ms=5_000,
        request_timeout_ms=5_000,
        delivery_timeout_ms=15_000,
        reconnect_backoff_max_ms=1_000,
    )


@dataclass(eq=False)
class OutboxRelay(Background):
    """Publishes one database's outbox; runs in a thread of the service process."""

    db: Database
    outbox: Table
    producer_factory: ProducerFactory
    _: KW_ONLY
    batch_size: int = 500
    idle_seconds: float = 0.05
    max_backoff_seconds: float = 5.0
    lock_name: str = "outbox"
    topic_prefix: str = ""
    #: Signs each record as this service's (None only in tests that never reach a consumer).
    signer: EventSigner | None = None
    #: Encrypts each value with the topic key (IOPCARE_EVENT_ENCRYPTION), before signing.
    cipher: PayloadCipher | None = None
    #: Reads the topic's tail back when this relay takes over (module docstring); None: a
    #: takeover publishes the in-doubt rows again.
    reader_factory: ReaderFactory | None = None
    settle_seconds: float = 1.0
    #: Told after each batch is acknowledged: its duration and the rows' event times
    #: (kit.metrics.ServiceMetrics.observe_publish).
    on_published: Callable[[float, list[datetime]], None] | None = field(default=None, init=False)
    published: int = field(default=0, init=False)
    #: Rows parked by this relay since it started (each also logged at ERROR): an alert.
    parked: int = field(default=0, init=False)
    #: Rows a takeover found already on the topic and marked sent.
    reconciled: int = field(default=0, init=False)
    thread_name = "outbox-relay"

    def __post_init__(self) -> None:
        self._lock_key = zlib.crc32(f"iopcare-relay:{self.lock_name}".encode())
        #: Set whenever this relay (re)takes the outbox: the next batch is checked against the
        #: topic's tail first.
        self._taking_over = True
        self._lease: Connection | None = None
        #: On SQLite: the descriptor holding the relay's file lock.
        self._lease_fd: int | None = None
        self._producer: KafkaProducer | None = None
        self._wake = threading.Event()
        #: Passes left that publish one row each, to find which record the broker refused.
        self._isolate = 0

    # Lifecycle ---------------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Stops the relay after its current batch (see `stop`), without waiting."""
        super().request_stop()
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> bool:
        if not super().stop(timeout):
            # Still in a batch at the deadline: its rows stay unsent (published again by the
            # next relay, deduplicated by the consumers); the lease goes with the connection
            # when the process exits, and is not the stopping thread's to touch meanwhile.
            log.warning("relay: still publishing at the stop deadline; left to the next relay")
            return False
        self._close_producer()
        self._release_lease()
        return True

    def notify(self) -> None:
        """Tells the relay a new row was committed, so it need not wait for its next scan."""
        self._wake.set()

    def run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                sent = self.publish_pending()
                backoff = 0.1
                if sent == 0:
                    self._wake.wait(self.idle_seconds)
                    self._wake.clear()
            except (KafkaError, IopcareError, SQLAlchemyError, OSError) as exc:
                log.warning("relay: %s; retrying in %.1fs", type(exc).__name__, backoff)
                # Part of a failed batch may be on the topic: check it before publishing again.
                self._taking_over = True
                self._close_producer()
                # The lease connection may have died with the database: take it again.
                self._release_lease()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff_seconds)
            except Exception:
                # An unexpected bug must not kill the thread and silently stop all publishing.
                log.exception("relay: unexpected error; retrying")
                self._close_producer()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff_seconds)

    # One pass ----------------------------------------------------------------------------------
    def publish_pending(self) -> int:
        """Publishes up to one batch of unsent rows; returns how many were published or parked."""
        if not self._hold_lease():
            return 0
        rows = self._unsent_rows()
        if not rows:
            return 0
        if not self._lease_still_held():
            return 0
        if self._taking_over:
            found = self._already_on_topic(rows)
            # The wait and the read took time: stopped meanwhile, or the lease lost (another
            # relay may have taken over), nothing is sent; the next holder checks again.
            if self._stop.is_set() or not self._lease_still_held():
                return 0
            self._taking_over = False
            if found:
                self._mark_sent(sorted(found))
                self.reconciled += len(found)
                log.info("relay: %d rows of an earlier relay were on the topic already", len(found))
                return len(found)
        failpoint("after_db_commit_before_publish")
        started = time.monotonic()
        futures, parked = self._send(rows)
        sent, suspects, transient = self._acknowledged(futures, parked)
        self._handle_refusals(parked, suspects)
        if transient is not None:
            # Nothing is marked sent: the batch goes out again (duplicates are absorbed by the
            # consumers' inboxes) and in order, behind the failed record.
            raise transient
        failpoint("after_publish_before_mark_sent")
        self._mark_sent(sent)
        self.published += len(sent)
        if sent and self.on_published is not None:
            done = set(sent)
            self.on_published(
                time.monotonic() - started, [row.time for row in rows if row.id in done]
            )
        return len(sent) + len(parked)

    def _unsent_rows(self) -> list[Any]:
        """The next batch: unsent, unparked rows in id order, none of a key with a parked row."""
        o = self.outbox.c
        # Keys with a parked row: their later rows wait behind it (per-patient order).
        blocked = select(o.key).where(and_(o.parked_at.is_not(None), o.sent_at.is_(None)))
        with self.db.read() as conn:
            return list(
                conn.execute(
                    select(self.outbox)
                    .where(and_(o.sent_at.is_(None), o.parked_at.is_(None), o.key.not_in(blocked)))
                    .order_by(o.id)
                    # One row at a time while isolating a record the broker refused (below).
                    .limit(1 if self._isolate else self.batch_size)
                ).all()
            )

    def _record(self, row: Any) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
        """The key, value and headers of a row's record: encrypted and signed as configured."""
        event = event_from_outbox_row(row)
        key, value = row.key.encode("utf-8"), row.payload.encode("utf-8")
        headers = event.headers()
        if self.cipher is not None:
            # Encrypt, then sign what travels: consumers verify before they decrypt.
            value = self.cipher.seal(TOPIC_OWNERS[row.topic], row.event_id, value)
            headers.append((ENCRYPTION_HEADER, ALGORITHM.encode()))
        if self.signer is not None:
            headers.append((SIGNATURE_HEADER, self.signer.sign(headers, key, value)))
        return key, value, headers

    def _send(self, rows: list[Any]) -> tuple[list[tuple[Any, Any]], list[tuple[Any, KafkaError]]]:
        """Sends the rows and flushes; returns (row, future) of each sent row and the rows the
        producer refused outright, to be parked."""
        producer = self._get_producer()
        futures = []
        parked: list[tuple[Any, KafkaError]] = []
        held: set[str] = set()
        for row in rows:
            if row.key in held:
                continue  # behind a row parked in this pass
            key, value, headers = self._record(row)
            try:
                future = producer.send(
                    topics.physical(self.topic_prefix, row.topic),
                    key=key,
                    value=value,
                    headers=headers,
                )
            except PERMANENT_RECORD_ERRORS as exc:
                # Refused by the producer before sending (larger than max_request_size): park it
                # and hold the patient's later rows of this batch back with it.
                parked.append((row, exc))
                held.add(row.key)
                continue
            futures.append((row, future))
        producer.flush(timeout=30)
        return futures, parked

    def _acknowledged(
        self, futures: list[tuple[Any, Any]], parked: list[tuple[Any, KafkaError]]
    ) -> tuple[list[int], int, KafkaError | None]:
        """Reads each send's outcome: the ids acknowledged, how many rows are suspects of a
        broker refusal, and the last transient error; a refused record sent alone is added to
        `parked`."""
        sent: list[int] = []
        suspects = 0
        transient: KafkaError | None = None
        for row, future in futures:
            try:
                future.get(timeout=0)
            except PERMANENT_RECORD_ERRORS as exc:
                # Refused by the broker (its limit is lower than ours: a misconfigured topic).
                # The idempotent producer treats this as fatal and fails every batch it still
                # had with the same error, so in a batch the culprit cannot be told from the
                # innocent: only a record sent alone is parked; otherwise the failed rows are
                # retried one at a time. Later rows of this key in the same batch may already
                # be out; only the producer's own size check above can hold them back, which is
                # why the producer's and the brokers' limits are one setting.
                if len(futures) == 1:
                    parked.append((row, exc))
                else:
                    suspects += 1
            except KafkaError as exc:
                transient = exc
            else:
                sent.append(row.id)
        return sent, suspects, transient

    def _handle_refusals(self, parked: list[tuple[Any, KafkaError]], suspects: int) -> None:
        """Steps the isolation passes, drops a producer a refusal left dead, parks rows."""
        if self._isolate:
            self._isolate -= 1
        if suspects:
            self._isolate = suspects
        if parked or suspects:
            self._close_producer()  # dead after a fatal error; a fresh one next pass
            # Part of the failed batch may be on the topic: check it before sending again.
            self._taking_over = True
        if parked:
            self._park(parked)

    def _mark_sent(self, sent: list[int]) -> None:
        if sent:
            with self.db.write() as conn:
                conn.execute(
                    update(self.outbox)
                    .where(self.outbox.c.id.in_(sent))
                    .values(sent_at=datetime.now(UTC))
                )

    def _park(self, parked: list[tuple[Any, KafkaError]]) -> None:
        now = datetime.now(UTC)
        with self.db.write() as conn:
            for row, exc in parked:
                reason = f"{type(exc).__name__}: {exc}"[:1000]
                conn.execute(
                    update(self.outbox)
                    .where(self.outbox.c.id == row.id)
                    .values(parked_at=now, park_reason=reason)
                )
        for row, exc in parked:
            self.parked += 1
            # The alert: an operator must fix the cause and release the row (`iopcare outbox
            # retry`); until then the patient's later events wait. Never the payload: only ids.
            log.error(
                "relay: outbox row %d (%s %s, %d bytes) parked: %s; its patient's later "
                "events are held until it is released with `iopcare outbox retry`",
                row.id,
                row.event_type,
                row.subject,
                len(row.payload.encode("utf-8")),
                type(exc).__name__,
            )

    def _already_on_topic(self, rows: list[Any]) -> set[int]:
        """The ids of `rows` whose event is in the last `batch_size` records of a partition of
        its topic (an earlier relay published it and died before marking it sent)."""
        if self.reader_factory is None:
            return set()
        self._stop.wait(self.settle_seconds)
        wanted = {row.event_id: row.id for row in rows}
        names = sorted({topics.physical(self.topic_prefix, row.topic) for row in rows})
        reader = self.reader_factory()
        try:
            deadline = time.monotonic() + 30
            parts: list[TopicPartition] = []
            for name in names:
                while not (known := reader.partitions_for_topic(name)):
                    if time.monotonic() > deadline:
                        raise KafkaTimeoutError(f"no partitions known for {name}")
                    time.sleep(0.1)
                parts += [TopicPartition(name, p) for p in sorted(known)]
            reader.assign(parts)
            ends = reader.end_offsets(parts)
            starts = reader.beginning_offsets(parts)
            for tp in parts:
                reader.seek(tp, max(starts[tp], ends[tp] - self.batch_size))
            found: set[int] = set()
            behind = [tp for tp in parts if reader.position(tp) < ends[tp]]
            while behind:
                if time.monotonic() > deadline:
                    raise KafkaTimeoutError("the topic's tail could not be read in time")
                for records in reader.poll(timeout_ms=500).values():
                    for record in records:
                        ce_id = dict(record.headers or []).get("ce_id", b"").decode()
                        if ce_id in wanted:
                            found.add(wanted[ce_id])
                behind = [tp for tp in behind if reader.position(tp) < ends[tp]]
            return found
        except TopicAuthorizationFailedError:
            # The principal may not read its own topic (ACLs older than this check): publish
            # as before; the consumers' inboxes absorb a copy.
            log.warning("relay: may not read its own topic; taking over without the check")
            return set()
        finally:
            reader.close()

    # Helpers -----------------------------------------------------------------------------------
    def _get_producer(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = self.producer_factory()
        return self._producer

    def _close_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=0)
            except Exception:  # closing a producer of a dead broker may itself fail
                log.debug("relay: error closing producer", exc_info=True)

    def _hold_lease(self) -> bool:
        if self.db.is_sqlite:
            # One process owns the file, unless several processes of the service share it.
            return self._hold_file_lease() if self.db.cross_process else True
        if self._lease is not None:
            return True
        conn = self.db.write_engine.connect()
        got: Any = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self._lock_key})
        if got.scalar():
            conn.commit()
            self._lease = conn
            self._taking_over = True
            log.info("relay: took the outbox lease; this replica publishes")
            return True
        conn.rollback()
        conn.close()
        self._stop.wait(1.0)
        return False

    def _hold_file_lease(self) -> bool:
        """On SQLite: a flock on `<database>.relay.lock`, held while the relay runs. One process
        of a service publishes; the others (ADR 0026) stand by and take over when it dies (the
        kernel drops the lock with its holder, so nothing can hold it while dead)."""
        if self._lease_fd is not None:
            return True
        fd = self.db.lock_file("relay")
        if fd is None:  # an in-memory database: one process by construction
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            self._stop.wait(1.0)
            return False
        self._lease_fd = fd
        self._taking_over = True
        log.info("relay: took the outbox lease; this process publishes")
        return True

    def _lease_still_held(self) -> bool:
        """Checks, on the lease's own connection, that the advisory lock is still ours.

        A PostgreSQL restart, or the lease's backend being killed, drops the lock without telling
        us, and another replica may take it; publishing on would interleave two relays. So each
        pass that has rows to publish first asks the server; on any doubt the lease is dropped and
        taken again on the next pass.
        """
        if self.db.is_sqlite:
            return True
        lease = self._lease
        if lease is None:
            return False
        try:
            held = lease.execute(
                text(
                    "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND pid = pg_backend_pid() AND classid = 0 AND CAST(objid AS bigint) = :k"
                ),
                {"k": self._lock_key},
            ).first()
            lease.commit()
        except SQLAlchemyError:
            held = None
        if held is None:
            log.warning("relay: outbox lease lost; standing by")
            self._release_lease()
            return False
        return True

    def _release_lease(self) -> None:
        fd, self._lease_fd = self._lease_fd, None
        if fd is not None:
            os.close(fd)  # releases the flock
        lease, self._lease = self._lease, None
        if lease is None:
            return
        try:
            lease.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._lock_key})
            lease.commit()
            lease.close()
        except SQLAlchemyError:
            # Never hand a connection that may still hold the lock back to the pool.
            lease.invalidate()
            lease.close()


# Operators ---------------------------------------------------------------------------------------
def parked_rows(db: Database, outbox: Table) -> list[Any]:
    """The parked rows, oldest first (`iopcare outbox parked SERVICE`)."""
    o = outbox.c
    with db.read() as conn:
        return list(
            conn.execute(
                select(outbox)
                .where(and_(o.parked_at.is_not(None), o.sent_at.is_(None)))
                .order_by(o.id)
            ).all()
        )


def release_parked(db: Database, outbox: Table, ids: list[int] | None = None) -> int:
    """Makes parked rows (all, or these ids) publishable again, once their cause is fixed (a
    larger limit on the brokers and in IOPCARE_MAX_RESOURCE_BYTES); the relay takes them, and the
    rows held behind them, in their original order. Returns how many were released."""
    o = outbox.c
    condition = and_(o.parked_at.is_not(None), o.sent_at.is_(None))
    if ids is not None:
        condition = and_(condition, o.id.in_(ids))
    with db.write() as conn:
        result = conn.execute(update(outbox).where(condition).values(parked_at=None))
    return int(result.rowcount or 0)
