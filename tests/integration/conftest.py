"""Fixtures of the integration tests: settings on the session's broker, and a careplan service
running in the test process on the database under test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.kit.runtime import ServiceRuntime
from iopcare.kit.settings import Settings
from tests.support import harness


@pytest.fixture
def settings(data_dir: Path, kafka_bootstrap: str) -> Settings:
    return harness.settings_for(data_dir, kafka_bootstrap, harness.isolated_topics(kafka_bootstrap))


@pytest.fixture
def careplan(settings: Settings, database_url: str) -> Iterator[ServiceRuntime]:
    runtime = harness.build("careplan", settings, database_url)
    runtime.start()
    yield runtime
    runtime.stop(grace=0.5)


@pytest.fixture
def stub(careplan: ServiceRuntime) -> Iterator[pb_grpc.CarePlanServiceStub]:
    with harness.channel(careplan) as channel:
        yield pb_grpc.CarePlanServiceStub(channel)
