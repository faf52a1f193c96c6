"""Shared fixtures: a real Kafka broker and real databases (SQLite and PostgreSQL).

- `kafka_bootstrap` starts one single-node KRaft broker per test session from the Maven Central
  jars (or uses KAFKA_BOOTSTRAP_SERVERS when set) and creates the topics explicitly.
- `database_url` runs a test once on SQLite and once on PostgreSQL (a throwaway server started
  from Debian's package). Without PostgreSQL the PostgreSQL leg is skipped, except when `CI` is
  set: then it fails, so a CI run can never go green without having tested PostgreSQL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# The tests run in development mode (generated token and audit keys under each test's data
# folder), as `make run` does; the child processes they start inherit it. Production refuses to
# start without configured keys (tests/security/test_hardening_attacks.py).
os.environ.setdefault("IOPCARE_DEV_MODE", "true")

from iopcare.devtools import kafka_broker
from iopcare.kit import failpoints, topics
from tests.support.harness import missing


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Markers from the folder, so `pytest -m unit` selects by layer without per-file boilerplate.
    for item in items:
        path = str(item.fspath)
        for layer in ("unit", "integration", "e2e", "faults", "security"):
            if f"{os.sep}{layer}{os.sep}" in path:
                item.add_marker(getattr(pytest.mark, layer))


@pytest.fixture(autouse=True)
def _disarm_failpoints() -> Iterator[None]:
    failpoints.disarm()
    yield
    failpoints.disarm()


@pytest.fixture(scope="session")
def kafka_broker_instance(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[kafka_broker.KafkaBroker | None]:
    if kafka_broker.external_bootstrap():
        yield None
        return
    broker = kafka_broker.KafkaBroker(data_dir=tmp_path_factory.mktemp("kafka"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker_instance: kafka_broker.KafkaBroker | None) -> str:
    bootstrap = (
        kafka_broker_instance.bootstrap_servers
        if kafka_broker_instance is not None
        else kafka_broker.external_bootstrap()
    )
    assert bootstrap
    kafka_broker.create_topics(bootstrap, topics.all_topics(), partitions=topics.PARTITIONS)
    return bootstrap


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[object | None]:
    from tests.support import postgres

    reason = postgres.postgres_available()
    if reason is not None:
        # Tests that need it skip (or, under CI, fail) through `missing` when they ask for it.
        yield None
        return
    server = postgres.start_session_server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def restartable_postgres(postgres_server: object | None) -> object:
    """The session's PostgreSQL server, for tests that kill or restart it (not an external one)."""
    if postgres_server is None:
        missing("PostgreSQL is not available on this machine")
    if getattr(postgres_server, "is_external", False):
        missing("the PostgreSQL server is external and may not be restarted by tests")
    return postgres_server


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'service.db'}"
    server = request.getfixturevalue("postgres_server")
    if server is None:
        missing("PostgreSQL is not available on this machine")
    return str(server.create_database(f"t_{uuid.uuid4().hex[:12]}"))  # type: ignore[attr-defined]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path
