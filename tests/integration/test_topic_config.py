"""Topic retention set by the project's own topic creation, read back from the real broker."""

from __future__ import annotations

import uuid
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from iopcare.devtools import kafka_broker
from iopcare.kit import topics
from iopcare.kit.settings import Settings
from tests.support import harness

DAY_MS = 24 * 3600 * 1000
KEYS = ("cleanup.policy", "retention.ms", "retention.bytes", "segment.ms", "max.message.bytes")


def described(bootstrap: str, names: list[str]) -> dict[str, dict[str, str]]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="test-topic-config")
    try:
        response = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names],
            config_filter="all",
        )
    finally:
        admin.close()
    # {resource type: {topic: {key: {"value": ..., ...}}}}
    (by_topic,) = response.values()
    return {
        name: {key: str(entry["value"]) for key, entry in config.items() if key in KEYS}
        for name, config in by_topic.items()
    }


def test_defaults_on_the_topics_the_project_creates(kafka_bootstrap: str) -> None:
    # The tests' own topic creation is the project's (kafka_broker.create_topics).
    prefix = harness.isolated_topics(kafka_bootstrap)
    configs = described(kafka_bootstrap, topics.all_topics(prefix))
    assert len(configs) == 6
    limit = str(Settings().kafka_max_message_bytes)
    for logical in topics.EVENT_TOPICS:
        event = configs[topics.physical(prefix, logical)]
        assert event == {
            "cleanup.policy": "delete",
            "retention.ms": str(14 * DAY_MS),
            "retention.bytes": "-1",
            "segment.ms": str(DAY_MS),
            "max.message.bytes": limit,
        }
        dlq = configs[topics.physical(prefix, topics.dead_letter(logical))]
        assert dlq["cleanup.policy"] == "delete"
        assert dlq["retention.ms"] == str(90 * DAY_MS)
        assert dlq["segment.ms"] == str(DAY_MS)


def test_settings_change_the_retention(kafka_bootstrap: str, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        kafka_bootstrap_servers=kafka_bootstrap,
        topic_retention_ms=3 * DAY_MS,
        dead_letter_retention_ms=30 * DAY_MS,
        topic_segment_ms=6 * 3600 * 1000,
        max_resource_bytes=1024 * 1024,
    )
    prefix = f"t{uuid.uuid4().hex[:10]}."
    names = topics.all_topics(prefix)
    kafka_broker.create_topics(kafka_bootstrap, names, partitions=1, settings=settings)
    configs = described(kafka_bootstrap, names)
    event = configs[topics.physical(prefix, topics.CAREPLAN)]
    assert event["retention.ms"] == str(3 * DAY_MS)
    assert event["segment.ms"] == str(6 * 3600 * 1000)
    assert event["max.message.bytes"] == str(settings.kafka_max_message_bytes)
    dlq = configs[topics.physical(prefix, topics.dead_letter(topics.CAREPLAN))]
    assert dlq["retention.ms"] == str(30 * DAY_MS)
    assert dlq["cleanup.policy"] == "delete"
