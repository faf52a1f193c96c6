#!/bin/sh
# Grants each service's Kafka user (User:careplan, User:scheduling, User:notes) the least it needs
# (iopcare.devtools.kafka_broker.service_acls; docs/operations.md, "Kafka"): write (and read back) its own topic,
# read the topics it consumes and write their dead-letter topics, its consumer groups, idempotent
# writes. With allow.everyone.if.no.acl.found=false nothing else is allowed. Runs after
# create-topics.sh, in the Kafka image, as the cluster's admin user (same variables); adding an
# ACL that exists is a no-op. tests/integration/test_deploy_files.py checks these lines are
# exactly service_acls().
set -eu
: "${BOOTSTRAP:?}" "${COMMAND_CONFIG:?}"

allow() {
  user="$1" operation="$2"
  shift 2
  /opt/kafka/bin/kafka-acls.sh --bootstrap-server "$BOOTSTRAP" \
    --command-config "$COMMAND_CONFIG" --add --allow-principal "User:$user" \
    --operation "$operation" "$@"
}

allow careplan Write --topic iopcare.careplan.v1
allow careplan Describe --topic iopcare.careplan.v1
allow careplan Read --topic iopcare.careplan.v1
allow careplan Read --topic iopcare.scheduling.v1
allow careplan Describe --topic iopcare.scheduling.v1
allow careplan Write --topic iopcare.scheduling.v1.dlq
allow careplan Describe --topic iopcare.scheduling.v1.dlq
allow careplan Read --topic iopcare.notes.v1
allow careplan Describe --topic iopcare.notes.v1
allow careplan Write --topic iopcare.notes.v1.dlq
allow careplan Describe --topic iopcare.notes.v1.dlq
allow careplan Read --group iopcare-careplan --resource-pattern-type prefixed
allow careplan IdempotentWrite --cluster
allow scheduling Write --topic iopcare.scheduling.v1
allow scheduling Describe --topic iopcare.scheduling.v1
allow scheduling Read --topic iopcare.scheduling.v1
allow scheduling Read --topic iopcare.careplan.v1
allow scheduling Describe --topic iopcare.careplan.v1
allow scheduling Write --topic iopcare.careplan.v1.dlq
allow scheduling Describe --topic iopcare.careplan.v1.dlq
allow scheduling Read --group iopcare-scheduling --resource-pattern-type prefixed
allow scheduling IdempotentWrite --cluster
allow notes Write --topic iopcare.notes.v1
allow notes Describe --topic iopcare.notes.v1
allow notes Read --topic iopcare.notes.v1
allow notes Read --topic iopcare.careplan.v1
allow notes Describe --topic iopcare.careplan.v1
allow notes Write --topic iopcare.careplan.v1.dlq
allow notes Describe --topic iopcare.careplan.v1.dlq
allow notes Read --topic iopcare.scheduling.v1
allow notes Describe --topic iopcare.scheduling.v1
allow notes Write --topic iopcare.scheduling.v1.dlq
allow notes Describe --topic iopcare.scheduling.v1.dlq
allow notes Read --group iopcare-notes --resource-pattern-type prefixed
allow notes IdempotentWrite --cluster
