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

Only one relay may publish a database's outbox at a time, or two could interleave one patient's
events. On SQLite one process owns the file; on PostgreSQL the relay holds a session-level
advisory lock while it publishes, and replicas that do not hold it stand by.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError
from sqlalchemy import Connection, Table, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from iopcare.kit import topics
from iopcare.kit.db import Database
from iopcare.kit.errors import IopcareError
from iopcare.kit.events import event_from_outbox_row
from iopcare.kit.failpoints import failpoint

log = logging.getLogger(__name__)

ProducerFactory = Callable[[], KafkaProducer]


def make_producer(bootstrap_servers: str, client_id: str) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
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


class OutboxRelay:
    """Publishes one database's outbox; runs in a thread of the service process."""

    def __init__(
        self,
        db: Database,
        outbox: Table,
        producer_factory: ProducerFactory,
        *,
        batch_size: int = 500,
        idle_seconds: float = 0.05,
        max_backoff_seconds: float = 5.0,
        lock_name: str = "outbox",
        topic_prefix: str = "",
    ) -> None:
        self.db = db
        self.outbox = outbox
        self.producer_factory = producer_factory
        self.batch_size = batch_size
        self.idle_seconds = idle_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.topic_prefix = topic_prefix
        self._lock_key = zlib.crc32(f"iopcare-relay:{lock_name}".encode())
        self._lease: Connection | None = None
        self._producer: KafkaProducer | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.published = 0

    # Lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="outbox-relay", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._close_producer()
        self._release_lease()

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
        """Publishes up to one batch of unsent rows; returns how many were published."""
        if not self._hold_lease():
            return 0
        with self.db.read() as conn:
            rows = conn.execute(
                select(self.outbox)
                .where(self.outbox.c.sent_at.is_(None))
                .order_by(self.outbox.c.id)
                .limit(self.batch_size)
            ).all()
        if not rows:
            return 0
        if not self._lease_still_held():
            return 0
        failpoint("after_db_commit_before_publish")
        producer = self._get_producer()
        futures = []
        for row in rows:
            event = event_from_outbox_row(row)
            futures.append(
                producer.send(
                    topics.physical(self.topic_prefix, row.topic),
                    key=row.key.encode("utf-8"),
                    value=row.payload.encode("utf-8"),
                    headers=event.headers(),
                )
            )
        producer.flush(timeout=30)
        for future in futures:
            future.get(timeout=0)  # raises the delivery error, if any: nothing is marked sent
        failpoint("after_publish_before_mark_sent")
        ids = [row.id for row in rows]
        with self.db.write() as conn:
            conn.execute(
                update(self.outbox)
                .where(self.outbox.c.id.in_(ids))
                .values(sent_at=datetime.now(UTC))
            )
        self.published += len(rows)
        return len(rows)

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
            return True
        if self._lease is not None:
            return True
        conn = self.db.write_engine.connect()
        got: Any = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self._lock_key})
        if got.scalar():
            conn.commit()
            self._lease = conn
            return True
        conn.rollback()
        conn.close()
        self._stop.wait(1.0)
        return False

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
