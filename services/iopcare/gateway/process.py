"""The gateway as a child process (`iopcare up`, end-to-end tests): ready when `GET /metadata`
answers, since it speaks HTTP rather than gRPC health."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from iopcare.kit.processes import ServiceProcess


@dataclass
class GatewayProcess(ServiceProcess):
    base_path: str = "/fhir"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.base_path}"

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise TimeoutError(f"{self.name} exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/metadata", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready after {timeout:.0f}s")
