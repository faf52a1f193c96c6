"""Fixtures of the outside checks: the gateway in front of the three services (real Kafka, SQLite)
served by uvicorn, a system token for it, and the HAPI FHIR tool built once per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import hapi
from tests.support.gateway import Stack, stack_for, system_token


@pytest.fixture(scope="session")
def hapi_jar() -> Path:
    return hapi.build()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Iterator[Stack]:
    with stack_for("sqlite", tmp_path_factory, kafka_bootstrap, "external") as running:
        yield running


@pytest.fixture(scope="module")
def token(stack: Stack) -> str:
    # As `iopcare token --system --scope 'system/*.cruds'` prints it (5 minutes).
    return system_token(stack.settings, ["system/*.cruds"])


@pytest.fixture(scope="module")
def ehr(stack: Stack, token: str) -> Iterator[httpx.Client]:
    with stack.client(token) as client:
        yield client
