"""The Compose Specification's JSON schema, and a compose loader, from the Go module that Docker
Compose itself uses.

`github.com/compose-spec/compose-go/v2` embeds `schema/compose-spec.json` and validates every
compose file against it before loading it. The module comes from the Go module proxy with the
ordinary `go mod download` (checked against the Go checksum database), the schema is copied to
`<repo>/.cache/compose-spec/<version>/compose-spec.json` once (the cache pattern of
:mod:`iopcare.devtools.downloads`), and its SHA-256 is checked against the one recorded here, so a
test validates against exactly this schema on every machine.

`ensure_compose_checker` builds `deploy/check` (a few lines of Go around compose-go's loader,
its dependencies pinned by its go.sum) with `go build` into
`<repo>/.cache/compose-check/<digest of its sources>/compose-check`: the compose file loaded as
Docker Compose loads it, without a container engine.

Command line (download and build only)::

    python -m iopcare.devtools.compose_schema
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from iopcare.devtools import downloads
from iopcare.devtools.kafka_broker import repo_root

__all__ = [
    "COMPOSE_GO_MODULE",
    "COMPOSE_GO_VERSION",
    "ComposeSchemaError",
    "ensure_compose_checker",
    "ensure_compose_schema",
    "load_compose_schema",
]

COMPOSE_GO_MODULE = "github.com/compose-spec/compose-go/v2"
#: The newest release `go mod download` accepts with this machine's Go (1.26).
COMPOSE_GO_VERSION = "v2.16.2"
#: SHA-256 of that release's schema/compose-spec.json.
SCHEMA_SHA256 = "f266dcbb043229405d7cedd5aec918f9102c2b3d5e3850808fdd8edd564a43ff"
SCHEMA_FILE = "compose-spec.json"


class ComposeSchemaError(RuntimeError):
    """The schema could not be downloaded, or is not the one recorded."""


def ensure_compose_schema(cache_dir: Path | None = None) -> Path:
    """The cached schema file, downloaded with `go mod download` first if needed."""
    base = (cache_dir or repo_root() / ".cache" / "compose-spec").resolve()
    folder = downloads.ensure_installed(
        base / COMPOSE_GO_VERSION, _download, f"{COMPOSE_GO_MODULE}@{COMPOSE_GO_VERSION}"
    )
    schema = folder / SCHEMA_FILE
    digest = hashlib.sha256(schema.read_bytes()).hexdigest()
    if digest != SCHEMA_SHA256:
        raise ComposeSchemaError(
            f"{schema} has SHA-256 {digest}, not the recorded {SCHEMA_SHA256}; delete the folder"
        )
    return schema


def load_compose_schema(cache_dir: Path | None = None) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(ensure_compose_schema(cache_dir).read_text())
    return loaded


def _download(staging: Path) -> Path:
    go = shutil.which("go")
    if go is None:
        raise ComposeSchemaError("the go command is not on PATH (it fetches the compose-go module)")
    with tempfile.TemporaryDirectory(prefix="compose-go-") as modcache:
        env = {
            **os.environ,
            "GOMODCACHE": modcache,
            # Module files are read-only by default, which would stop the cleanup.
            "GOFLAGS": "-modcacherw",
        }
        command = [go, "mod", "download", "-json", f"{COMPOSE_GO_MODULE}@{COMPOSE_GO_VERSION}"]
        try:
            # Run in the empty cache folder: outside any go.mod, the module@version form works.
            result = subprocess.run(
                command,
                cwd=modcache,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ComposeSchemaError(f"go mod download timed out after {exc.timeout}s") from exc
        if result.returncode != 0:
            raise ComposeSchemaError(f"{' '.join(command)} failed:\n{result.stderr}")
        module_dir = Path(json.loads(result.stdout)["Dir"])
        shutil.copyfile(module_dir / "schema" / SCHEMA_FILE, staging / SCHEMA_FILE)
    return staging


CHECKER_SOURCE = repo_root() / "deploy" / "check"


def ensure_compose_checker(cache_dir: Path | None = None) -> Path:
    """The `compose-check` program built from deploy/check (once per version of its sources)."""
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "main.go"):
        digest.update(name.encode() + b"\0" + (CHECKER_SOURCE / name).read_bytes())
    base = (cache_dir or repo_root() / ".cache" / "compose-check").resolve()
    folder = downloads.ensure_installed(
        base / digest.hexdigest()[:16], _build_checker, f"deploy/check {digest.hexdigest()}"
    )
    return folder / "compose-check"


def _build_checker(staging: Path) -> Path:
    go = shutil.which("go")
    if go is None:
        raise ComposeSchemaError("the go command is not on PATH (it builds deploy/check)")
    # -mod=readonly: the dependencies are exactly those go.sum pins (checked by the go command).
    env = {**os.environ, "GOFLAGS": "-modcacherw -mod=readonly -buildvcs=false"}
    command = [go, "build", "-o", str(staging / "compose-check"), "."]
    try:
        result = subprocess.run(
            command,
            cwd=CHECKER_SOURCE,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ComposeSchemaError(f"go build timed out after {exc.timeout}s") from exc
    if result.returncode != 0:
        raise ComposeSchemaError(f"go build of {CHECKER_SOURCE} failed:\n{result.stderr}")
    return staging


def main() -> int:
    print(ensure_compose_schema())
    print(ensure_compose_checker())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
