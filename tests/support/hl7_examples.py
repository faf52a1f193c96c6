"""The official HL7 FHIR R4 example resources (the `hl7.fhir.r4.examples` 4.0.1 package, which
HL7 also publishes to the npm registry), fetched once into `.cache/hl7` for tests.

Material nobody on the team wrote: if our codec or our services refuse what HL7 itself publishes as
valid R4, the bug is ours.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from iopcare.devtools.downloads import file_lock

PACKAGE = "hl7.fhir.r4.examples@4.0.1"
CACHE = Path(__file__).resolve().parents[2] / ".cache" / "hl7" / "r4-examples-4.0.1"
#: The resource types iopcare exchanges; only their examples are extracted.
TYPES = (
    "CarePlan",
    "CareTeam",
    "Goal",
    "Observation",
    "Appointment",
    "Communication",
    "EpisodeOfCare",
    "Patient",
    "Flag",
    "DocumentReference",
    "Schedule",
    "Slot",
)


def unavailable() -> str | None:
    if (CACHE / ".complete").exists():
        return None
    if shutil.which("npm") is None:
        return "npm is not installed, so the HL7 example package cannot be fetched"
    return None


def examples_dir() -> Path:
    """The folder of extracted examples (`CarePlan-example.json`, ...), fetching it once."""
    if (CACHE / ".complete").exists():
        return CACHE
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    # Test workers side by side (pytest-xdist) fetch it once: the others wait, then find it.
    with file_lock(CACHE.parent / f"{CACHE.name}.lock"):
        if (CACHE / ".complete").exists():
            return CACHE
        _fetch()
    return CACHE


def _fetch() -> None:
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(
            ["npm", "pack", PACKAGE, "--silent"],
            cwd=folder,
            check=True,
            capture_output=True,
            timeout=300,
        )
        (archive,) = Path(folder).glob("*.tgz")
        partial = CACHE.with_name(CACHE.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                name = Path(member.name).name
                if member.isfile() and name.endswith(".json") and name.split("-")[0] in TYPES:
                    extracted = tar.extractfile(member)
                    if extracted is not None:
                        (partial / name).write_bytes(extracted.read())
        (partial / ".complete").touch()
        shutil.rmtree(CACHE, ignore_errors=True)
        partial.rename(CACHE)


def examples(resource_type: str) -> list[Path]:
    return sorted(examples_dir().glob(f"{resource_type}-*.json"))
