#!/bin/sh
# Creates iopcare's topics (docs/events.md) with the configuration the project's own topic
# creation sets (iopcare.kit.topics.topic_config: delete policy, 14 days, dead letters 90 days,
# segments of a day, records up to IOPCARE_MAX_RESOURCE_BYTES + 64 KiB). Topics that exist are
# left alone (docs/operations.md says how to alter them). Runs in the Kafka image
# (kafka-topics.sh) as the cluster's admin user: the compose file's kafka-init service and the
# Kubernetes Job in deploy/k8s/topics.yaml (which carries a copy of this script;
# tests/integration/test_deploy_files.py checks the two are the same).
#   BOOTSTRAP            the brokers (kafka:9093)
#   COMMAND_CONFIG       the admin client's properties (SASL_SSL, SCRAM user, truststore)
#   PARTITIONS           6: replicas of a service share a topic's partitions (consumer group)
#   REPLICATION_FACTOR   3 on a cluster, 1 on the single broker of the compose file
set -eu
: "${BOOTSTRAP:?}" "${COMMAND_CONFIG:?}"
PARTITIONS="${PARTITIONS:-6}"
REPLICATION_FACTOR="${REPLICATION_FACTOR:-3}"

create() {
  /opt/kafka/bin/kafka-topics.sh --bootstrap-server "$BOOTSTRAP" \
    --command-config "$COMMAND_CONFIG" --create --if-not-exists --topic "$1" \
    --partitions "$PARTITIONS" --replication-factor "$REPLICATION_FACTOR" \
    --config cleanup.policy=delete --config retention.ms="$2" --config retention.bytes=-1 \
    --config segment.ms=86400000 --config max.message.bytes=4259840
}

create iopcare.careplan.v1 1209600000
create iopcare.scheduling.v1 1209600000
create iopcare.notes.v1 1209600000
create iopcare.careplan.v1.dlq 7776000000
create iopcare.scheduling.v1.dlq 7776000000
create iopcare.notes.v1.dlq 7776000000
