"""Readiness: a service answers NOT_SERVING on the standard gRPC health service while its
database or its Kafka brokers cannot be reached, and SERVING again once they can.

A `ReadinessProbe` runs in a thread of the service process: every `interval` seconds it runs
`SELECT 1` on the database and asks the brokers for the cluster's description (a metadata
request), each with a short timeout, and sets every health name the server registered ("" and
each service) accordingly. A load balancer or Kubernetes readiness probe (`grpc_health_probe`, a
`grpc` probe) then stops sending calls to a replica that could only answer UNAVAILABLE, while its
relay and consumers keep retrying on their own. Liveness is a different question (is the process
stuck?) and must not use this status, or an outage of the database would restart every pod: it
asks for the health name `liveness` instead, which this probe never changes.

After `enter_graceful_shutdown` the health servicer ignores these updates: a stopping service
stays NOT_SERVING.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from grpc_health.v1 import health, health_pb2
from sqlalchemy import text

from iopcare.kit.background import Background
from iopcare.kit.db import Database

log = logging.getLogger(__name__)

Check = Callable[[], None]

#: The health name a liveness probe asks for: SERVING while the process runs (until it begins a
#: graceful shutdown), whatever its dependencies do.
LIVENESS = "liveness"


def database_check(db: Database) -> Check:
    def check() -> None:
        with db.read() as conn:
            conn.execute(text("SELECT 1"))

    return check


class BrokerCheck:
    """A metadata round trip to the brokers with this process's own connection settings (TLS,
    SASL): an unreachable, paused or refusing broker fails it within about `timeout` seconds.
    The admin client is kept between probes and made anew after a failure."""

    def __init__(self, client_options: dict[str, Any], client_id: str, timeout: float = 3.0):
        self.client_options = client_options
        self.client_id = client_id
        self.timeout = timeout
        self._admin: Any = None

    def __call__(self) -> None:
        from kafka import KafkaAdminClient

        try:
            if self._admin is None:
                self._admin = KafkaAdminClient(
                    **self.client_options,
                    client_id=self.client_id,
                    request_timeout_ms=int(self.timeout * 1000),
                    bootstrap_timeout_ms=int(self.timeout * 1000),
                    reconnect_backoff_max_ms=1000,
                )
            self._admin.describe_cluster()
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            try:
                admin.close()
            except Exception:
                log.debug("readiness: error closing the admin client", exc_info=True)


def broker_check(client_options: dict[str, Any], client_id: str, timeout: float = 3.0) -> Check:
    return BrokerCheck(client_options, client_id, timeout)


@dataclass(eq=False)
class ReadinessProbe(Background):
    """Sets the health status of `names` from `checks` (dependency name -> check)."""

    servicer: health.HealthServicer
    names: Sequence[str]
    checks: dict[str, Check]
    interval: float = 2.0
    on_result: Callable[[str, bool], None] | None = None
    ready: bool = field(default=True, init=False)
    thread_name = "readiness"

    def stop(self, timeout: float = 5.0) -> bool:
        ended = super().stop(timeout)
        for check in self.checks.values():
            close = getattr(check, "close", None)
            if close is not None:
                close()
        return ended

    def probe(self) -> bool:
        """Runs every check once and sets the health status; returns whether all passed."""
        failing = []
        for name, check in self.checks.items():
            try:
                check()
                up = True
            except Exception as exc:
                up = False
                failing.append(f"{name} ({type(exc).__name__})")
            if self.on_result is not None:
                self.on_result(name, up)
        ready = not failing
        if ready != self.ready:
            if ready:
                log.info("readiness: dependencies reachable again; SERVING")
            else:
                log.warning("readiness: %s unreachable; NOT_SERVING", ", ".join(failing))
        self.ready = ready
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if ready
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in self.names:
            self.servicer.set(name, status)
        return ready

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self.probe()
            except Exception:
                log.exception("readiness: probe failed")
            self._stop.wait(self.interval)
