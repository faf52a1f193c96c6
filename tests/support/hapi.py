"""HAPI FHIR (Java, from Maven Central) as an outside check of the gateway: builds the small CLI in
`tests/external/hapi` once (Maven; the jar and its dependencies cached under `.cache/hapi/<hash of
the sources>`) and runs it.

- `validate(paths)`: HAPI's FhirInstanceValidator against the R4 core definitions that
  hapi-fhir-validation-resources-r4 bundles (offline; codes from systems HAPI does not carry, such
  as SNOMED CT, LOINC, ICD-10 and RxNorm, are warnings: no terminology server is reachable here).
- `client(base, token, templates)`: HAPI's generic REST client against a running gateway.

Nothing is skipped: without Java or Maven, or when Maven cannot fetch HAPI, the calling test fails
saying so (CI fetches it: .ci/run builds the tool before the tests).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from iopcare.devtools.downloads import file_lock

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "tests" / "external" / "hapi"
CACHE = ROOT / ".cache" / "hapi"
JAR = "iopcare-hapi-check.jar"


def _sources_hash() -> str:
    digest = hashlib.sha256()
    files = [PROJECT / "pom.xml", *sorted((PROJECT / "src").rglob("*.java"))]
    for path in files:
        digest.update(path.relative_to(PROJECT).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def build() -> Path:
    """The built jar (built once per source version; `mvn -o` first, then online). Test
    workers running side by side (`make test`, pytest-xdist) build it once: the others wait."""
    out = CACHE / _sources_hash()
    jar = out / JAR
    if jar.exists() and (out / ".complete").exists():
        return jar
    CACHE.mkdir(parents=True, exist_ok=True)
    with file_lock(CACHE / "build.lock"):
        return _build(out)


def _build(out: Path) -> Path:
    jar = out / JAR
    if jar.exists() and (out / ".complete").exists():  # built while this one waited
        return jar
    for tool in ("java", "mvn"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is required for the HAPI FHIR checks (Java 17 and Maven)")
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    base = ["mvn", "-B", "-q", "package", f"-Dhapi.out={partial}"]
    attempts: list[str] = []
    for command in (["mvn", "-o", *base[1:]], base):
        done = subprocess.run(
            command, cwd=PROJECT, capture_output=True, text=True, timeout=900, check=False
        )
        if done.returncode == 0 and (partial / JAR).exists():
            break
        attempts.append(f"$ {' '.join(command)}\n{(done.stdout + done.stderr)[-3000:]}")
    else:
        pytest.fail(
            "could not build the HAPI FHIR check tool with Maven (is Maven Central reachable, "
            "or ~/.m2 filled by `mvn -f tests/external/hapi/pom.xml package`?):\n"
            + "\n".join(attempts)
        )
    (partial / ".complete").touch()
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    for stale in CACHE.iterdir():  # builds of older sources (about 150 MB each)
        if stale != out and stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
    return out / JAR


def _run(jar: Path, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "JAVA_TOOL_OPTIONS": "-Xmx1g -XX:+UseSerialGC -XX:TieredStopAtLevel=1"}
    return subprocess.run(
        ["java", "-jar", str(jar), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )


@dataclass(frozen=True)
class Issue:
    file: str
    severity: str
    location: str
    message_id: str
    message: str


@dataclass
class ValidationReport:
    files: dict[str, tuple[int, int]] = field(default_factory=dict)  # name: (errors, warnings)
    issues: list[Issue] = field(default_factory=list)
    output: str = ""

    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity in ("error", "fatal")]

    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]


def validate(jar: Path, paths: list[Path]) -> ValidationReport:
    done = _run(jar, ["validate", *map(str, paths)], timeout=600)
    report = ValidationReport(output=done.stdout)
    summary = False
    for line in done.stdout.splitlines():
        parts = line.split("\t")
        if parts[0] == "ISSUE" and len(parts) == 6:
            report.issues.append(Issue(*parts[1:]))
        elif parts[0] == "FILE" and len(parts) == 4:
            report.files[parts[1]] = (int(parts[2]), int(parts[3]))
        elif parts[0] == "SUMMARY":
            summary = True
    assert summary, f"the validator did not finish (exit {done.returncode}):\n{done.stderr[-4000:]}"
    return report


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def client(
    jar: Path, base: str, token: str, program_token: str, templates: Path
) -> tuple[list[Check], str]:
    """Runs HAPI's generic client as the EHR (`token`); the care team it uses is enrolled with
    `program_token` (the program's administrator: an EHR never enrols a team)."""
    done = _run(jar, ["client", base, token, program_token, str(templates)], timeout=300)
    checks = []
    for line in done.stdout.splitlines():
        parts = line.split("\t", 3)
        if parts[0] == "CHECK" and len(parts) == 4:
            checks.append(Check(parts[1], parts[2] == "ok", parts[3]))
    return checks, done.stdout + done.stderr[-4000:]


def format_issues(issues: list[Issue]) -> str:
    return "\n".join(f"{i.file} {i.severity} {i.location}: {i.message}" for i in issues)
