"""Kafka topics: one per producing service and version, each with a dead-letter topic."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from iopcare.kit.settings import Settings

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
#: Partitions of every topic by default (Settings.topic_partitions, IOPCARE_TOPIC_PARTITIONS,
#: decides what the project creates); one patient's events stay on one partition (key = patient id).
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


def is_dead_letter(name: str) -> bool:
    return name.endswith(".dlq")


def topic_config(name: str, settings: Settings) -> dict[str, str]:
    """The broker configuration the project's topic creation sets on topic `name` (physical or
    logical).

    Every topic is `cleanup.policy=delete`, never compacted: records are keyed by *patient*, not
    by resource, and one patient's key carries many resources (CarePlan, CareTeam, appointments,
    alerts) and many versions of each, all of which consumers must see; compaction would keep
    only the patient's last event and silently drop the rest. The topics are a transport, not the
    record of truth (each service's database is, with its history tables), so a time retention
    is right: long enough for a stopped consumer or a restored database to catch up
    (`topic_retention_ms`), longer for dead letters (`dead_letter_retention_ms`), which are
    investigated and replayed by hand. `min.compaction.lag.ms` does not apply to `delete`.
    """
    retention = (
        settings.dead_letter_retention_ms if is_dead_letter(name) else settings.topic_retention_ms
    )
    return {
        "cleanup.policy": "delete",
        "retention.ms": str(retention),
        # No size limit: an event is never dropped before its time because the topic is busy.
        "retention.bytes": "-1",
        "segment.ms": str(min(settings.topic_segment_ms, retention)),
        "max.message.bytes": str(settings.kafka_max_message_bytes),
    }
