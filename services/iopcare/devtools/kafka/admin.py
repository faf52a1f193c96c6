"""Administration of the development broker: topics, the services' ACLs and SASL users."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import kafka.errors as kafka_errors
from kafka import KafkaAdminClient
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
)

from iopcare.devtools.kafka.common import POLL_INTERVAL, SUPER_USER, BrokerError
from iopcare.kit.settings import Settings

__all__ = [
    "create_topics",
    "dev_sasl_users",
    "grant_service_acls",
    "open_admin",
    "service_acls",
]


def open_admin(
    bootstrap_servers: str,
    timeout: float,
    client_id: str,
    request_timeout: float = 10,
    client_options: dict[str, Any] | None = None,
) -> KafkaAdminClient:
    """An admin client of the cluster (``client_options``: its security), bootstrapped."""
    timeout_ms = max(1000, int(timeout * 1000))
    admin = KafkaAdminClient.__new__(KafkaAdminClient)
    try:
        admin.__init__(
            **{**(client_options or {}), "bootstrap_servers": bootstrap_servers},
            client_id=client_id,
            bootstrap_timeout_ms=timeout_ms,
            request_timeout_ms=max(1000, int(min(timeout, request_timeout) * 1000)),
        )
    except BaseException:
        # kafka-python starts its IO thread before bootstrapping and does not stop it when the
        # bootstrap fails, and close() refuses to run on a half-built client: force it.
        if hasattr(admin, "_net"):
            admin._closed = False
            with contextlib.suppress(Exception):
                admin.close()
        raise
    return admin


def create_topics(
    bootstrap_servers: str,
    topics: Iterable[str],
    partitions: int = 3,
    timeout: float = 30,
    max_message_bytes: int | None = None,
    client_options: dict[str, Any] | None = None,
    settings: Settings | None = None,
) -> None:
    """Create topics (replication factor 1) and wait until every partition has a leader.

    Each topic gets `kit.topics.topic_config` under `settings` (default: the environment's):
    cleanup policy, retention, segment time and `max.message.bytes` (the limit the producers
    use; `max_message_bytes` overrides it). Topics that already exist are left as they are,
    whatever their partition count and configuration (docs/operations.md says how to alter them).
    """
    from iopcare.kit import topics as topic_names

    settings = settings or Settings()
    limit = max_message_bytes or settings.kafka_max_message_bytes
    names = list(dict.fromkeys(topic.strip() for topic in topics if topic.strip()))
    if not names:
        return
    deadline = time.monotonic() + timeout
    try:
        admin = open_admin(
            bootstrap_servers, timeout, "iopcare-create-topics", client_options=client_options
        )
    except kafka_errors.KafkaError as exc:
        raise BrokerError(f"cannot reach Kafka at {bootstrap_servers}: {exc!r}") from exc
    try:
        pending = names
        while pending:
            remaining_ms = max(1000, int((deadline - time.monotonic()) * 1000))
            request = {
                name: {
                    "num_partitions": partitions,
                    "replication_factor": 1,
                    "configs": {
                        **topic_names.topic_config(name, settings),
                        "max.message.bytes": str(limit),
                    },
                }
                for name in pending
            }
            try:
                response = admin.create_topics(request, timeout_ms=remaining_ms, raise_errors=False)
                retry: list[str] = []
                for result in response["topics"]:
                    error = kafka_errors.for_code(result["error_code"])
                    if error in (kafka_errors.NoError, kafka_errors.TopicAlreadyExistsError):
                        continue
                    if issubclass(error, kafka_errors.RetriableError):
                        retry.append(result["name"])
                        continue
                    raise BrokerError(
                        f"creating topic {result['name']!r} failed: {error.__name__}: "
                        f"{result.get('error_message') or ''}"
                    )
            except kafka_errors.RetriableError as exc:
                retry, last = pending, exc
            else:
                last = None
            if retry and time.monotonic() >= deadline:
                raise BrokerError(f"topics {retry} not created within {timeout:g}s ({last!r})")
            pending = retry
            if pending:
                time.sleep(POLL_INTERVAL)
        remaining_ms = max(1000, int((deadline - time.monotonic()) * 1000))
        admin.wait_for_topics(names, timeout_ms=remaining_ms)
    except kafka_errors.KafkaError as exc:
        raise BrokerError(f"creating topics {names} failed: {exc!r}") from exc
    finally:
        admin.close()


def service_acls(prefix: str = "", group_prefix: str = "iopcare-") -> list[ACL]:
    """The least each service principal (`User:<service>`) needs, and nothing more:

    - write (and describe) its own topic, never another's: a stolen notes password cannot
      produce careplan's CareTeam events; and read it, which a relay taking over does to find
      what its predecessor published but did not mark sent (kit.relay);
    - read the topics it consumes, and write their dead-letter topics (the consumer parks there
      what it cannot apply);
    - its consumer groups (`<prefix><group_prefix><service>*`);
    - idempotent writes (cluster IDEMPOTENT_WRITE, which carries no topic right).
    Everything else is denied (allow.everyone.if.no.acl.found=false); operators use the super user.
    """
    from iopcare.kit import topics

    def allow(service: str, operation: ACLOperation, resource: ResourcePattern) -> ACL:
        return ACL(
            principal=f"User:{service}",
            host="*",
            operation=operation,
            permission_type=ACLPermissionType.ALLOW,
            resource_pattern=resource,
        )

    def topic(name: str) -> ResourcePattern:
        return ResourcePattern(ResourceType.TOPIC, topics.physical(prefix, name))

    acls: list[ACL] = []
    for service, own in topics.PRODUCES.items():
        acls += [
            allow(service, op, topic(own))
            for op in (ACLOperation.WRITE, ACLOperation.DESCRIBE, ACLOperation.READ)
        ]
        for consumed in topics.CONSUMES[service]:
            acls += [
                allow(service, op, topic(consumed))
                for op in (ACLOperation.READ, ACLOperation.DESCRIBE)
            ]
            acls += [
                allow(service, op, topic(topics.dead_letter(consumed)))
                for op in (ACLOperation.WRITE, ACLOperation.DESCRIBE)
            ]
        group = ResourcePattern(
            ResourceType.GROUP,
            f"{prefix}{group_prefix}{service}",
            ACLResourcePatternType.PREFIXED,
        )
        acls.append(allow(service, ACLOperation.READ, group))
        # The relay and the dead-letter producer are idempotent (no duplicates from their own
        # retries); InitProducerId needs this. It grants no right on any topic.
        cluster = ResourcePattern(ResourceType.CLUSTER, "kafka-cluster")
        acls.append(allow(service, ACLOperation.IDEMPOTENT_WRITE, cluster))
    return acls


def grant_service_acls(
    bootstrap_servers: str,
    client_options: dict[str, Any],
    prefix: str = "",
    group_prefix: str = "iopcare-",
    timeout: float = 30,
) -> None:
    """Creates `service_acls` on the cluster (as its super user); existing ones are kept."""
    acls = service_acls(prefix, group_prefix)
    try:
        admin = open_admin(
            bootstrap_servers, timeout, "iopcare-acls", client_options=client_options
        )
    except kafka_errors.KafkaError as exc:
        raise BrokerError(f"cannot reach Kafka at {bootstrap_servers}: {exc!r}") from exc
    try:
        result = admin.create_acls(acls)
        if result["failed"]:
            raise BrokerError(f"creating ACLs failed: {result['failed']!r}")
        # ACLs reach the authorizer through the metadata log, a moment after the answer: wait
        # until they are all visible, so a service started next is not refused on its first try.
        every = ACLFilter(
            principal=None,
            host=None,
            operation=ACLOperation.ANY,
            permission_type=ACLPermissionType.ANY,
            resource_pattern=ResourcePatternFilter(
                ResourceType.ANY, None, ACLResourcePatternType.ANY
            ),
        )
        wanted = {_acl_key(acl) for acl in acls}
        deadline = time.monotonic() + timeout
        while True:
            found, _error = admin.describe_acls(every)
            if wanted <= {_acl_key(acl) for acl in found}:
                break
            if time.monotonic() > deadline:
                raise BrokerError(f"ACLs not visible within {timeout:g}s")
            time.sleep(POLL_INTERVAL)
    except kafka_errors.KafkaError as exc:
        raise BrokerError(f"creating ACLs failed: {exc!r}") from exc
    finally:
        admin.close()


def _acl_key(acl: ACL) -> tuple[str, int, str, int, int]:
    pattern = acl.resource_pattern
    return (
        acl.principal,
        int(acl.operation),
        pattern.resource_name,
        int(pattern.resource_type),
        int(pattern.pattern_type),
    )


def dev_sasl_users(folder: Path) -> dict[str, str]:
    """The development broker's users (the super user and one per service) with passwords
    generated once and kept in `folder` (0600), so a restarted `make run` finds them again."""
    import secrets

    from iopcare.kit import topics

    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    users = {}
    for user in (SUPER_USER, *topics.PRODUCES):
        path = folder / f"{user}.password"
        if not path.is_file():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(24))
        users[user] = path.read_text().strip()
    return users
