"""The broker's jars (Maven Central, cached) and the ``java`` command that runs them."""

from __future__ import annotations

import logging
import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

from iopcare.devtools import downloads
from iopcare.devtools.kafka.common import BrokerError

__all__ = [
    "KAFKA_JAR_GLOB",
    "LIBS_ENV",
    "deploy_dir",
    "ensure_jars",
    "has_kafka_jar",
    "java",
    "java_command",
    "kafka_version",
    "libs_folder",
    "repo_root",
]

log = logging.getLogger(__name__)

LIBS_ENV = "IOPCARE_KAFKA_LIBS"
KAFKA_JAR_GLOB = "kafka_2.13-*.jar"


def repo_root() -> Path:
    """The checkout's top folder (the one holding ``deploy/`` and ``pyproject.toml``)."""
    # services/iopcare/devtools/kafka/jars.py -> parents[4] is the checkout.
    return Path(__file__).resolve().parents[4]


def deploy_dir() -> Path:
    return repo_root() / "deploy" / "local" / "kafka"


def _pom_path() -> Path:
    return deploy_dir() / "pom.xml"


def kafka_version() -> str:
    """The Kafka version pinned by the POM (its ``<kafka.version>`` property)."""
    pom = _pom_path()
    try:
        root = ET.parse(pom).getroot()
    except (OSError, ET.ParseError) as exc:
        raise BrokerError(f"cannot read {pom}: {exc}") from exc
    # The POM declares a default namespace, so every tag is qualified with it.
    namespace = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    version = root.findtext(f"{namespace}properties/{namespace}kafka.version")
    if not version or not version.strip():
        raise BrokerError(f"{pom} has no <kafka.version> property")
    return version.strip()


def has_kafka_jar(libs: Path) -> bool:
    return any(libs.glob(KAFKA_JAR_GLOB))


def ensure_jars(cache_dir: Path | None = None) -> Path:
    """Return a folder holding the broker's jars, downloading them with Maven if needed.

    ``cache_dir`` is the libs folder itself; by default
    ``<repo>/.cache/kafka/<kafka_version>/libs``. When ``cache_dir`` is not given and
    ``IOPCARE_KAFKA_LIBS`` is set, that folder is used as is and nothing is downloaded.
    """
    if cache_dir is None:
        override = os.environ.get(LIBS_ENV, "").strip()
        if override:
            libs = Path(override).expanduser().resolve()
            if not has_kafka_jar(libs):
                raise BrokerError(f"{LIBS_ENV}={override} holds no {KAFKA_JAR_GLOB}")
            return libs
        cache_dir = repo_root() / ".cache" / "kafka" / kafka_version() / "libs"

    libs = Path(cache_dir).expanduser().resolve()
    return downloads.ensure_installed(
        libs, lambda staging: _download_jars(staging, libs), kafka_version()
    )


def _download_jars(staging: Path, libs: Path) -> Path:
    log.info("downloading Kafka jars into %s", libs)
    output = downloads.mvn(
        [
            "-f",
            str(_pom_path()),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
        ],
        BrokerError,
        LIBS_ENV,
        timeout=900,
    )
    if not has_kafka_jar(staging):
        raise BrokerError(f"mvn succeeded but copied no {KAFKA_JAR_GLOB}:\n{output}")
    return staging


def java() -> str:
    java_home = os.environ.get("JAVA_HOME", "").strip()
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file():
            return str(candidate)
    java = shutil.which("java")
    if java is None:
        raise BrokerError("java is not on PATH (and JAVA_HOME is not set); Kafka needs Java 17+")
    return java


def libs_folder(libs_dir: Path | None) -> Path:
    """``libs_dir`` (a folder of jars used as is), or the Maven cache when it is None."""
    if libs_dir is None:
        return ensure_jars()
    libs = Path(libs_dir).expanduser().resolve()
    if not has_kafka_jar(libs):
        raise BrokerError(f"libs_dir {libs} holds no {KAFKA_JAR_GLOB}")
    return libs


def java_command(java: str, libs: Path, *jvm_options: str) -> list[str]:
    """``java`` with the broker's class path and logging, ready for a main class."""
    return [
        java,
        *jvm_options,
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={deploy_dir() / 'log4j2.properties'}",
        "-cp",
        f"{libs}/*",
    ]
