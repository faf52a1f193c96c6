"""Running services in the test process against the real broker and database, and reading topics."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc
from kafka import KafkaConsumer, TopicPartition

from iopcare.kit import auth
from iopcare.kit.rpc import bearer
from iopcare.kit.runtime import ServiceRuntime
from iopcare.kit.settings import ServiceSettings, Settings

T = TypeVar("T")


def missing(reason: str) -> None:
    """A test's requirement is absent: skip on a developer's machine, fail under CI (where Kafka,
    PostgreSQL and npm are installed, so every test must run)."""
    import os

    import pytest

    if os.environ.get("CI"):
        pytest.fail(f"required when CI is set: {reason}")
    pytest.skip(reason)


def settings_for(data_dir: Path, bootstrap: str, topic_prefix: str = "") -> Settings:
    return Settings(
        data_dir=data_dir,
        kafka_bootstrap_servers=bootstrap,
        relay_idle_seconds=0.02,
        topic_prefix=topic_prefix,
        dev_mode=True,
        # The race tests play many callers with one token (50 concurrent updates, 1,000 bookings
        # of the last seat): a per-client limit would refuse most of them. The attack tests in
        # tests/security set the limit they attack.
        rpc_max_calls_per_client=0,
    )


def isolated_topics(bootstrap: str) -> str:
    """Creates a fresh set of topics for one test and returns their prefix.

    Each test then sees only its own events: no backlog from earlier tests to wade through, no
    stranger's record satisfying its assertions.
    """
    from iopcare.devtools import kafka_broker
    from iopcare.kit import topics

    prefix = f"t{uuid.uuid4().hex[:10]}."
    kafka_broker.create_topics(bootstrap, topics.all_topics(prefix), partitions=topics.PARTITIONS)
    return prefix


def signed_headers(settings: Settings, service: str, event: Any) -> list[tuple[str, bytes]]:
    """The headers of `event` as `service`'s relay sends them: CloudEvents and its signature
    (kit.signing), for tests that publish as a service would."""
    from iopcare.kit import signing

    return [*event.headers(), *signing.signer_for(settings, service).headers(event)]


def topic(settings: Settings, logical: str) -> str:
    """The broker's name of a logical topic under the test's prefix."""
    from iopcare.kit import topics

    return topics.physical(settings.topic_prefix, logical)


def build(
    name: str, settings: Settings, database_url: str, group: str | None = None, port: int = 0
) -> ServiceRuntime:
    """Builds (not starts) a service on a free port (or `port`: a restart where it was), with
    its own consumer group."""
    service = ServiceSettings(
        name=name,
        database_url=database_url,
        port=port,
        host="127.0.0.1",
        consumer_group=group or f"test-{name}-{uuid.uuid4().hex[:8]}",
        grpc_workers=8,
    )
    if name == "careplan":
        from iopcare.careplan import app
    elif name == "scheduling":
        from iopcare.scheduling import app  # type: ignore[no-redef]
    else:
        from iopcare.notes import app  # type: ignore[no-redef]
    return app.build(settings, service)


def token(settings: Settings, role: str = "psychiatrist", practitioner: str = "psy-1") -> str:
    return auth.mint_token(
        settings, subject=f"practitioner:{practitioner}", role=role, practitioner_id=practitioner
    )


def principal(role: str = "psychiatrist", practitioner: str = "psy-1") -> auth.Principal:
    return auth.Principal(
        subject=f"practitioner:{practitioner}", role=role, practitioner_id=practitioner
    )


def metadata(settings: Settings, **kwargs: str) -> list[tuple[str, str]]:
    return bearer(token(settings, **kwargs))


def channel(runtime: ServiceRuntime) -> grpc.Channel:
    return grpc.insecure_channel(f"127.0.0.1:{runtime.port}")


def eventually(check: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.05) -> T:
    """Polls `check` until it returns something truthy; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")


def read_topic(
    bootstrap: str,
    topic: str,
    match: Callable[[Any], bool],
    *,
    expect: int = 1,
    timeout: float = 20.0,
    settle: float = 0.0,
) -> list[Any]:
    """Reads a topic from the beginning (no consumer group) and returns the matching records.

    Returns once `expect` matches were seen (then keeps reading `settle` seconds more, to catch
    extra copies a test wants to count) or fails at `timeout`.
    """
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=200,
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        found: list[Any] = []
        deadline = time.monotonic() + timeout
        settle_until: float | None = None
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                found.extend(r for r in records if match(r))
            if len(found) >= expect and settle_until is None:
                settle_until = time.monotonic() + settle
            if settle_until is not None and time.monotonic() >= settle_until:
                return found
        raise AssertionError(f"{len(found)} of {expect} expected records on {topic}")
    finally:
        consumer.close()


def header(record: Any, name: str, default: str | None = None) -> str | None:
    for key, value in record.headers or []:
        if key == name:
            return bytes(value).decode()
    return default


def wait_caught_up(
    bootstrap: str, group: str, topic_names: list[str], timeout: float = 30.0
) -> None:
    """Waits until `group` has committed offsets at the end of every partition of the topics.

    A consumer commits only after applying, so afterwards everything published before this call
    has been applied (or dead-lettered). Tests use it instead of counting on shared statistics:
    the topics are shared by the whole session, and fresh groups replay older tests' events.
    """
    probe = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        partitions = [
            TopicPartition(t, p) for t in topic_names for p in probe.partitions_for_topic(t) or []
        ]
        ends = probe.end_offsets(partitions)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            behind = [tp for tp in partitions if (probe.committed(tp) or 0) < ends[tp]]
            if not behind:
                return
            time.sleep(0.1)
        raise AssertionError(f"group {group} still behind on {behind} after {timeout}s")
    finally:
        probe.close(autocommit=False)


def assign_case_manager(
    stub: Any, settings: Settings, patient_id: str, case_manager: str = "cm-1"
) -> Any:
    """The program assigns a case manager to a patient: an administrator opens a planned episode
    naming them as its careManager (what entitles them to enrol the first care team)."""
    import json

    from iopcare.careplan.v1 import careplan_service_pb2 as pb

    episode = {
        "resourceType": "EpisodeOfCare",
        "status": "planned",
        "patient": {"reference": f"Patient/{patient_id}"},
        "careManager": {"reference": f"Practitioner/{case_manager}"},
    }
    return stub.CreateEpisode(
        pb.CreateEpisodeRequest(request_id=str(uuid.uuid4()), fhir_json=json.dumps(episode)),
        metadata=metadata(settings, role="admin", practitioner="adm-1"),
        timeout=10,
    ).episode


def enrol_over_grpc(stub: Any, settings: Settings, patient_id: str) -> str:
    """Creates the patient's care team through the API as the case manager the program assigned
    (cm-1, through an episode); returns the team's id."""
    assign_case_manager(stub, settings, patient_id, "cm-1")
    return create_team_over_grpc(stub, settings, patient_id)


def create_team_over_grpc(stub: Any, settings: Settings, patient_id: str) -> str:
    """Creates the patient's care team as cm-1 (who must already be assigned); returns its id."""
    import json

    from iopcare.careplan.v1 import careplan_service_pb2 as pb
    from tests.support.plans import care_team

    return str(
        stub.CreateCareTeam(
            pb.CreateCareTeamRequest(
                request_id=str(uuid.uuid4()), fhir_json=json.dumps(care_team(patient_id))
            ),
            metadata=metadata(settings, role="case-manager", practitioner="cm-1"),
            timeout=10,
        ).care_team.id
    )


def enrolled_plan_json(stub: Any, settings: Settings, patient_id: str | None = None) -> str:
    """A plan for a (new) patient whose care team now exists, as JSON."""
    from tests.support.plans import iop_plan_json, new_patient_id

    patient = patient_id or new_patient_id()
    return iop_plan_json(patient, enrol_over_grpc(stub, settings, patient))
