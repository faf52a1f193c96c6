"""Prometheus metrics of a service or the gateway (`prometheus_client`), and their HTTP endpoint.

Each service process has one `ServiceMetrics` with a registry of its own (several services built
in one test process do not mix their numbers). What it measures:

- every RPC: `iopcare_rpc_requests_total{service,method,code}` (rate and errors: code != OK),
  `iopcare_rpc_duration_seconds{service,method}`, and `iopcare_rpc_streams_open{service,method}`
  for server-streaming calls in flight (notes' WatchThread) - `RpcMetricsInterceptor`;
- the outbox, read at scrape time: `iopcare_outbox_backlog` (rows waiting to be published),
  `iopcare_outbox_oldest_age_seconds` (how long the oldest has waited: the alert),
  `iopcare_outbox_parked` (rows the relay parked, kit.relay);
- the relay: `iopcare_relay_publish_seconds` (one batch, send to acknowledgement),
  `iopcare_relay_event_delay_seconds` (an event's commit to its acknowledgement on the topic),
  `iopcare_relay_published_total`;
- each consumer: `iopcare_consumer_lag{consumer,topic,partition}` (records on the partition not yet
  handled, as of the last fetch), `iopcare_consumer_applied_total`,
  `iopcare_inbox_duplicates_skipped_total`, `iopcare_consumer_dead_lettered_total`,
  `iopcare_consumer_rejected_total` (unsigned or forged records);
- the database pool: `iopcare_db_pool_checked_out{engine}` and `iopcare_db_pool_size{engine}`;
- readiness: `iopcare_dependency_up{dependency}` (kit.health).

Labels never carry patient data: methods, topics, partitions and status codes only.

The endpoint is off unless a metrics port is configured (`IOPCARE_<SERVICE>_METRICS_PORT`,
`IOPCARE_GATEWAY_METRICS_PORT`; 0 binds a free port, as the tests do). It serves plain HTTP
without authentication, and holds no patient data; production binds it where only the
Prometheus scraper reaches it (docs/operations.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Table, and_, func, select

from iopcare.kit.interceptors import Behavior, HandlerInterceptor

if TYPE_CHECKING:
    from iopcare.kit.consumer import EventConsumer
    from iopcare.kit.db import Database

log = logging.getLogger(__name__)

#: Buckets for calls and publishes: a millisecond to half a minute.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def _counter(registry: CollectorRegistry, name: str, doc: str, labels: list[str]) -> Counter:
    return Counter(name, doc, labels, registry=registry)


def _histogram(registry: CollectorRegistry, name: str, doc: str, labels: list[str]) -> Histogram:
    """A histogram of durations (LATENCY_BUCKETS)."""
    return Histogram(name, doc, labels, buckets=LATENCY_BUCKETS, registry=registry)


def _gauge(registry: CollectorRegistry, name: str, doc: str, labels: list[str]) -> Gauge:
    return Gauge(name, doc, labels, registry=registry)


class MetricsServer:
    """The `/metrics` HTTP endpoint of one registry, in a daemon thread."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        self._server, self._thread = start_http_server(port, addr=host, registry=registry)
        self.port = int(self._server.server_port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class ServiceMetrics:
    """The metrics of one service process (see the module's docstring)."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        r = self.registry
        self.rpc_requests = _counter(
            r,
            "iopcare_rpc_requests",
            "gRPC calls handled, by method and status code",
            ["service", "method", "code"],
        )
        self.rpc_duration = _histogram(
            r,
            "iopcare_rpc_duration_seconds",
            "gRPC call duration (for streams: until the stream ends)",
            ["service", "method"],
        )
        self.rpc_streams_open = _gauge(
            r,
            "iopcare_rpc_streams_open",
            "server-streaming calls in flight (notes WatchThread)",
            ["service", "method"],
        )
        self.relay_publish = _histogram(
            r,
            "iopcare_relay_publish_seconds",
            "outbox relay: one batch from send to every acknowledgement",
            ["service"],
        )
        self.relay_delay = _histogram(
            r,
            "iopcare_relay_event_delay_seconds",
            "outbox relay: an event's commit to its acknowledgement on the topic",
            ["service"],
        )
        self.relay_published = _counter(
            r, "iopcare_relay_published", "outbox rows published and acknowledged", ["service"]
        )
        self.dependency_up = _gauge(
            r,
            "iopcare_dependency_up",
            "1 while the dependency answered the last readiness probe (kit.health)",
            ["service", "dependency"],
        )
        self._state = _StateCollector(service)
        r.register(self._state)

    # What the scrape reads ----------------------------------------------------------------------
    def track_outbox(self, db: Database, outbox: Table) -> None:
        self._state.outboxes.append((db, outbox))

    def track_consumers(self, consumers: Iterable[EventConsumer]) -> None:
        self._state.consumers.extend(consumers)

    def track_database(self, db: Database) -> None:
        self._state.databases.append(db)

    # What the relay reports -----------------------------------------------------------------------
    def observe_publish(self, seconds: float, event_times: list[datetime]) -> None:
        """One relay batch was acknowledged after `seconds`; `event_times` are its rows' times."""
        self.relay_publish.labels(self.service).observe(seconds)
        self.relay_published.labels(self.service).inc(len(event_times))
        now = datetime.now(UTC)
        delay = self.relay_delay.labels(self.service)
        for at in event_times:
            stamp = at if at.tzinfo else at.replace(tzinfo=UTC)
            delay.observe(max(0.0, (now - stamp).total_seconds()))


class _StateCollector(Collector):
    """Values read when Prometheus scrapes: the outbox, the consumers' counters, the pool."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.outboxes: list[tuple[Database, Table]] = []
        self.consumers: list[EventConsumer] = []
        self.databases: list[Database] = []

    def collect(self) -> Iterator[Metric]:
        yield from self._outbox()
        yield from self._consumers()
        yield from self._pools()

    def _outbox(self) -> Iterator[Metric]:
        backlog = GaugeMetricFamily(
            "iopcare_outbox_backlog", "outbox rows waiting to be published", labels=["service"]
        )
        oldest = GaugeMetricFamily(
            "iopcare_outbox_oldest_age_seconds",
            "age of the oldest outbox row waiting to be published (0: none waits)",
            labels=["service"],
        )
        parked = GaugeMetricFamily(
            "iopcare_outbox_parked",
            "outbox rows parked by the relay (`iopcare outbox parked`)",
            labels=["service"],
        )
        for db, outbox in self.outboxes:
            o = outbox.c
            try:
                with db.read() as conn:
                    count, first = conn.execute(
                        select(func.count(), func.min(o.time)).where(
                            and_(o.sent_at.is_(None), o.parked_at.is_(None))
                        )
                    ).one()
                    held = conn.execute(
                        select(func.count()).where(
                            and_(o.parked_at.is_not(None), o.sent_at.is_(None))
                        )
                    ).scalar_one()
            except Exception as exc:
                # The database is away: the readiness gauge says so; the scrape still answers.
                log.debug("metrics: outbox not readable: %s", type(exc).__name__)
                continue
            age = 0.0
            if first is not None:
                stamp = first if first.tzinfo else first.replace(tzinfo=UTC)
                age = max(0.0, (datetime.now(UTC) - stamp).total_seconds())
            backlog.add_metric([self.service], int(count))
            oldest.add_metric([self.service], age)
            parked.add_metric([self.service], int(held))
        yield from (backlog, oldest, parked)

    def _consumers(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            "iopcare_consumer_lag",
            "records on a partition not yet handled by the consumer, as of its last fetch",
            labels=["service", "consumer", "topic", "partition"],
        )
        counters = {
            "applied": CounterMetricFamily(
                "iopcare_consumer_applied", "events applied", labels=["service", "consumer"]
            ),
            "duplicates": CounterMetricFamily(
                "iopcare_inbox_duplicates_skipped",
                "redelivered events the inbox recognised and skipped",
                labels=["service", "consumer"],
            ),
            "dead_lettered": CounterMetricFamily(
                "iopcare_consumer_dead_lettered",
                "records sent to a dead-letter topic",
                labels=["service", "consumer"],
            ),
            "rejected": CounterMetricFamily(
                "iopcare_consumer_rejected",
                "records refused as unsigned, forged or undecryptable",
                labels=["service", "consumer"],
            ),
        }
        for consumer in self.consumers:
            for (topic, partition), behind in sorted(dict(consumer.lag).items()):
                lag.add_metric([self.service, consumer.name, topic, str(partition)], behind)
            for field, family in counters.items():
                family.add_metric([self.service, consumer.name], getattr(consumer.stats, field))
        yield lag
        yield from counters.values()

    def _pools(self) -> Iterator[Metric]:
        checked_out = GaugeMetricFamily(
            "iopcare_db_pool_checked_out",
            "database connections in use",
            labels=["service", "engine"],
        )
        size = GaugeMetricFamily(
            "iopcare_db_pool_size", "database connections pooled", labels=["service", "engine"]
        )
        for db in self.databases:
            engines = {"write": db.write_engine, "read": db.read_engine}
            for role, engine in engines.items():
                if role == "read" and engine is db.write_engine:
                    continue  # one engine for both (PostgreSQL)
                pool: Any = engine.pool
                if hasattr(pool, "checkedout"):
                    checked_out.add_metric([self.service, role], pool.checkedout())
                if hasattr(pool, "size"):
                    size.add_metric([self.service, role], pool.size())
        yield from (checked_out, size)


# gRPC --------------------------------------------------------------------------------------------
class RpcMetricsInterceptor(HandlerInterceptor):
    """Counts and times every call by its final status; outermost, so it sees the status the
    client gets (the error interceptor's mapping included)."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics

    def _finish(self, method: str, started: float, context: grpc.ServicerContext, ok: bool) -> None:
        code = _code_name(context, ok)
        service = self.metrics.service
        self.metrics.rpc_requests.labels(service, method, code).inc()
        self.metrics.rpc_duration.labels(service, method).observe(time.monotonic() - started)

    def wrap(self, fn: Behavior, streaming: bool, method: str) -> Behavior:
        if streaming:

            def stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                started = time.monotonic()
                gauge = self.metrics.rpc_streams_open.labels(self.metrics.service, method)
                gauge.inc()
                ok = False
                try:
                    yield from fn(request, context)
                    ok = True
                finally:
                    gauge.dec()
                    self._finish(method, started, context, ok)

            return stream

        def unary(request: Any, context: grpc.ServicerContext) -> Any:
            started = time.monotonic()
            ok = False
            try:
                result = fn(request, context)
                ok = True
                return result
            finally:
                self._finish(method, started, context, ok)

        return unary


def _code_name(context: grpc.ServicerContext, ok: bool) -> str:
    code = None
    try:
        code = context.code()
    except Exception:  # an older grpc without ServicerContext.code()
        code = None
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    if isinstance(code, int):
        return next((c.name for c in grpc.StatusCode if c.value[0] == code), "UNKNOWN")
    if not context.is_active():
        # The client went away (a stream it cancelled ends quietly, or with GeneratorExit).
        return "CANCELLED"
    return "OK" if ok else "UNKNOWN"


# HTTP (the gateway) ------------------------------------------------------------------------------
class HttpMetrics:
    """The gateway's metrics: per REST interaction, rate, errors and duration."""

    def __init__(self, name: str = "gateway") -> None:
        self.name = name
        self.registry = CollectorRegistry()
        self.requests = _counter(
            self.registry,
            "iopcare_http_requests",
            "REST requests answered, by interaction and status",
            ["service", "interaction", "method", "status"],
        )
        self.duration = _histogram(
            self.registry,
            "iopcare_http_request_duration_seconds",
            "REST request duration, by interaction",
            ["service", "interaction", "method"],
        )
        self.in_flight = _gauge(
            self.registry,
            "iopcare_http_requests_in_flight",
            "REST requests being served",
            ["service"],
        )


ASGIApp = Callable[..., Any]


class HttpMetricsMiddleware:
    """Pure ASGI middleware (Starlette `Middleware(HttpMetricsMiddleware, ...)`): counts and
    times each HTTP request. `interaction(method, path)` names what the request does (a FHIR
    interaction: read, search-type, $handoff...), never an id, so the labels stay few and hold
    no patient data."""

    def __init__(
        self, app: ASGIApp, metrics: HttpMetrics, interaction: Callable[[str, str], str]
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.interaction = interaction

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        method = str(scope.get("method", "GET"))
        kind = self.interaction(method, str(scope.get("path", "")))
        status = {"code": 500}

        async def sending(message: dict[str, Any]) -> None:
            if message.get("type") == "http.response.start":
                status["code"] = int(message.get("status", 500))
            await send(message)

        started = time.monotonic()
        in_flight = self.metrics.in_flight.labels(self.metrics.name)
        in_flight.inc()
        try:
            await self.app(scope, receive, sending)
        finally:
            in_flight.dec()
            name = self.metrics.name
            self.metrics.requests.labels(name, kind, method, str(status["code"])).inc()
            self.metrics.duration.labels(name, kind, method).observe(time.monotonic() - started)
