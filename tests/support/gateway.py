"""The gateway under test: the three services in this process on the test's database and the
session's Kafka, and the gateway's ASGI app served by a real uvicorn server on a free port, so
tests talk HTTP to it with httpx like an EHR would."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn

from iopcare.gateway.app import build
from iopcare.gateway.settings import GatewaySettings
from iopcare.kit import auth
from iopcare.kit.runtime import ServiceRuntime
from iopcare.kit.settings import Settings
from tests.support import harness

FHIR_JSON = "application/fhir+json"


@dataclass
class Stack:
    settings: Settings
    base_url: str
    runtimes: dict[str, ServiceRuntime]
    audit: list[dict[str, Any]] = field(default_factory=list)

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Accept": FHIR_JSON}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30, **kwargs)


def system_token(
    settings: Settings,
    scopes: list[str] | None = None,
    *,
    lifetime: int = 300,
    subject: str = "system:test-ehr",
) -> str:
    """A SMART Backend Services style token, as `iopcare token --system` prints."""
    return auth.mint_token(
        settings,
        subject=subject,
        role="system",
        scopes=scopes if scopes is not None else ["system/*.cruds"],
        lifetime_seconds=lifetime,
    )


def practitioner_token(
    settings: Settings, role: str, practitioner: str, scopes: list[str] | None = None
) -> str:
    return auth.mint_token(
        settings,
        subject=f"practitioner:{practitioner}",
        role=role,
        practitioner_id=practitioner,
        scopes=scopes if scopes is not None else ["user/*.cruds"],
        lifetime_seconds=600,
    )


@contextmanager
def running_stack(
    settings: Settings, database_urls: dict[str, str], **gateway_overrides: Any
) -> Iterator[Stack]:
    runtimes = {
        name: harness.build(name, settings, database_urls[name])
        for name in ("careplan", "scheduling", "notes")
    }
    for runtime in runtimes.values():
        runtime.start()
    audit: list[dict[str, Any]] = []
    gateway_settings = GatewaySettings(
        careplan_address=f"127.0.0.1:{runtimes['careplan'].port}",
        scheduling_address=f"127.0.0.1:{runtimes['scheduling'].port}",
        notes_address=f"127.0.0.1:{runtimes['notes'].port}",
        **gateway_overrides,
    )
    app, gateway = build(settings, gateway_settings, audit.append)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, name=f"uvicorn-{uuid.uuid4().hex[:6]}")
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the gateway's server did not start")
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield Stack(settings, f"http://127.0.0.1:{port}/fhir", runtimes, audit)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        gateway.services.close()
        for runtime in runtimes.values():
            runtime.stop(grace=0.5)


def hl7_bundle_dir() -> Any:
    """The official HL7 R4 example Bundles (same npm package as tests/support/hl7_examples.py,
    which extracts only single resources), fetched once into `.cache/hl7/r4-bundles-4.0.1`."""
    import shutil
    import subprocess
    import tarfile
    import tempfile
    from pathlib import Path

    from tests.support import hl7_examples

    cache = hl7_examples.CACHE.with_name("r4-bundles-4.0.1")
    if (cache / ".complete").exists():
        return cache
    if shutil.which("npm") is None:
        harness.missing("npm is not installed, so the HL7 example package cannot be fetched")
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(
            ["npm", "pack", hl7_examples.PACKAGE, "--silent"],
            cwd=folder,
            check=True,
            capture_output=True,
            timeout=300,
        )
        (archive,) = Path(folder).glob("*.tgz")
        partial = cache.with_name(cache.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                name = Path(member.name).name
                if member.isfile() and name.startswith("Bundle-") and name.endswith(".json"):
                    extracted = tar.extractfile(member)
                    if extracted is not None:
                        (partial / name).write_bytes(extracted.read())
        (partial / ".complete").touch()
        shutil.rmtree(cache, ignore_errors=True)
        partial.rename(cache)
    return cache
