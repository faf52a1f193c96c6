"""Running one service as a process: gRPC server, outbox relay and consumers, and clean shutdown.

Each service's `app.build()` is its composition root: it wires its store, servicer and handlers
into a `ServiceRuntime`; `serve()` runs it until SIGTERM or SIGINT, then shuts down within
`STOP_SECONDS` (issue 16) in the order that loses nothing: stop taking calls (health NOT_SERVING,
then a short grace period for calls in flight), and tell the consumers, the relay and the periodic
tasks to stop at once. A consumer stops between two records (offsets are only committed after
applied transactions, so stopping anywhere is safe: what was not committed is delivered again and
the inbox makes it harmless); the relay stops after its current batch (rows are marked sent only
once acknowledged; an unmarked row is published again and deduplicated by the consumers). Whatever
is still running at the deadline is abandoned: every answer already given was durable, and an
uncommitted transaction is rolled back, as after a crash (reliability A1-A3).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import InitVar, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2
from sqlalchemy import Table

from iopcare.kit import audit, failpoints, logcontext, payloads, signing, topics
from iopcare.kit.auth import Principal, TokenVerifier
from iopcare.kit.background import Background
from iopcare.kit.consumer import EventConsumer, Handler
from iopcare.kit.db import Database, migrate
from iopcare.kit.health import LIVENESS, ReadinessProbe, broker_check, database_check
from iopcare.kit.metrics import MetricsServer, ServiceMetrics
from iopcare.kit.relay import OutboxRelay, make_producer, make_reader
from iopcare.kit.rpc import Registration, TlsFiles, create_server
from iopcare.kit.scopes import Rule
from iopcare.kit.settings import ServiceSettings, Settings

log = logging.getLogger(__name__)

#: A service exits within this many seconds of SIGTERM or SIGINT, under load or not (issue 16).
STOP_SECONDS = 5.0
#: Of which calls in flight get at most this long to finish before they are cancelled.
CALLS_GRACE_SECONDS = 2.0


def _worker_index() -> int:
    """This process's index among its service's processes (iopcare.workers), 0 when alone."""
    value = os.environ.get("IOPCARE_WORKER_INDEX", "")
    return int(value) if value.isdigit() else 0


def _remaining(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


@dataclass(eq=False)
class PeriodicTask(Background):
    """A job a service runs every `interval` seconds in its own thread (e.g. re-escalating crisis
    alerts nobody acknowledged). A failure is logged and the job runs again next time: a bug in
    one run must not stop the next."""

    name: str
    interval: float
    job: Callable[[], object]

    @property
    def thread_name(self) -> str:
        return self.name

    def run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.job()
            except Exception:
                log.exception(
                    "periodic task %s failed; it runs again in %.0fs", self.name, self.interval
                )


@dataclass
class ServiceRuntime:
    name: str
    db: Database
    server: grpc.Server
    port: int
    health: health.HealthServicer
    relay: OutboxRelay | None = None
    consumers: list[EventConsumer] = field(default_factory=list)
    tasks: list[PeriodicTask] = field(default_factory=list)
    #: The process's Prometheus metrics (kit.metrics) and where to serve them (None: not served).
    metrics: ServiceMetrics | None = None
    metrics_address: tuple[str, int] | None = None
    #: Sets the health status from the database's and the brokers' reachability (kit.health).
    readiness: ReadinessProbe | None = None
    _stopped: bool = False
    _metrics_server: MetricsServer | None = None

    @property
    def metrics_port(self) -> int | None:
        """The bound port of the metrics endpoint, once started (None: not served)."""
        return self._metrics_server.port if self._metrics_server is not None else None

    def _background(self) -> list[Background]:
        """The relay, the consumers and the periodic tasks, in the order they start."""
        relay: list[Background] = [self.relay] if self.relay is not None else []
        return [*relay, *self.consumers, *self.tasks]

    def start(self) -> None:
        if self.metrics is not None and self.metrics_address is not None:
            host, port = self.metrics_address
            self._metrics_server = MetricsServer(self.metrics.registry, host, port)
            log.info("%s metrics on port %d", self.name, self._metrics_server.port)
        self.server.start()
        for part in self._background():
            part.start()
        if self.readiness is not None:
            self.readiness.start()
        log.info("%s serving on port %d", self.name, self.port)

    def stop(self, grace: float = CALLS_GRACE_SECONDS) -> None:
        """Stops: calls in flight get `grace` seconds, and everything is done within
        `STOP_SECONDS - 0.5` (or just after the calls' grace, if longer); see the module's
        docstring."""
        if self._stopped:
            return
        self._stopped = True
        started = time.monotonic()
        deadline = started + max(STOP_SECONDS - 0.5, grace + 0.5)
        if self.readiness is not None:
            # First, so that no probe turns health back to SERVING; a probe in flight is not
            # waited for beyond a second (it only reads).
            self.readiness.stop(min(1.0, _remaining(deadline)))
        self.health.enter_graceful_shutdown()
        # The background work stops at once, beside the calls' grace period: none of it needs
        # the calls in flight, and each part checks its stop flag often.
        background = self._background()[::-1]  # the tasks first, the relay last
        for part in background:
            part.request_stop()
        self.server.stop(grace).wait(_remaining(deadline))
        for part in background:
            part.stop(_remaining(deadline))
        if self._metrics_server is not None:
            self._metrics_server.stop()
        self.db.dispose()
        log.info("%s stopped in %.2fs", self.name, time.monotonic() - started)

    def serve_forever(self) -> None:
        """Runs until SIGTERM or SIGINT, then stops gracefully; the process exits within
        `STOP_SECONDS` of the signal even if some thread does not stop in time."""
        done = threading.Event()

        def _on_signal(signum: int, _frame: Any) -> None:
            log.info("%s: signal %d, shutting down", self.name, signum)
            done.set()

        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)
        self.start()
        done.wait()
        _exit_at(time.monotonic() + STOP_SECONDS, self.name)
        self.stop()
        lingering = [
            t.name
            for t in threading.enumerate()
            if t is not threading.current_thread() and not t.daemon and t.is_alive()
        ]
        # Everything is stopped and the database closed; what may be left are idle pool threads
        # (gRPC's, Kafka clients' at-exit closes), which the interpreter would join one by one
        # for seconds, and at-exit handlers of the clients, which were seen to hold a worker
        # process (ADR 0026) until its deadline. Nothing of them holds data: exit now.
        log.info("%s: exiting (%d idle threads not joined)", self.name, len(lingering))
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _exit_at(deadline: float, name: str) -> None:
    """Ends the process at `deadline` if it has not exited by then: a thread stuck in a call
    (e.g. a gRPC handler waiting on the database, whose pool threads the interpreter joins at
    exit) must not keep a stopping service alive. Everything answered was durable already, and
    whatever had not committed rolls back, as after a crash."""

    def _watch() -> None:
        time.sleep(_remaining(deadline))
        stuck = [t.name for t in threading.enumerate() if t is not threading.current_thread()]
        log.warning("%s: still running at the stop deadline (%s); exiting now", name, stuck)
        logging.shutdown()
        os._exit(0)

    threading.Thread(target=_watch, name="stop-deadline", daemon=True).start()


def open_database(url: str, migrations: Path) -> Database:
    db = Database(url)
    migrate(db, migrations)
    return db


class JsonFormatter(logging.Formatter):
    """One JSON object per line: what log shippers and Kubernetes expect. Each line names the
    service and, inside a call or an event's handling, its request id and trace id
    (kit.logcontext), so one request can be followed across the services' logs."""

    def __init__(self, service: str = "") -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request = logcontext.request_id.get()
        if request:
            entry["request_id"] = request
        trace = logcontext.trace_id.get()
        if trace:
            entry["trace_id"] = trace
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_process(level: str = "INFO", service: str = "") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.getLogger("kafka").setLevel(logging.WARNING)
    # kafka-python warns on every SASL_PLAINTEXT connection; SCRAM never sends the password
    # itself, the local broker listens on loopback only, and production uses SASL_SSL.
    logging.getLogger("kafka.net.sasl.scram").setLevel(logging.ERROR)
    failpoints.load_from_env()
    # How long a thread may hold the GIL before another that waits for it gets a turn (CPython's
    # default: 5 ms). Each SQLite call releases the GIL and must win it back to go on; with the
    # default, a request's write transaction (the process's write lock held throughout) waits up
    # to 5 ms after each statement while other threads compute, so writers queue behind
    # stretched transactions. ADR 0015; IOPCARE_GIL_SWITCH_INTERVAL_MS changes it.
    sys.setswitchinterval(float(os.environ.get("IOPCARE_GIL_SWITCH_INTERVAL_MS", "1")) / 1000)


@dataclass(eq=False)
class Assembly:
    """The parts every service's composition root builds the same way.

    A service's `app.build()` makes one, constructs its own use cases on `db` and `relay`, and
    hands over its servicers and event handlers; everything else (migrations, the relay, the
    consumer settings, the gRPC server with its interceptors, TLS and limits) is decided here once.
    """

    name: str
    settings: Settings
    service: ServiceSettings
    migrations: InitVar[Path]
    outbox: Table

    def __post_init__(self, migrations: Path) -> None:
        # Refuses to start outside development mode without the operator's keys, before
        # anything else is opened (kit.settings.Settings.require_keys).
        self.settings.require_keys(audit_key=True)
        self.settings.require_kafka_tls()
        audit.configure(audit.key_for(self.settings))
        self.db = open_database(self.service.database_url, migrations)
        self.metrics = ServiceMetrics(self.name)
        self.metrics.track_database(self.db)
        self.metrics.track_outbox(self.db, self.outbox)
        self.cipher = payloads.cipher_for(self.settings)
        if self.cipher is not None and self.name not in self.cipher.keys:
            # Refuse to start rather than have the relay fail on every row it tries to publish.
            raise RuntimeError(f"event encryption is on but {self.name}.topic.key is missing")
        self.relay = OutboxRelay(
            self.db,
            self.outbox,
            lambda: make_producer(self.settings, f"iopcare-{self.name}-relay"),
            batch_size=self.settings.relay_batch_size,
            idle_seconds=self.settings.relay_idle_seconds,
            lock_name=self.name,
            topic_prefix=self.settings.topic_prefix,
            signer=signing.signer_for(self.settings, self.name),
            cipher=self.cipher,
            reader_factory=lambda: make_reader(self.settings, f"iopcare-{self.name}-relay-check"),
        )
        self.relay.on_published = self.metrics.observe_publish
        # Loaded at start: a service whose peers' public keys are missing must not start and
        # then dead-letter everything it reads.
        self.verifier = signing.verifier_for(self.settings)

    def consumer(
        self, inbox: Table, topic_names: list[str], handlers: dict[str, Handler]
    ) -> EventConsumer:
        return EventConsumer(
            self.db,
            inbox,
            name=self.name,
            client_options=self.settings.kafka_client_options(),
            # Deployments sharing a cluster (a topic prefix) must not share consumer groups either.
            group_id=f"{self.settings.topic_prefix}{self.service.consumer_group}",
            topics=[topics.physical(self.settings.topic_prefix, t) for t in topic_names],
            handlers=handlers,
            verifier=self.verifier,
            cipher=self.cipher,
            max_attempts=self.settings.consumer_max_attempts,
            max_message_bytes=self.settings.kafka_max_message_bytes,
            # What a handler wrote to the outbox goes out without waiting for the next scan.
            on_applied=lambda _event: self.relay.notify(),
        )

    def runtime(
        self,
        registrations: list[Registration],
        consumers: list[EventConsumer] | None = None,
        tasks: list[PeriodicTask] | None = None,
        rules: Mapping[str, Rule] | None = None,
    ) -> ServiceRuntime:
        """`rules`: the service's per-RPC scope rules by full method name (`kit.rpc.rules_for`);
        every RPC must be declared, or scoped tokens cannot call it."""
        audit_log = self.outbox.metadata.tables["audit_log"]

        def on_refusal(principal: Principal, action: str, resource: str, reason: str) -> None:
            audit.record_separately(
                self.db,
                audit_log,
                principal,
                action,
                resource=resource,
                patient_id=None,
                outcome=audit.DENIED,
                detail=reason,
            )

        server, port, health = create_server(
            registrations,
            f"{self.service.host}:{self.service.port}",
            TokenVerifier(self.settings),
            max_workers=self.service.grpc_workers,
            max_message_bytes=self.settings.max_resource_bytes + 64 * 1024,
            tls=TlsFiles.from_settings(self.settings),
            rules=rules,
            on_refusal=on_refusal,
            max_calls_per_client=self.settings.rpc_max_calls_per_client,
            retry_after_seconds=self.settings.rpc_retry_after_seconds,
            metrics=self.metrics,
            reuse_port=self.service.processes > 1,
        )
        # Liveness answers apart from readiness: an unreachable database makes a replica
        # NOT_SERVING (kit.health), which must not make Kubernetes restart it.
        health.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)
        self.metrics.track_consumers(consumers or [])
        metrics = self.metrics

        def on_result(dependency: str, up: bool) -> None:
            metrics.dependency_up.labels(self.name, dependency).set(1 if up else 0)

        readiness = ReadinessProbe(
            health,
            ["", *(name for _add, _servicer, name in registrations)],
            {
                "database": database_check(self.db),
                "kafka": broker_check(
                    self.settings.kafka_client_options(), f"iopcare-{self.name}-readiness"
                ),
            },
            interval=self.settings.readiness_check_seconds,
            on_result=on_result,
        )
        metrics_port = self.service.metrics_port
        index = _worker_index()
        if metrics_port and index:
            metrics_port += index  # one endpoint per worker process (ADR 0026)
        return ServiceRuntime(
            self.name,
            self.db,
            server,
            port,
            health,
            relay=self.relay,
            consumers=consumers or [],
            tasks=tasks or [],
            metrics=self.metrics,
            metrics_address=None if metrics_port is None else (self.service.host, metrics_port),
            readiness=readiness,
        )
