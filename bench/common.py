"""Shared pieces of the benchmarks: the machine, percentiles, a broker, service processes."""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from iopcare.devtools import kafka_broker
from iopcare.kit import topics


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"{os.cpu_count()} cores ({cpu}){mem}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values_ms: list[float]) -> str:
    return (
        f"p50 {percentile(values_ms, 50):.1f} ms, p99 {percentile(values_ms, 99):.1f} ms, "
        f"mean {statistics.fmean(values_ms):.1f} ms (n={len(values_ms)})"
    )


@contextmanager
def broker() -> Iterator[str]:
    external = kafka_broker.external_bootstrap()
    if external:
        kafka_broker.create_topics(external, topics.all_topics(), partitions=topics.PARTITIONS)
        yield external
        return
    with tempfile.TemporaryDirectory(prefix="iopcare-bench-kafka-") as folder:
        instance = kafka_broker.KafkaBroker(data_dir=Path(folder))
        instance.start()
        try:
            kafka_broker.create_topics(
                instance.bootstrap_servers, topics.all_topics(), partitions=topics.PARTITIONS
            )
            yield instance.bootstrap_servers
        finally:
            instance.stop()
