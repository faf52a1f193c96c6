"""The gateway's subscription database (ADR 0027): SQLite by default, PostgreSQL by URL, with its
own Alembic migrations (`gateway/subscriptions/migrations`).

Tables: `subscription` (the Subscription, its owner as they were when they subscribed, its status
and event counter), `subscription_event` (the events the consumer took from Kafka, waiting to be
matched), `subscription_notification` (every notification, stored before it is sent, with its
delivery state) and `subscription_inbox` (the consumer's idempotency keys, kit.consumer).
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text, select, update
from sqlalchemy.exc import IntegrityError

from iopcare.gateway.subscriptions.domain.model import Spec
from iopcare.kit.db import Database, UnitOfWork, as_utc, migrate
from iopcare.kit.schema import BigId, inbox_columns

MIGRATIONS = Path(__file__).parent / "migrations"

metadata = MetaData()

subscription = Table(
    "subscription",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("owner_subject", String(200), nullable=False),
    Column("owner_role", String(32), nullable=False),
    Column("owner_practitioner", String(64)),
    Column("owner_scopes", Text, nullable=False),
    Column("owner_patient", String(64)),
    Column("request_id", String(100)),
    Column("topic", String(200), nullable=False),
    Column("patient_id", String(64)),
    Column("spec", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("error", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("events_since_start", sa.BigInteger, nullable=False),
    Column("failures", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("last_sent_at", DateTime(timezone=True)),
    Column("deleted", sa.Boolean, nullable=False),
    sa.UniqueConstraint("owner_subject", "request_id", name="uq_subscription_request"),
)

event = Table(
    "subscription_event",
    metadata,
    Column("seq", BigId, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False, unique=True),
    Column("event_type", String(200), nullable=False),
    Column("topics", Text, nullable=False),
    Column("patient_id", String(64), nullable=False),
    Column("focus", String(200), nullable=False),
    Column("created", sa.Boolean, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("processed_at", DateTime(timezone=True)),
)

notification = Table(
    "subscription_notification",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("subscription_id", String(64), nullable=False),
    Column("event_id", String(64)),
    Column("kind", String(32), nullable=False),
    Column("event_number", sa.BigInteger),
    Column("focus", String(200)),
    Column("bundle", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("last_error", Text, nullable=False),
    Column("sent_at", DateTime(timezone=True)),
    sa.UniqueConstraint("subscription_id", "event_id", name="uq_notification_event"),
)

inbox = Table("subscription_inbox", metadata, *inbox_columns())

sa.Index("ix_subscription_topic", subscription.c.topic, subscription.c.status)
sa.Index("ix_subscription_event_open", event.c.processed_at, event.c.seq)
sa.Index(
    "ix_subscription_notification_due",
    notification.c.state,
    notification.c.subscription_id,
    notification.c.id,
)

PENDING = "pending"
SENT = "sent"


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Owner:
    """Who subscribed, as their token said when they did (ADR 0027)."""

    subject: str
    role: str
    practitioner: str | None
    scopes: tuple[str, ...]
    patient: str | None


@dataclass(frozen=True)
class Row:
    """One subscription as stored."""

    id: str
    owner: Owner
    spec: Spec
    status: str
    error: str
    version: int
    events_since_start: int
    failures: int
    created_at: datetime
    updated_at: datetime
    last_sent_at: datetime | None


def _row(r: Any) -> Row:
    return Row(
        id=r.id,
        owner=Owner(
            r.owner_subject,
            r.owner_role,
            r.owner_practitioner,
            tuple(json.loads(r.owner_scopes)),
            r.owner_patient,
        ),
        spec=Spec(**{**json.loads(r.spec), "headers": tuple(json.loads(r.spec)["headers"])}),
        status=r.status,
        error=r.error,
        version=r.version,
        events_since_start=r.events_since_start,
        failures=r.failures,
        created_at=as_utc(r.created_at),
        updated_at=as_utc(r.updated_at),
        last_sent_at=as_utc(r.last_sent_at) if r.last_sent_at is not None else None,
    )


def _spec_json(spec: Spec) -> str:
    return json.dumps(dataclasses.asdict(spec))


class RequestIdReused(Exception):
    """The owner's request id already made a different subscription (or one since deleted)."""


class Store:
    """The subscription tables' reads and writes (each call one short transaction)."""

    def __init__(self, url: str) -> None:
        self.db = Database(url)
        migrate(self.db, MIGRATIONS)

    def close(self) -> None:
        self.db.dispose()

    # -- subscriptions ----------------------------------------------------------------------
    def create(
        self, owner: Owner, spec: Spec, request_id: str | None, handshake: Any
    ) -> tuple[Row, bool]:
        """A new subscription (status `requested`, or `off`) with its handshake queued; with a
        request id already used by this owner for the same request, the subscription it made
        (and False); for another request, or one since deleted, RequestIdReused."""
        if request_id:
            found = self.by_request(owner.subject, request_id)
            if found is not None:
                return self._same(found, spec), False
        at = now()
        subscription_id = str(uuid.uuid4())
        status = "off" if spec.status == "off" else "requested"
        try:
            with UnitOfWork(self.db) as uow:
                uow.conn.execute(
                    sa.insert(subscription).values(
                        id=subscription_id,
                        owner_subject=owner.subject,
                        owner_role=owner.role,
                        owner_practitioner=owner.practitioner,
                        owner_scopes=json.dumps(list(owner.scopes)),
                        owner_patient=owner.patient,
                        request_id=request_id or None,
                        topic=spec.topic,
                        patient_id=spec.patient,
                        spec=_spec_json(spec),
                        status=status,
                        error="",
                        version=1,
                        events_since_start=0,
                        failures=0,
                        created_at=at,
                        updated_at=at,
                        last_sent_at=None,
                        deleted=False,
                    )
                )
                if status == "requested":
                    self._queue(
                        uow.conn,
                        subscription_id,
                        None,
                        "handshake",
                        None,
                        None,
                        handshake(subscription_id, at),
                        at,
                    )
                uow.commit()
        except IntegrityError:
            if not request_id:
                raise
            found = self.by_request(owner.subject, request_id)
            if found is None:
                raise RequestIdReused(
                    "the request id was used for a deleted subscription"
                ) from None
            return self._same(found, spec), False
        created = self.get(subscription_id)
        assert created is not None
        return created, True

    @staticmethod
    def _same(found: Row, spec: Spec) -> Row:
        if found.spec != spec:
            raise RequestIdReused("the request id was used for another subscription")
        return found

    def by_request(self, subject: str, request_id: str) -> Row | None:
        with self.db.read() as conn:
            r = conn.execute(
                select(subscription).where(
                    subscription.c.owner_subject == subject,
                    subscription.c.request_id == request_id,
                    subscription.c.deleted.is_(False),
                )
            ).first()
        return _row(r) if r is not None else None

    def get(self, subscription_id: str) -> Row | None:
        with self.db.read() as conn:
            r = conn.execute(
                select(subscription).where(
                    subscription.c.id == subscription_id, subscription.c.deleted.is_(False)
                )
            ).first()
        return _row(r) if r is not None else None

    def owned_by(self, subject: str) -> list[Row]:
        with self.db.read() as conn:
            rows = conn.execute(
                select(subscription)
                .where(subscription.c.owner_subject == subject, subscription.c.deleted.is_(False))
                .order_by(subscription.c.created_at)
            ).all()
        return [_row(r) for r in rows]

    def replace(self, row: Row, spec: Spec, owner: Owner, handshake: Any) -> Row | None:
        """A new version with `spec` (None when `row.version` is no longer current). Asking for
        `off` stops it; anything else asks for a new handshake."""
        at = now()
        status = "off" if spec.status == "off" else "requested"
        with UnitOfWork(self.db) as uow:
            changed = uow.conn.execute(
                update(subscription)
                .where(
                    subscription.c.id == row.id,
                    subscription.c.version == row.version,
                    subscription.c.deleted.is_(False),
                )
                .values(
                    spec=_spec_json(spec),
                    topic=spec.topic,
                    patient_id=spec.patient,
                    status=status,
                    error="",
                    failures=0,
                    version=row.version + 1,
                    updated_at=at,
                    owner_scopes=json.dumps(list(owner.scopes)),
                    owner_patient=owner.patient,
                )
            ).rowcount
            if not changed:
                return None
            # What was waiting under the old channel is dropped: it was for the old endpoint.
            uow.conn.execute(
                update(notification)
                .where(notification.c.subscription_id == row.id, notification.c.state == PENDING)
                .values(state="dropped")
            )
            if status == "requested":
                self._queue(
                    uow.conn, row.id, None, "handshake", None, None, handshake(row.id, at), at
                )
            uow.commit()
        return self.get(row.id)

    def delete(self, subscription_id: str) -> None:
        with UnitOfWork(self.db) as uow:
            uow.conn.execute(
                update(subscription)
                .where(subscription.c.id == subscription_id)
                .values(deleted=True, status="off", updated_at=now())
            )
            uow.conn.execute(
                update(notification)
                .where(
                    notification.c.subscription_id == subscription_id,
                    notification.c.state == PENDING,
                )
                .values(state="dropped")
            )
            uow.commit()

    def listening(self, topic_urls: list[str]) -> list[Row]:
        """Subscriptions that take events: not off, not deleted, on one of the topics."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(subscription).where(
                    subscription.c.topic.in_(topic_urls),
                    subscription.c.status.in_(("requested", "active", "error")),
                    subscription.c.deleted.is_(False),
                )
            ).all()
        return [_row(r) for r in rows]

    def any_listening(self, topic_urls: list[str]) -> bool:
        return bool(self.listening(topic_urls))

    # -- events -----------------------------------------------------------------------------
    def open_events(self, limit: int = 100) -> list[Any]:
        with self.db.read() as conn:
            return list(
                conn.execute(
                    select(event)
                    .where(event.c.processed_at.is_(None))
                    .order_by(event.c.seq)
                    .limit(limit)
                ).all()
            )

    def event_done(self, seq: int) -> None:
        with self.db.write() as conn:
            conn.execute(update(event).where(event.c.seq == seq).values(processed_at=now()))

    def add_event_notification(
        self, subscription_id: str, event_id: str, focus: str, build: Any
    ) -> bool:
        """Numbers the event for the subscription and stores its notification, once: False when
        it was stored before (a replay) or the subscription is gone. `build(number, status, at)`
        makes the Bundle."""
        with UnitOfWork(self.db) as uow:
            conn = uow.conn
            seen = conn.execute(
                select(notification.c.id).where(
                    notification.c.subscription_id == subscription_id,
                    notification.c.event_id == event_id,
                )
            ).first()
            current = conn.execute(
                select(subscription.c.events_since_start, subscription.c.status).where(
                    subscription.c.id == subscription_id, subscription.c.deleted.is_(False)
                )
            ).first()
            if seen is not None or current is None or current.status == "off":
                return False
            number = int(current.events_since_start) + 1
            at = now()
            conn.execute(
                update(subscription)
                .where(subscription.c.id == subscription_id)
                .values(events_since_start=number)
            )
            self._queue(
                conn,
                subscription_id,
                event_id,
                "event-notification",
                number,
                focus,
                build(number, current.status, at),
                at,
            )
            uow.commit()
        return True

    # -- notifications ----------------------------------------------------------------------
    @staticmethod
    def _queue(
        conn: Any,
        subscription_id: str,
        event_id: str | None,
        kind: str,
        number: int | None,
        focus: str | None,
        bundle: dict[str, Any],
        at: datetime,
    ) -> None:
        conn.execute(
            sa.insert(notification).values(
                subscription_id=subscription_id,
                event_id=event_id,
                kind=kind,
                event_number=number,
                focus=focus,
                bundle=json.dumps(bundle, separators=(",", ":")),
                state=PENDING,
                attempts=0,
                created_at=at,
                next_attempt_at=at,
                last_error="",
                sent_at=None,
            )
        )

    def queue_heartbeat(self, row: Row, bundle: dict[str, Any]) -> None:
        at = now()
        with UnitOfWork(self.db) as uow:
            pending = uow.conn.execute(
                select(notification.c.id).where(
                    notification.c.subscription_id == row.id, notification.c.state == PENDING
                )
            ).first()
            if pending is None:
                self._queue(uow.conn, row.id, None, "heartbeat", None, None, bundle, at)
                # Counts as activity, so the next heartbeat is a period later.
                uow.conn.execute(
                    update(subscription).where(subscription.c.id == row.id).values(last_sent_at=at)
                )
            uow.commit()

    def due(self, limit: int = 200) -> list[Any]:
        """The oldest pending notification of each subscription, where it is due (a
        subscription's notifications go out in order, one at a time)."""
        first = (
            select(sa.func.min(notification.c.id))
            .where(notification.c.state == PENDING)
            .group_by(notification.c.subscription_id)
        )
        with self.db.read() as conn:
            return list(
                conn.execute(
                    select(notification)
                    .where(notification.c.id.in_(first), notification.c.next_attempt_at <= now())
                    .limit(limit)
                ).all()
            )

    def sent(self, notification_id: int, subscription_id: str, kind: str) -> None:
        at = now()
        with UnitOfWork(self.db) as uow:
            uow.conn.execute(
                update(notification)
                .where(notification.c.id == notification_id)
                .values(state=SENT, sent_at=at, attempts=notification.c.attempts + 1)
            )
            uow.conn.execute(
                update(subscription)
                .where(subscription.c.id == subscription_id, subscription.c.status != "off")
                .values(status="active", error="", failures=0, last_sent_at=at)
            )
            uow.commit()

    def failed(
        self,
        notification_id: int,
        subscription_id: str,
        reason: str,
        retry_in: timedelta,
        error_after: int,
        handshake: bool,
    ) -> None:
        """A delivery failed: tried again after `retry_in`; after `error_after` failures in a row
        (or a failed handshake) the subscription's status is `error` until a delivery succeeds."""
        at = now()
        with UnitOfWork(self.db) as uow:
            uow.conn.execute(
                update(notification)
                .where(notification.c.id == notification_id)
                .values(
                    attempts=notification.c.attempts + 1,
                    next_attempt_at=at + retry_in,
                    last_error=reason[:500],
                )
            )
            failures = (
                uow.conn.execute(
                    select(subscription.c.failures).where(subscription.c.id == subscription_id)
                ).scalar()
                or 0
            ) + 1
            values: dict[str, Any] = {"failures": failures}
            if handshake or failures >= error_after:
                values["status"] = "error"
                values["error"] = reason[:500]
            uow.conn.execute(
                update(subscription)
                .where(subscription.c.id == subscription_id, subscription.c.status != "off")
                .values(**values)
            )
            uow.commit()

    def notifications(self, subscription_id: str, since: int, until: int | None) -> list[Any]:
        query = (
            select(notification)
            .where(
                notification.c.subscription_id == subscription_id,
                notification.c.kind == "event-notification",
                notification.c.event_number >= since,
            )
            .order_by(notification.c.event_number)
        )
        if until is not None:
            query = query.where(notification.c.event_number <= until)
        with self.db.read() as conn:
            return list(conn.execute(query.limit(1000)).all())

    def heartbeat_candidates(self) -> list[Row]:
        with self.db.read() as conn:
            rows = conn.execute(
                select(subscription).where(
                    subscription.c.status == "active", subscription.c.deleted.is_(False)
                )
            ).all()
        return [r for r in map(_row, rows) if r.spec.heartbeat_seconds]
