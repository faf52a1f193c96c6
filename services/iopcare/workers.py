"""Several processes of one service on one port (ADR 0026).

`iopcare serve NAME` with `IOPCARE_<NAME>_PROCESSES=N` (N > 1) runs this supervisor: it brings the
database to the newest migration once, then starts N worker processes (`iopcare serve NAME`
again, marked by `IOPCARE_WORKER_INDEX`), each a whole service (gRPC server, relay, consumers,
periodic tasks) whose gRPC server binds the same port with SO_REUSEPORT, so the kernel spreads
connections over them. What they share is what replicas share (ADR 0018): the consumer group, the
relay's lease (one publishes at a time), the periodic tasks' per-item claims, and the database.

The supervisor holds no data. On SIGTERM or SIGINT it passes SIGTERM to every worker and waits
for them (each exits within 5 s: kit.runtime); a worker still running 5.5 s after the signal is
killed. A worker that exits on its own stops the others and the supervisor exits with 1: the
service is down as a whole, and whatever restarts it (Kubernetes, `iopcare up`) restarts it whole.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from iopcare.devtools.lifetime import die_with_parent

log = logging.getLogger("iopcare.workers")

#: Set in a worker's environment: its index (0..N-1). A worker never supervises.
WORKER_INDEX = "IOPCARE_WORKER_INDEX"
#: After the signal, a worker still running this long is killed (each exits within 5 s itself).
KILL_AFTER_SECONDS = 5.5


def worker_index() -> int | None:
    """This process's index among its service's workers; None when it is not a worker."""
    value = os.environ.get(WORKER_INDEX)
    return int(value) if value is not None and value.isdigit() else None


def _migrate(name: str, database_url: str) -> None:
    from iopcare.kit.db import Database, migrate

    # The service's migrations folder (its app.MIGRATIONS), without importing the service.
    spec = importlib.util.find_spec(f"iopcare.{name}")
    assert spec is not None and spec.origin is not None
    migrations = Path(spec.origin).parent / "migrations"
    db = Database(database_url)
    try:
        migrate(db, migrations)
    finally:
        db.dispose()


def supervise(name: str, count: int, database_url: str | None) -> int:
    """Runs `count` workers of service `name` until a signal (0) or until one exits (1); the
    database (None: the gateway, which has none) is migrated first."""
    stop = threading.Event()
    signalled: list[float] = []

    def _on_signal(signum: int, _frame: Any) -> None:
        if not signalled:
            signalled.append(time.monotonic())
            log.info("%s: signal %d, stopping %d workers", name, signum, count)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    # Once, before the workers start: N processes must not race to run the same migrations.
    if database_url is not None:
        _migrate(name, database_url)
    workers: list[subprocess.Popen[bytes]] = []
    for index in range(count):
        if stop.is_set():
            break
        workers.append(
            subprocess.Popen(
                [sys.executable, "-m", "iopcare.cli", "serve", name],
                env={**os.environ, WORKER_INDEX: str(index)},
                # A worker gets SIGTERM when the supervisor dies, however it dies.
                preexec_fn=die_with_parent(signal.SIGTERM),
            )
        )
    log.info("%s: %d workers started (pids %s)", name, len(workers), [w.pid for w in workers])
    code = 0
    while not stop.is_set():
        exited = [w for w in workers if w.poll() is not None]
        if exited:
            log.error(
                "%s: worker %d exited with %s; stopping the others",
                name,
                exited[0].pid,
                exited[0].returncode,
            )
            code = 1
            signalled.append(time.monotonic())
            break
        stop.wait(0.5)
    _stop_all(workers, signalled[0] if signalled else time.monotonic())
    # Nothing to tear down (the supervisor holds no data): exit without the interpreter's
    # finalisation, which took seconds on a loaded machine.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _stop_all(workers: list[subprocess.Popen[bytes]], since: float) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    deadline = since + KILL_AFTER_SECONDS
    for worker in workers:
        try:
            worker.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("worker %d still running at the deadline; killed", worker.pid)
            worker.kill()
            worker.wait()
    log.info("workers stopped %.2fs after the signal", time.monotonic() - since)
