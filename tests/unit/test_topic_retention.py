"""kit.topics.topic_config: the configuration the project's topic creation sets per topic."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from iopcare.kit import topics
from iopcare.kit.settings import Settings

DAY_MS = 24 * 3600 * 1000


def test_event_and_dead_letter_topics_are_deleted_by_time_never_compacted(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    for name in topics.all_topics("staging."):
        config = topics.topic_config(name, settings)
        # Keyed by patient: compaction would keep one event per patient.
        assert config["cleanup.policy"] == "delete"
        assert config["retention.bytes"] == "-1"
        assert config["max.message.bytes"] == str(settings.kafka_max_message_bytes)
        expected = 90 * DAY_MS if name.endswith(".dlq") else 14 * DAY_MS
        assert config["retention.ms"] == str(expected), name
        assert config["segment.ms"] == str(DAY_MS)


def test_segment_time_never_exceeds_the_retention(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, topic_retention_ms=2 * 3600 * 1000, topic_segment_ms=7 * DAY_MS
    )
    config = topics.topic_config(topics.CAREPLAN, settings)
    assert config["segment.ms"] == config["retention.ms"] == str(2 * 3600 * 1000)
    assert topics.topic_config(topics.dead_letter(topics.CAREPLAN), settings)["segment.ms"] == str(
        7 * DAY_MS
    )


@pytest.mark.parametrize(
    "field", ["topic_retention_ms", "dead_letter_retention_ms", "topic_segment_ms"]
)
def test_a_retention_too_short_or_infinite_is_refused(tmp_path: Path, field: str) -> None:
    # -1 (keep forever) would turn the transport into an unbounded, unmanaged copy of the record.
    for value in (-1, 0, 1000):
        with pytest.raises(ValidationError):
            Settings.model_validate({"data_dir": tmp_path, field: value})
