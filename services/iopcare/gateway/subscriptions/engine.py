"""From the services' events to notifications delivered at least once (ADR 0027).

Three parts, each its own thread:
1. The consumer (`kit.consumer.EventConsumer`, its own group, signatures checked, inbox
   dedup): an event some topic listens to, while some subscription listens to that topic, is
   queued in `subscription_event`.
2. The matcher takes queued events in order; for each subscription on the event's topic (and its
   patient filter) it reads the focus resource **as the subscription's owner**: a token with the
   owner's subject, role, scopes and launch patient as they were when they subscribed, minted by
   the gateway's embedded authorization server, used for a search `Type?_id=..&patient=..`
   through the gateway's own handlers. So the services' care-team rule and the gateway's release
   rule (42 CFR Part 2 labels, the patient's Consents) decide exactly as for a REST search by the
   owner. What the owner may not read is not notified at all (not numbered either); what they
   may read is numbered (`events-since-subscription-start`) and its notification Bundle stored.
   A service that does not answer leaves the event queued, tried again later.
3. The sender posts each subscription's stored notifications in order, one at a time per
   subscription, several subscriptions at once; a failure (no connection, a timeout, any answer
   but 2xx) is tried again after `retry_base_seconds * 2**(failures-1)` (at most
   `retry_max_seconds`), for ever, and sets the status `error` after `error_after_failures`
   failures in a row (a failed handshake at once), `active` again at the next success. It also
   queues heartbeats.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert

from iopcare.gateway import release, routing
from iopcare.gateway.errors import FhirHttpError, from_kit
from iopcare.gateway.http import FhirRequest, GatewayContext
from iopcare.gateway.security import Authenticator
from iopcare.gateway.subscriptions import store as tables
from iopcare.gateway.subscriptions.domain import model, topics
from iopcare.gateway.subscriptions.settings import SubscriptionSettings
from iopcare.gateway.subscriptions.store import Owner, Row, Store
from iopcare.kit import errors as kit_errors
from iopcare.kit import topics as kafka_topics
from iopcare.kit.auth import mint_token
from iopcare.kit.background import Background
from iopcare.kit.consumer import EventConsumer
from iopcare.kit.db import UnitOfWork
from iopcare.kit.events import ReceivedEvent
from iopcare.kit.payloads import cipher_for
from iopcare.kit.settings import Settings
from iopcare.kit.signing import verifier_for

if TYPE_CHECKING:
    from iopcare.gateway.client import Caller

log = logging.getLogger(__name__)

#: Lifetime of the token the gateway mints to read as a subscription's owner.
OWNER_TOKEN_SECONDS = 300


class Later(Exception):
    """The services could not say now; the event waits in the queue."""


@dataclass(eq=False)
class Engine:
    """The subscription machinery of one gateway process."""

    settings: Settings
    config: SubscriptionSettings
    store: Store
    base_url: str
    gateway: GatewayContext | None = None
    authenticator: Authenticator | None = None
    wake_matcher: threading.Event = field(default_factory=threading.Event)
    wake_sender: threading.Event = field(default_factory=threading.Event)
    _callers: dict[tuple[Any, ...], tuple[Caller, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.consumer = EventConsumer(
            self.store.db,
            tables.inbox,
            name="gateway-subscriptions",
            client_options=self.settings.kafka_client_options(),
            group_id=f"{self.settings.topic_prefix}{self.config.consumer_group}",
            topics=[
                kafka_topics.physical(self.settings.topic_prefix, t)
                for t in kafka_topics.EVENT_TOPICS
            ],
            handlers=dict.fromkeys(topics.EVENT_TYPES, self.on_event),
            verifier=verifier_for(self.settings),
            cipher=cipher_for(self.settings),
            max_attempts=self.settings.consumer_max_attempts,
            max_message_bytes=self.settings.kafka_max_message_bytes,
            on_applied=lambda _event: self.wake_matcher.set(),
        )
        self.matcher = _Loop(
            "subscriptions-matcher", self.match_once, self.wake_matcher, self.config.poll_seconds
        )
        self.sender = _Loop(
            "subscriptions-sender", self.send_once, self.wake_sender, self.config.poll_seconds
        )
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, self.config.delivery_workers), thread_name_prefix="subscription-post"
        )
        self._in_flight: set[str] = set()

    # -- lifecycle --------------------------------------------------------------------------
    def start(self, gateway: GatewayContext, authenticator: Authenticator) -> None:
        self.gateway = gateway
        self.authenticator = authenticator
        self.consumer.start()
        self.matcher.start()
        self.sender.start()

    def stop(self) -> None:
        for part in (self.consumer, self.matcher, self.sender):
            part.request_stop()
        self.wake_matcher.set()
        self.wake_sender.set()
        for part in (self.consumer, self.matcher, self.sender):
            part.stop(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.store.close()

    # -- 1. consume -------------------------------------------------------------------------
    def on_event(self, uow: UnitOfWork, received: ReceivedEvent) -> None:
        event = received.event
        resource = json.loads(event.data)
        found = topics.topics_for(event.type, resource)
        if not found:
            return
        urls = [t.url for t in found]
        if not self.store.any_listening(urls):
            return  # nobody to tell; nothing kept
        version = str(resource.get("meta", {}).get("versionId", ""))
        uow.conn.execute(
            insert(tables.event).values(
                event_id=event.id,
                event_type=event.type,
                topics=" ".join(urls),
                patient_id=topics.patient_of(resource, event.key)[:64],
                focus=f"{resource['resourceType']}/{resource.get('id', '')}"[:200],
                created=version == "1",
                received_at=datetime.now(UTC),
                processed_at=None,
            )
        )

    # -- 2. match ---------------------------------------------------------------------------
    def match_once(self) -> None:
        for queued in self.store.open_events():
            try:
                self._match(queued)
            except Later as exc:
                log.info("subscriptions: event waits (%s)", exc)
                return
            self.store.event_done(queued.seq)
            self.wake_sender.set()

    def _match(self, queued: Any) -> None:
        received_at = (
            queued.received_at
            if queued.received_at.tzinfo
            else queued.received_at.replace(tzinfo=UTC)
        )
        for row in self.store.listening(queued.topics.split()):
            if row.created_at > received_at:
                continue  # subscribed after the event happened
            if row.spec.patient is not None and row.spec.patient != queued.patient_id:
                continue
            if model.ended(row.spec, received_at):
                continue  # the subscription's `end` has passed
            try:
                resource = self.read_as_owner(row.owner, queued.focus, queued.patient_id)
            except Later:
                raise
            except Exception:
                # A bug must neither block every subscription behind this event nor disclose:
                # this subscriber is not told (fail closed), and it is logged.
                log.exception("subscriptions: reading %s for %s failed", queued.focus, row.id)
                resource = None
            if resource is None:
                continue  # the owner may not read it: nothing is said, not even that it happened
            focus = model.Focus(queued.focus, resource, bool(queued.created))
            self.store.add_event_notification(
                row.id,
                queued.event_id,
                queued.focus,
                lambda number, status, at, row=row, focus=focus: model.notification(
                    self.base_url,
                    row.id,
                    row.spec.topic,
                    status,
                    model.EVENT,
                    number,
                    at,
                    (number, focus),
                    row.spec.payload,
                ),
            )

    def owner_caller(self, owner: Owner) -> Caller:
        """The owner as they were when they subscribed: a short token the gateway mints, the
        caller it authenticates to (kept until shortly before it expires)."""
        key = (owner.subject, owner.role, owner.practitioner, owner.scopes, owner.patient)
        now = time.monotonic()
        with self._lock:
            cached = self._callers.get(key)
            if cached is not None and cached[1] > now:
                return cached[0]
        assert self.authenticator is not None
        token = mint_token(
            self.settings,
            subject=owner.subject,
            role=owner.role,
            practitioner_id=owner.practitioner,
            scopes=list(owner.scopes),
            lifetime_seconds=OWNER_TOKEN_SECONDS,
            patient_context=owner.patient,
        )
        caller = self.authenticator.authenticate(f"Bearer {token}")
        with self._lock:
            self._callers[key] = (caller, now + OWNER_TOKEN_SECONDS - 60)
        return caller

    def read_as_owner(self, owner: Owner, focus: str, patient_id: str) -> dict[str, Any] | None:
        """The focus resource as a search by the owner releases it, or None when they may not
        read it (scopes, care team, launch patient, labels). Raises Later when a service did
        not answer."""
        assert self.gateway is not None
        resource_type, _, resource_id = focus.partition("/")
        request = FhirRequest(
            "GET",
            resource_type,
            [("_id", resource_id), ("patient", patient_id)],
            {},
            b"",
            self.base_url,
        )
        try:
            caller = self.owner_caller(owner)
            with release.request_scope():
                response = self.gateway.dispatch(
                    caller, routing.Route(routing.SEARCH, resource_type), request
                )
        except kit_errors.IopcareError as exc:
            return self._refused(from_kit(exc))
        except FhirHttpError as exc:
            return self._refused(exc)
        body = response.body if isinstance(response.body, dict) else json.loads(response.body)
        for entry in body.get("entry", []):
            found = entry.get("resource")
            if isinstance(found, str):
                found = json.loads(found)
            if (
                isinstance(found, dict)
                and entry.get("search", {}).get("mode", "match") == "match"
                and found.get("resourceType") == resource_type
                and found.get("id") == resource_id
            ):
                return dict(found)
        return None

    @staticmethod
    def _refused(exc: FhirHttpError) -> None:
        if exc.status >= 500 or exc.status == 429:
            raise Later(f"{exc.status}")
        return None

    # -- 3. send ----------------------------------------------------------------------------
    def send_once(self) -> None:
        self._heartbeats()
        for queued in self.store.due():
            with self._lock:
                if queued.subscription_id in self._in_flight:
                    continue
                self._in_flight.add(queued.subscription_id)
            try:
                self._pool.submit(self._deliver, queued)
            except RuntimeError:  # the pool is shut down: stopping
                with self._lock:
                    self._in_flight.discard(queued.subscription_id)
                return

    def _heartbeats(self) -> None:
        now = datetime.now(UTC)
        for row in self.store.heartbeat_candidates():
            period = timedelta(seconds=row.spec.heartbeat_seconds or 0)
            last = row.last_sent_at or row.created_at
            if now - last >= period:
                self.store.queue_heartbeat(
                    row,
                    model.notification(
                        self.base_url,
                        row.id,
                        row.spec.topic,
                        row.status,
                        model.HEARTBEAT,
                        row.events_since_start,
                        now,
                        None,
                        row.spec.payload,
                    ),
                )

    def _deliver(self, queued: Any) -> None:
        try:
            row = self.store.get(queued.subscription_id)
            if row is None:
                return
            error = post(
                row.spec.endpoint,
                queued.bundle.encode(),
                row.spec.headers,
                float(row.spec.timeout_seconds or self.config.timeout_seconds),
            )
            audit(row, queued, error)
            if error is None:
                self.store.sent(queued.id, row.id, queued.kind)
            else:
                delay = min(
                    self.config.retry_base_seconds * 2**queued.attempts,
                    self.config.retry_max_seconds,
                )
                log.info(
                    "subscriptions: delivery to %s failed (%s); retry in %.1f s",
                    row.id,
                    error,
                    delay,
                )
                self.store.failed(
                    queued.id,
                    row.id,
                    error,
                    timedelta(seconds=delay),
                    self.config.error_after_failures,
                    queued.kind == model.HANDSHAKE,
                )
        except Exception:
            log.exception("subscriptions: delivery of notification %s failed", queued.id)
        finally:
            with self._lock:
                self._in_flight.discard(queued.subscription_id)
            self.wake_sender.set()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is a failed delivery: the notification goes to the endpoint the subscriber
    registered (checked when it subscribed), never to wherever an answer points."""

    def redirect_request(self, *_: Any, **__: Any) -> None:
        return None


#: No proxy from the environment and no redirects: notifications go straight to the endpoint.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())


audit_log = logging.getLogger("iopcare.gateway.audit")


def audit(row: Row, queued: Any, error: str | None) -> None:
    """One audit line per delivery attempt, like a request's (gateway/app.py): to whom, about
    what, and whether it was taken; never the content. (The read that decided it was audited by
    the service that answered it, as the owner's.)"""
    audit_log.info(
        json.dumps(
            {
                "time": datetime.now(UTC).isoformat(),
                "subject": row.owner.subject,
                "method": "NOTIFY",
                "path": f"Subscription/{row.id}",
                "status": 200 if error is None else 502,
                "outcome": "success" if error is None else "failed",
                "patient": row.spec.patient or "",
                "resource": queued.focus or "",
                "detail": f"{queued.kind} {queued.event_number or ''}".strip()
                + (f": {error}" if error else ""),
            },
            separators=(",", ":"),
        )
    )


def post(endpoint: str, body: bytes, headers: tuple[str, ...], timeout: float) -> str | None:
    """POSTs a notification; None when the receiver took it (2xx), else why not."""
    request = urllib.request.Request(endpoint, data=body, method="POST")
    request.add_header("Content-Type", "application/fhir+json")
    for header in headers:
        name, _, value = header.partition(":")
        request.add_header(name.strip(), value.strip())
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"[:300]
    return None if 200 <= status < 300 else f"HTTP {status}"


@dataclass(eq=False)
class _Loop(Background):
    """Runs `work` whenever woken, and every `interval` seconds anyway."""

    name: str
    work: Any
    wake: threading.Event
    interval: float

    @property
    def thread_name(self) -> str:
        return self.name

    def run(self) -> None:
        while not self._stop.is_set():
            self.wake.clear()
            try:
                self.work()
            except Exception:
                log.exception("%s: unexpected error", self.name)
            self.wake.wait(self.interval)
