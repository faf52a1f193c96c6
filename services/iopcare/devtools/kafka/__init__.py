"""Run a real single-node Apache Kafka (KRaft) broker from Maven Central jars.

Development and tests need a genuine broker (consumer groups, rebalances, restarts), not a fake.
The jars come from ``deploy/local/kafka/pom.xml`` via Maven and are cached under
``<repo>/.cache/kafka/<version>/libs``; the broker runs as a plain ``java`` process owned by a
:class:`KafkaBroker`.

- ``common``: the error, the loopback address, free ports, the super user;
- ``jars``: the jars (Maven, cached) and the ``java`` command line;
- ``config``: ``server.properties`` (open or SASL-secured) and the storage format arguments;
- ``broker``: the process lifecycle (start and readiness, stop, kill, pause, restart);
- ``admin``: topics, the services' ACLs, the development SASL users;
- ``cli``: ``python -m iopcare.devtools.kafka --data-dir var/kafka --port 9092 --topics a,b``.
"""

from iopcare.devtools.kafka.admin import (
    create_topics,
    dev_sasl_users,
    grant_service_acls,
    service_acls,
)
from iopcare.devtools.kafka.broker import KafkaBroker
from iopcare.devtools.kafka.cli import main
from iopcare.devtools.kafka.common import (
    BOOTSTRAP_ENV,
    SCRAM_MECHANISM,
    SUPER_USER,
    BrokerError,
    external_bootstrap,
    free_port,
)
from iopcare.devtools.kafka.jars import LIBS_ENV, ensure_jars, kafka_version, repo_root

__all__ = [
    "BOOTSTRAP_ENV",
    "LIBS_ENV",
    "SCRAM_MECHANISM",
    "SUPER_USER",
    "BrokerError",
    "KafkaBroker",
    "create_topics",
    "dev_sasl_users",
    "ensure_jars",
    "external_bootstrap",
    "free_port",
    "grant_service_acls",
    "kafka_version",
    "main",
    "repo_root",
    "service_acls",
]
