"""Kafka topics: one per producing service and version, each with a dead-letter topic."""

from __future__ import annotations

CAREPLAN = "iopcare.careplan.v1"
SCHEDULING = "iopcare.scheduling.v1"
NOTES = "iopcare.notes.v1"

EVENT_TOPICS = (CAREPLAN, SCHEDULING, NOTES)
#: Partitions of every topic; one patient's events stay on one partition (key = patient id).
PARTITIONS = 3


def dead_letter(topic: str) -> str:
    """Where a consumer parks a message it cannot parse or apply, so the partition keeps flowing."""
    return f"{topic}.dlq"


def all_topics() -> list[str]:
    return [*EVENT_TOPICS, *(dead_letter(topic) for topic in EVENT_TOPICS)]
