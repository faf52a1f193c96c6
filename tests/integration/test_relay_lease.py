"""Only one relay publishes a PostgreSQL outbox at a time, also across a database restart."""

from __future__ import annotations

from typing import Any

from iopcare.careplan import app, store
from iopcare.kit.db import Database, migrate
from iopcare.kit.relay import OutboxRelay


def test_a_relay_that_lost_its_lease_in_a_restart_stands_by(restartable_postgres: Any) -> None:
    postgres_server = restartable_postgres
    url = postgres_server.create_database("lease_test")
    first, second = Database(url), Database(url)
    migrate(first, app.MIGRATIONS)
    a = OutboxRelay(first, store.outbox, lambda: None, lock_name="careplan")  # type: ignore[arg-type,return-value]
    b = OutboxRelay(second, store.outbox, lambda: None, lock_name="careplan")  # type: ignore[arg-type,return-value]
    try:
        assert a._hold_lease() and a._lease_still_held()
        assert not b._hold_lease()
        postgres_server.restart()
        # The restart dropped the lock; whichever relay asks first now gets it, and the other
        # must not believe it still holds it.
        assert not a._lease_still_held()
        assert b._hold_lease() and b._lease_still_held()
        assert not a._hold_lease()
    finally:
        a.stop(timeout=1)
        b.stop(timeout=1)
        first.dispose()
        second.dispose()


def test_on_sqlite_one_relay_holds_the_file_lease_and_another_takes_it_when_released(
    tmp_path: Any,
) -> None:
    """Two Database objects on one file hold separate descriptors, as two processes of one
    service do (ADR 0026): the file lock lets one relay publish; the other takes over once the
    first lets go (closing its descriptor, or dying: the kernel releases the lock either way)."""
    url = f"sqlite:///{tmp_path / 'careplan.db'}"
    first, second = Database(url, cross_process=True), Database(url, cross_process=True)
    migrate(first, app.MIGRATIONS)
    a = OutboxRelay(first, store.outbox, lambda: None, lock_name="careplan")  # type: ignore[arg-type,return-value]
    b = OutboxRelay(second, store.outbox, lambda: None, lock_name="careplan")  # type: ignore[arg-type,return-value]
    b._stop.set()  # a refused lease waits a second before trying again; not here
    try:
        assert a._hold_lease() and a._lease_still_held()
        assert not b._hold_lease()
        a._release_lease()
        assert b._hold_lease() and b._taking_over  # it checks the topic's tail first
        assert not a._hold_lease()
    finally:
        a._release_lease()
        b._release_lease()
        first.dispose()
        second.dispose()


def test_on_sqlite_writers_of_two_processes_queue_on_the_file_lock(tmp_path: Any) -> None:
    """A writer of another process (here another Database on the file) waits for the lock
    instead of polling in SQLite's busy handler, and gets it as soon as it is released."""
    import threading
    import time

    url = f"sqlite:///{tmp_path / 'careplan.db'}"
    first, second = Database(url, cross_process=True), Database(url, cross_process=True)
    migrate(first, app.MIGRATIONS)
    got: list[float] = []
    try:
        with first.write_lock():

            def other() -> None:
                with second.write_lock():
                    got.append(time.monotonic())

            waiter = threading.Thread(target=other)
            waiter.start()
            time.sleep(0.3)
            assert got == []  # still queued behind the first process's writer
            released = time.monotonic()
        waiter.join(5)
        assert got and got[0] - released < 0.5
    finally:
        first.dispose()
        second.dispose()
