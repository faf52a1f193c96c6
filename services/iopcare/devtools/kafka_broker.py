"""The development Kafka broker's former single module, kept for its importers.

Everything lives in :mod:`iopcare.devtools.kafka` (split by concern, issue 11); this module
re-exports its public names, and ``python -m iopcare.devtools.kafka_broker`` still runs the broker.
"""

from iopcare.devtools.kafka import (
    BOOTSTRAP_ENV,
    LIBS_ENV,
    SCRAM_MECHANISM,
    SUPER_USER,
    BrokerError,
    KafkaBroker,
    create_topics,
    dev_sasl_users,
    ensure_jars,
    external_bootstrap,
    free_port,
    grant_service_acls,
    kafka_version,
    main,
    repo_root,
    service_acls,
)

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

if __name__ == "__main__":
    raise SystemExit(main())
