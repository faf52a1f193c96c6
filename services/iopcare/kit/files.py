"""Files and folders only their owner can read: databases, keys and logs hold patient data or
secrets (issue 10 found them created 0644 under 0755 folders, readable by every local user).

Modes are set explicitly at creation rather than trusted to the umask, which belongs to whoever
started the process; `iopcare` also narrows its umask to 077 (cli.py) so that files other code
creates on our behalf (SQLite's -wal and -shm, the local broker's log segments) follow.
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private_dir(path: Path) -> Path:
    """Creates `path` and any missing parents as 0700 folders. A folder that already existed
    keeps its mode: it may be a shared parent (`/tmp`, a home folder) that is not ours."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            continue  # another process made it at the same moment
        # mkdir's mode is filtered by the umask; chmod is not.
        folder.chmod(PRIVATE_DIR)
    return path


def private_file(path: Path) -> Path:
    """Creates `path` empty as a 0600 file if it does not exist, and narrows it to 0600 if it
    does (a file left readable by an earlier version)."""
    private_dir(path.parent)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, PRIVATE_FILE)
    os.close(fd)
    tighten(path)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Writes `data` to a new 0600 file (never briefly readable by others, as write-then-chmod
    would be)."""
    private_dir(path.parent)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, PRIVATE_FILE)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    tighten(path)


def tighten(path: Path) -> None:
    """Narrows an existing file we own to 0600 (nothing when it does not exist)."""
    try:
        if path.stat().st_mode & 0o777 != PRIVATE_FILE:
            path.chmod(PRIVATE_FILE)
    except FileNotFoundError:
        pass
