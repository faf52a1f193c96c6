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
