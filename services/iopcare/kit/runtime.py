"""Running one service as a process: gRPC server, outbox relay and consumers, and clean shutdown.

Each service's `app.build()` is its composition root: it wires its store, servicer and handlers
into a `ServiceRuntime`; `serve()` runs it until SIGTERM or SIGINT, then shuts down in the order
that loses nothing: stop taking calls (health NOT_SERVING, then a grace period for calls in
flight), stop consuming (offsets are only committed after applied transactions, so stopping
anywhere is safe), and let the relay finish its current batch.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2

from iopcare.kit import failpoints
from iopcare.kit.consumer import EventConsumer
from iopcare.kit.db import Database, migrate
from iopcare.kit.relay import OutboxRelay

log = logging.getLogger(__name__)


@dataclass
class ServiceRuntime:
    name: str
    db: Database
    server: grpc.Server
    port: int
    health: health.HealthServicer
    relay: OutboxRelay | None = None
    consumers: list[EventConsumer] = field(default_factory=list)
    _stopped: bool = False

    def start(self) -> None:
        self.server.start()
        if self.relay is not None:
            self.relay.start()
        for consumer in self.consumers:
            consumer.start()
        log.info("%s serving on port %d", self.name, self.port)

    def stop(self, grace: float = 5.0) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait(grace + 1)
        for consumer in self.consumers:
            consumer.stop()
        if self.relay is not None:
            self.relay.stop()
        self.db.dispose()
        log.info("%s stopped", self.name)

    def serve_forever(self) -> None:
        """Runs until SIGTERM or SIGINT, then stops gracefully."""
        done = threading.Event()

        def _on_signal(signum: int, _frame: Any) -> None:
            log.info("%s: signal %d, shutting down", self.name, signum)
            done.set()

        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)
        self.start()
        done.wait()
        self.stop()


def open_database(url: str, migrations: Path) -> Database:
    db = Database(url)
    migrate(db, migrations)
    return db


class JsonFormatter(logging.Formatter):
    """One JSON object per line: what log shippers and Kubernetes expect."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_process(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.getLogger("kafka").setLevel(logging.WARNING)
    failpoints.load_from_env()


__all__ = ["ServiceRuntime", "configure_process", "health_pb2", "open_database"]
