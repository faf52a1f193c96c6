"""`iopcare up` (what `make run` runs) started by a test as a real process: on free ports, with
its own data folder, its output captured in a file the test reads as it goes."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from iopcare.devtools.kafka_broker import free_port
from iopcare.kit.settings import REPO_ROOT

PORT_NAMES = ("kafka", "controller", "careplan", "scheduling", "notes", "gateway")


@dataclass
class Launcher:
    process: subprocess.Popen[bytes]
    output: Path
    ports: dict[str, int]

    def printed(self) -> bytes:
        return self.output.read_bytes()


def start_up(folder: Path, *args: str) -> Launcher:
    """Starts `iopcare up ARGS` in development mode in a session of its own (so the test can
    signal it as a terminal would)."""
    ports = {name: free_port() for name in PORT_NAMES}
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    env.update(
        {
            "IOPCARE_DEV_MODE": "true",
            "IOPCARE_DATA_DIR": str(folder / "var"),
            "IOPCARE_CAREPLAN_PORT": str(ports["careplan"]),
            "IOPCARE_SCHEDULING_PORT": str(ports["scheduling"]),
            "IOPCARE_NOTES_PORT": str(ports["notes"]),
            "IOPCARE_GATEWAY_PORT": str(ports["gateway"]),
            "PYTHONUNBUFFERED": "1",
        }
    )
    output = folder / "launcher.out"
    command = [sys.executable, "-m", "iopcare.cli", "up", *args]
    command += ["--kafka-port", str(ports["kafka"])]
    command += ["--kafka-controller-port", str(ports["controller"])]
    with output.open("wb") as sink:
        process = subprocess.Popen(
            command,
            env=env,
            cwd=REPO_ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Launcher(process, output, ports)
