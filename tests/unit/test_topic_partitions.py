"""The topics' partition count is a setting: 3 on a laptop, 6 in the deploy files (issue 17)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from iopcare.kit import topics
from iopcare.kit.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_the_partition_count_defaults_to_three_and_is_read_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Settings(data_dir=tmp_path).topic_partitions == topics.PARTITIONS == 3
    monkeypatch.setenv("IOPCARE_TOPIC_PARTITIONS", "6")
    assert Settings(data_dir=tmp_path).topic_partitions == 6
    monkeypatch.setenv("IOPCARE_TOPIC_PARTITIONS", "0")
    with pytest.raises(ValidationError):
        Settings(data_dir=tmp_path)


def test_the_deploy_files_create_six_partitions() -> None:
    assert 'IOPCARE_TOPIC_PARTITIONS: "6"' in (DEPLOY / "compose.yaml").read_text()
    assert 'IOPCARE_TOPIC_PARTITIONS: "6"' in (DEPLOY / "k8s" / "config.yaml").read_text()
