"""Kafka topics: one per producing service and version, each with a dead-letter topic."""

from __future__ import annotations

CAREPLAN = "iopcare.careplan.v1"
SCHEDULING = "iopcare.scheduling.v1"
NOTES = "iopcare.notes.v1"

EVENT_TOPICS = (CAREPLAN, SCHEDULING, NOTES)
#: The topic each service produces on (only its relay writes there; broker ACLs and the
#: consumers' signature check both hold to it).
PRODUCES = {"careplan": CAREPLAN, "scheduling": SCHEDULING, "notes": NOTES}
#: The topics each service consumes (its app's subscription; the broker ACLs grant no more).
CONSUMES = {
    "careplan": (SCHEDULING, NOTES),
    "scheduling": (CAREPLAN,),
    "notes": (CAREPLAN, SCHEDULING),
}
#: Partitions of every topic; one patient's events stay on one partition (key = patient id).
PARTITIONS = 3


def dead_letter(topic: str) -> str:
    """Where a consumer parks a message it cannot parse or apply, so the partition keeps flowing."""
    return f"{topic}.dlq"


def all_topics(prefix: str = "") -> list[str]:
    """Every topic to create, with the deployment's prefix (see `physical`)."""
    return [physical(prefix, t) for t in (*EVENT_TOPICS, *(dead_letter(t) for t in EVENT_TOPICS))]


def physical(prefix: str, logical: str) -> str:
    """The topic name on the broker. Code and outbox rows use the logical names above; a prefix
    (IOPCARE_TOPIC_PREFIX) lets several deployments, or several tests, share one cluster without
    seeing each other's events. Only the relay and the consumer apply it."""
    return f"{prefix}{logical}"
