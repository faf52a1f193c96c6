"""Fetching tools with Maven into the repo's cache, once, and running their commands.

Shared by the Kafka broker's jars (:mod:`iopcare.devtools.kafka`) and Keycloak
(:mod:`iopcare.devtools.keycloak`): a cached folder is complete when it holds a marker file; it
is filled in a sibling folder and renamed into place at the end, so an interrupted download never
looks complete; parallel test workers that all find it missing wait for the one that downloads.
"""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

COMPLETE_MARKER = ".complete"


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    # Parallel test workers may all find the cache empty; only one of them should run Maven.
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_installed(target: Path, fill: Callable[[Path], Path], marker: str) -> Path:
    """`target`, installed unless complete: `fill(staging)` downloads into the empty folder
    `staging` and returns the folder to install (`staging` or one inside it), which gets the
    marker (holding `marker`) and replaces whatever `target` held."""
    if (target / COMPLETE_MARKER).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(target.parent / f"{target.name}.lock"):
        # Another process may have finished the download while this one waited for the lock.
        if (target / COMPLETE_MARKER).is_file():
            return target
        staging = Path(tempfile.mkdtemp(prefix=f"{target.name}.partial-", dir=target.parent))
        try:
            done = fill(staging)
            (done / COMPLETE_MARKER).write_text(marker + "\n")
            # A folder without the marker is a leftover of an older layout or a manual copy.
            if target.exists():
                shutil.rmtree(target)
            done.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def run(
    command: Sequence[str],
    error: type[Exception],
    what: str,
    timeout: float,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """`command` run to its end with no input, its output and errors together as text; `error`
    (saying `what` timed out) when it takes longer than `timeout` seconds."""
    try:
        return subprocess.run(
            command,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise error(f"{what} timed out after {exc.timeout}s") from exc


def mvn(
    args: Sequence[str],
    error: type[Exception],
    instead: str,
    timeout: float,
    cwd: Path | None = None,
) -> str:
    """The output of `mvn -q -B <args>`; `error` when Maven is missing (naming `instead`, the
    setting that avoids it), takes too long or fails."""
    found = shutil.which("mvn")
    if found is None:
        raise error(f"Maven (mvn) is not on PATH; install it or set {instead}")
    command = [found, "-q", "-B", *args]
    result = run(command, error, f"mvn ({' '.join(command)})", timeout, cwd)
    if result.returncode != 0:
        raise error(
            f"mvn failed with exit code {result.returncode}: {' '.join(command)}\n{result.stdout}"
        )
    return result.stdout
